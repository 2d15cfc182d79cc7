"""VNC of an agentless (qemu+ssh) host: its VNC servers listen on that machine's loopback, so the console
service reaches them through SSH (direct-tcpip, or direct-streamlocal for a VNC Unix socket) with the
host's own key and known_hosts — the ones in its libvirt URI (flint/sshhosts.py).

Each console gets a one-shot Unix socket in a private directory (0700): websockify (or the NATS relay)
connects to it once, and that connection is piped into a fresh SSH channel to the VNC server. The socket
is removed as soon as it has been used, or after a few seconds unused. One SSH connection per host is
kept and reopened when it drops."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import tempfile
from pathlib import Path

import structlog

from flint.contracts.common import ServiceError
from flint.contracts.console import VncTargetReply
from flint.sshhosts import CONNECT_TIMEOUT_S, SshParams

log = structlog.get_logger()
UNUSED_AFTER_S = 15.0
READ_SIZE = 256 * 1024


class SshTunnel:
    def __init__(self, params: SshParams) -> None:
        self.params = params
        self.dir = Path(tempfile.mkdtemp(prefix="flint-vnc-tunnel-"))
        self._conn = None
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task] = set()

    async def close(self) -> None:
        """On service stop: the SSH connection, the pipes and their sockets' directory."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        shutil.rmtree(self.dir, ignore_errors=True)

    async def connection(self):
        import asyncssh

        async with self._lock:
            if self._conn is not None and not self._conn.is_closed():
                return self._conn
            p = self.params
            options = {"known_hosts": p.known_hosts} if p.known_hosts else {}
            if p.keyfile:
                options["client_keys"] = [p.keyfile]
            try:
                self._conn = await asyncssh.connect(
                    p.host, p.port, username=p.user, agent_path=None, config=None, password=None,
                    kbdint_auth=False, gss_auth=False, connect_timeout=CONNECT_TIMEOUT_S,
                    login_timeout=CONNECT_TIMEOUT_S, keepalive_interval=15, **options,
                )
            except asyncssh.HostKeyNotVerifiable:
                raise ServiceError(502, f"the SSH host key of {p.host}:{p.port} does not match its known_hosts: "
                                   "the console tunnel was refused") from None
            except (OSError, asyncssh.Error, TimeoutError) as exc:
                raise ServiceError(502, f"cannot open an SSH tunnel to {p.host}:{p.port}: {exc}") from None
            log.info("ssh tunnel connected", host=p.host, port=p.port)
            return self._conn

    async def local_target(self, target: VncTargetReply, vm_name: str) -> VncTargetReply:
        """A one-shot Unix socket here that leads to the VM's VNC server over there."""
        conn = await self.connection()
        path = self.dir / f"vnc-{secrets.token_hex(8)}.sock"
        used = asyncio.Event()

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if used.is_set():
                writer.close()
                return
            used.set()
            server.close()
            with contextlib.suppress(OSError):
                path.unlink()
            try:
                if target.host == "unix_socket":
                    r2, w2 = await conn.open_unix_connection(target.path)
                else:
                    r2, w2 = await conn.open_connection(target.host, target.port)
            except Exception as exc:  # noqa: BLE001 - the viewer sees the close; the log says why
                log.warning("ssh tunnel could not reach the VNC server", vm_name=vm_name, error=str(exc))
                writer.close()
                return
            await _pipe(reader, writer, r2, w2)

        server = await asyncio.start_unix_server(serve, path=str(path))
        os.chmod(path, 0o600)

        async def expire() -> None:
            await asyncio.sleep(UNUSED_AFTER_S)
            if not used.is_set():
                server.close()
                with contextlib.suppress(OSError):
                    path.unlink()

        task = asyncio.create_task(expire())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return VncTargetReply(host="unix_socket", path=str(path))


async def _pipe(r1, w1, r2, w2) -> None:
    async def copy(src, dst) -> None:
        try:
            while data := await src.read(READ_SIZE):
                dst.write(data)
                await dst.drain()
        finally:
            with contextlib.suppress(Exception):
                dst.write_eof()

    tasks = [asyncio.create_task(copy(r1, w2)), asyncio.create_task(copy(r2, w1))]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        w1.close()
        w2.close()
