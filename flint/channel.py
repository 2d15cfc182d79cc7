"""A byte stream between the gateway and a host's console service over core NATS, with flow control.

One channel carries one console session (serial, or VNC when the gateway cannot reach the host's
websockify on its own loopback). Each side publishes on its own subject (see subjects.console_channel);
NATS keeps the order of one publisher's messages. A message is one frame: a type byte and its body.

    D <offset> <bytes>  data; offset: 8 bytes, big-endian, where these bytes start in the stream
    A <decimal>      ack: total data bytes the receiver has consumed so far
    P                keepalive (sent when nothing else was sent for KEEPALIVE_S)
    C <code> <text>  close, with a WebSocket-style code and a reason for the user

A message lost on the way (NATS reconnecting drops what was in flight) shows as a gap in the offsets: the
channel closes (1011) instead of handing on a corrupted stream, and the viewer reconnects.

Flow control: a sender stops while more than WINDOW bytes are unacknowledged, so a slow browser slows
the guest's output instead of filling memory (and NATS never drops a slow subscriber's messages). A side
that hears nothing for DEAD_AFTER_S closes: the other process died or lost NATS."""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import time

from nats.aio.client import Client as NATS

from flint import subjects

CHUNK = 60 * 1024
WINDOW = 1024 * 1024
ACK_EVERY = WINDOW // 4
KEEPALIVE_S = 5.0
DEAD_AFTER_S = 20.0


class ChannelClosed(Exception):
    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Channel:
    """``side`` is "gateway" or "host": it decides which subject is ours to publish on."""

    def __init__(self, nc: NATS, host: str, channel_id: str, side: str, *, tx: str | None = None,
                 rx: str | None = None, chunk: int = CHUNK, window: int = WINDOW, what: str = "console"):
        """``tx``/``rx`` override the console subjects (volume uploads use their own); ``chunk`` and
        ``window`` size the frames and the unacknowledged bytes; ``what`` names the channel in reasons."""
        up = subjects.console_channel(host, channel_id, "up")
        down = subjects.console_channel(host, channel_id, "down")
        self.nc = nc
        self.tx, self.rx = (up, down) if side == "gateway" else (down, up)
        self.tx, self.rx = tx or self.tx, rx or self.rx
        self.chunk, self.window, self.what = chunk, window, what
        self.dead_after_s = DEAD_AFTER_S  # may be raised while waiting for a peer that has not opened yet
        self._inbox: asyncio.Queue[bytes] = asyncio.Queue()
        self._sub = None
        self._sent = 0  # data bytes we published
        self._acked = 0  # of those, what the peer said it consumed
        self._consumed = 0  # data bytes we handed to our reader
        self._consumed_acked = 0
        self._received = 0  # data bytes that arrived, in order
        self._window_open = asyncio.Event()
        self._window_open.set()
        self._last_rx = time.monotonic()
        self._last_tx = time.monotonic()
        self.closed: ChannelClosed | None = None
        self._keepalive: asyncio.Task | None = None

    async def open(self) -> Channel:
        """Subscribe before anyone publishes to us, and start the keepalive."""
        self._sub = await self.nc.subscribe(self.rx, cb=self._on_msg, pending_msgs_limit=-1, pending_bytes_limit=-1)
        await self.nc.flush()  # the server knows the subscription before we tell the peer to publish
        self._keepalive = asyncio.create_task(self._keepalive_loop())
        return self

    async def _on_msg(self, msg) -> None:
        self._last_rx = time.monotonic()
        data = msg.data
        kind = data[:1]
        if kind == b"D":
            (offset,) = struct.unpack_from(">Q", data, 1)
            if offset != self._received:
                self._mark_closed(1011, f"the {self.what} relay lost data (NATS reconnected); reconnect")
                return
            self._received += len(data) - 9
            self._inbox.put_nowait(data[9:])
        elif kind == b"A":
            self._acked = max(self._acked, int(data[1:] or b"0"))
            if self._sent - self._acked <= self.window:
                self._window_open.set()
        elif kind == b"C":
            code, _, reason = data[1:].decode(errors="replace").partition(" ")
            self._mark_closed(int(code) if code.isdigit() else 1000, reason)

    def _mark_closed(self, code: int, reason: str) -> None:
        if self.closed is None:
            self.closed = ChannelClosed(code, reason)
            self._inbox.put_nowait(b"")  # wake the reader
            self._window_open.set()  # wake a blocked writer

    async def _publish(self, frame: bytes) -> None:
        self._last_tx = time.monotonic()
        await self.nc.publish(self.tx, frame)

    async def send(self, data: bytes) -> None:
        """Send bytes, waiting while the peer is a window behind. Raises ChannelClosed once closed."""
        for i in range(0, len(data), self.chunk):
            while self.closed is None and self._sent - self._acked > self.window:
                self._window_open.clear()
                await self._window_open.wait()
            if self.closed is not None:
                raise self.closed
            part = data[i : i + self.chunk]
            frame = b"D" + struct.pack(">Q", self._sent) + part
            self._sent += len(part)
            await self._publish(frame)

    async def recv(self) -> bytes:
        """The next data; raises ChannelClosed when the peer closed (after all data before the close)."""
        data = await self._inbox.get()
        if not data and self.closed is not None:
            self._inbox.put_nowait(b"")  # keep later calls failing too
            raise self.closed
        self._consumed += len(data)
        if self._consumed - self._consumed_acked >= self.window // 4:
            self._consumed_acked = self._consumed
            with contextlib.suppress(Exception):
                await self._publish(b"A%d" % self._consumed)
        return data

    async def _keepalive_loop(self) -> None:
        while self.closed is None:
            await asyncio.sleep(KEEPALIVE_S / 2)
            now = time.monotonic()
            if now - self._last_rx > self.dead_after_s:
                self._mark_closed(1011, f"the other end of the {self.what} stopped answering")
                return
            if now - self._last_tx >= KEEPALIVE_S:
                with contextlib.suppress(Exception):
                    await self._publish(b"P")

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Tell the peer (once) and stop listening."""
        told = self.closed is not None
        self._mark_closed(code, reason)
        if not told:
            with contextlib.suppress(Exception):
                await self._publish(b"C%d %s" % (code, reason.encode()[:200]))
        if self._keepalive is not None:
            self._keepalive.cancel()
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None


def loopback_namespace() -> str:
    """Identifies the loopback this process sees: the kernel's boot id and our network namespace.
    Two processes with the same value reach each other on 127.0.0.1; any other pair does not."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
        st = os.stat("/proc/self/ns/net")
        return f"{boot}/{st.st_dev}:{st.st_ino}"
    except OSError:
        return ""
