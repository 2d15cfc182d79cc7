"""The console service's websockify process, and the Unix socket its connection processes ask.

websockify listens on a loopback socket that we open (so the port survives restarts of the child) and
forks a process per connection; that process hands the ticket to ``resolve`` through a Unix socket in a
private directory (one connect and one line each way, well under a millisecond: a NATS connection per
console cost 100-200 ms with authentication). ``resolve`` consumes the ticket in KV flint-console, so
single use still holds in the store every process shares.

websockify starts with the first connection, not with the service: an idle host pays no process for it
(about 37 MB resident). The kernel queues that connection on our listening socket meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec
import structlog

from flint.contracts.common import ServiceError
from flint.contracts.console import VncLookupReply, VncTargetReply, VncTargetRequest

log = structlog.get_logger()
Resolve = Callable[[str], Awaitable[VncTargetReply]]
_dec = msgspec.json.Decoder(VncTargetRequest)
_enc = msgspec.json.Encoder()


class VncProxy:
    def __init__(self, resolve: Resolve, listen_host: str = "127.0.0.1", port: int = 0):
        self.resolve = resolve
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((listen_host, port))
        self.sock.listen(128)
        self.sock.set_inheritable(True)
        self.port: int = self.sock.getsockname()[1]
        self.dir = Path(tempfile.mkdtemp(prefix="flint-console-"))  # mode 0700: ours alone
        self.lookup_path = self.dir / "lookup.sock"
        self.proc: asyncio.subprocess.Process | None = None

    async def run(self) -> None:
        """Serve lookups; start websockify when a connection waits, and again whenever it exits."""
        server = await asyncio.start_unix_server(self._lookup, path=str(self.lookup_path))
        os.chmod(self.lookup_path, 0o600)
        delay = 0.5
        try:
            while True:
                await self._connection_waiting()
                started = time.monotonic()
                self.proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "services.console.vncproxy", "--fd", str(self.sock.fileno()),
                    "--lookup", str(self.lookup_path), pass_fds=(self.sock.fileno(),),
                )
                log.info("websockify started", port=self.port, pid=self.proc.pid)
                code = await self.proc.wait()
                delay = 0.5 if time.monotonic() - started > 30 else min(delay * 2, 10.0)
                log.warning("websockify exited; restarting", code=code, restart_in=delay)
                await asyncio.sleep(delay)
        finally:
            server.close()
            await self.stop()

    async def _connection_waiting(self) -> None:
        """Until the listening socket has a connection to accept (epoll reports it readable)."""
        loop = asyncio.get_running_loop()
        ready = loop.create_future()
        loop.add_reader(self.sock.fileno(), lambda: ready.done() or ready.set_result(None))
        try:
            await ready
        finally:
            loop.remove_reader(self.sock.fileno())

    async def _lookup(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            try:
                reply = VncLookupReply(target=await self.resolve(_dec.decode(line).ticket))
            except ServiceError as exc:
                reply = VncLookupReply(code=exc.code, message=exc.message)
            except msgspec.DecodeError:
                reply = VncLookupReply(code=400, message="bad lookup request")
            except Exception as exc:  # noqa: BLE001 - logged; the connection is refused
                log.error("vnc lookup failed", error=repr(exc))
                reply = VncLookupReply(code=500, message="the console service failed; see its log")
            writer.write(_enc.encode(reply) + b"\n")
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        with contextlib.suppress(OSError):
            self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)
