"""Console sessions the console service runs over a NATS channel (flint/channel.py):

- serial: libvirt's console stream (virDomain.openConsole on a non-blocking virStream, events through
  libvirtaio on our loop), so it works over any libvirt connection, remote ones too;
- vnc: a TCP connection to the VM's VNC server, for a gateway that cannot reach our websockify on its
  own loopback (an agent on another machine).
"""

from __future__ import annotations

import asyncio
import contextlib

import libvirt
import structlog

from flint.channel import Channel, ChannelClosed
from flint.contracts.console import VncTargetReply

log = structlog.get_logger()

READ_SIZE = 64 * 1024
CLOSE_TAKEN_OVER = 4001  # a newer session of the same serial console took over (viewers do not reconnect)
EV_READ = libvirt.VIR_STREAM_EVENT_READABLE
EV_WRITE = libvirt.VIR_STREAM_EVENT_WRITABLE
EV_END = libvirt.VIR_STREAM_EVENT_ERROR | libvirt.VIR_STREAM_EVENT_HANGUP


class SerialSession:
    """Guest serial <-> channel. libvirt calls ``_on_event`` on our loop; it only wakes the pumps and turns
    off the interest that fired (libvirt repeats a READABLE event while data waits), so the pumps, not
    the callback, read and write - and stop reading while the channel's window is full."""

    def __init__(self, dom: libvirt.virDomain, stream: libvirt.virStream, channel: Channel, vm_name: str):
        self.dom = dom
        self.stream = stream
        self.channel = channel
        self.vm_name = vm_name
        self.readable = asyncio.Event()
        self.writable = asyncio.Event()
        self.ended = asyncio.Event()
        self.interest = EV_READ | EV_END

    @classmethod
    def open(cls, conn: libvirt.virConnect, dom: libvirt.virDomain, channel: Channel, vm_name: str) -> SerialSession:
        """Blocking libvirt calls (run in a thread). FORCE: a newer session takes over an older one."""
        stream = conn.newStream(libvirt.VIR_STREAM_NONBLOCK)
        try:
            dom.openConsole(None, stream, libvirt.VIR_DOMAIN_CONSOLE_FORCE)
        except libvirt.libvirtError:
            with contextlib.suppress(libvirt.libvirtError):
                stream.abort()
            raise
        return cls(dom, stream, channel, vm_name)

    def _on_event(self, _stream, events: int, _opaque) -> None:
        if events & EV_END:
            self.ended.set()
            self.readable.set()
        if events & EV_READ:
            self.readable.set()
        if events & EV_WRITE:
            self.writable.set()
        self._set_interest(self.interest & ~events | EV_END)

    def _set_interest(self, interest: int) -> None:
        if interest != self.interest:
            self.interest = interest
            with contextlib.suppress(libvirt.libvirtError):
                self.stream.eventUpdateCallback(interest)

    async def run(self) -> None:
        self.stream.eventAddCallback(self.interest, self._on_event, None)
        down = asyncio.create_task(self._guest_to_channel())
        up = asyncio.create_task(self._channel_to_guest())
        code, reason = 1000, "the serial console closed"
        try:
            done, _ = await asyncio.wait({down, up}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                exc = task.exception()
                if isinstance(exc, ChannelClosed):
                    code, reason = 1000, exc.reason or "closed by the viewer"
                elif exc is not None:
                    log.warning("serial session failed", vm=self.vm_name, error=repr(exc))
                    code, reason = 1011, f"the serial console failed: {exc}"
                else:
                    code, reason = await self._why_ended()
        finally:
            for task in (down, up):
                task.cancel()
            await asyncio.gather(down, up, return_exceptions=True)
            with contextlib.suppress(libvirt.libvirtError):
                self.stream.eventRemoveCallback()
            with contextlib.suppress(libvirt.libvirtError):
                self.stream.abort()
            await self.channel.close(code, reason)
            log.info("serial console closed", vm=self.vm_name, reason=reason)

    async def _why_ended(self) -> tuple[int, str]:
        """The stream ends both when QEMU goes away and when a newer session takes the console over; a
        dying domain still reads as active for a moment, so give it that moment before saying which."""
        for _ in range(20):
            try:
                active = await asyncio.to_thread(self.dom.isActive)
            except libvirt.libvirtError:
                active = False
            if not active:
                return 4409, f"VM {self.vm_name!r} stopped"
            await asyncio.sleep(0.1)
        return CLOSE_TAKEN_OVER, "the serial console was opened elsewhere (one session at a time)"

    async def _guest_to_channel(self) -> None:
        while True:
            await self.readable.wait()
            self.readable.clear()
            while True:
                try:
                    data = self.stream.recv(READ_SIZE)
                except libvirt.libvirtError:
                    return
                if data == -2:  # nothing more for now
                    break
                if not data:  # end of stream
                    return
                await self.channel.send(data)
            if self.ended.is_set():
                return
            self._set_interest(self.interest | EV_READ)

    async def _channel_to_guest(self) -> None:
        while True:
            data = await self.channel.recv()
            while data:
                try:
                    sent = self.stream.send(data)
                except libvirt.libvirtError:
                    return
                if sent == -2:
                    self.writable.clear()
                    self._set_interest(self.interest | EV_WRITE)
                    await self.writable.wait()
                    continue
                data = data[sent:]


async def vnc_over_channel(target: VncTargetReply, channel: Channel, vm_name: str) -> None:
    """The VM's VNC server <-> channel, for a gateway that relays over NATS."""
    try:
        if target.host == "unix_socket":
            reader, writer = await asyncio.open_unix_connection(target.path)
        else:
            reader, writer = await asyncio.open_connection(target.host, target.port)
    except OSError as exc:
        await channel.close(4502, f"cannot reach the VNC server of {vm_name!r}: {exc.strerror or exc}")
        return

    async def down() -> None:
        while data := await reader.read(READ_SIZE):
            await channel.send(data)

    async def up() -> None:
        while True:
            writer.write(await channel.recv())
            await writer.drain()

    tasks = [asyncio.create_task(down()), asyncio.create_task(up())]
    code, reason = 1000, "the VNC server closed the connection"
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if isinstance(task.exception(), ChannelClosed):
                code, reason = 1000, "closed by the viewer"
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        writer.close()
        await channel.close(code, reason)
