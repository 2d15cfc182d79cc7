"""Job volume.upload: the HTTP body of `PUT …/volumes/<vol>/content`, streamed from the gateway while the
client sends it and written into a new volume through a libvirt stream (virStorageVolUpload) as it arrives.

Steps: create volume → write → finish. The gateway opens the job, then waits for the write step to say
it is ready on a flow-controlled NATS channel (flint/channel.py): gateway → ``flint.<host>.provisioner.
upload.<id>``, provisioner → an inbox of the gateway's. The bytes take one of two roads:

- the NATS channel itself (frames of ~1 MiB, 16 MiB unacknowledged at most): works wherever the
  provisioner runs (an agent on another machine);
- when the gateway and the provisioner share a loopback (same boot id and network namespace, as for the
  console), a TCP connection to 127.0.0.1 that the provisioner listens on for this job only, opened with a
  single-use token it sent over the channel. TCP's own flow control, and no NATS server copying every
  byte: several times cheaper in CPU. The NATS channel stays open beside it for the outcome.

Durability: nothing is staged. An upload cut off by the client or the gateway, or whose provisioner dies
while receiving, fails; the rollback deletes the volume; the client uploads again. A provisioner that dies
before the write step started picks the job up after redelivery while the gateway still waits for it.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import re
import secrets
import socket
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import structlog

from flint import subjects
from flint.channel import Channel, ChannelClosed, loopback_namespace
from flint.contracts.common import ServiceError
from flint.service import ServiceContext
from services.provisioner.jobs import JobKind, JobRun, Step
from services.provisioner.volume_jobs import (
    _fail,
    _finish_volume,
    _make_volume,
    _progress,
    _rechunk,
    _undo_volume,
    check_target,
)
from services.provisioner.volumes import _fmt_bytes, check_volume_name, write_stream

log = structlog.get_logger()
_CHANNEL_ID = re.compile(r"^[0-9a-f]{16,64}$")
UPLOAD_CHUNK = 1024 * 1024 - 1024  # NATS frames: one message each, under nats-server's default max_payload
UPLOAD_WINDOW = 16 * 1024 * 1024  # unacknowledged bytes in flight from the gateway
READ_CHUNK = 1024 * 1024
ACCEPT_TIMEOUT_S = 30.0
TOKEN_BYTES = 16
# FLINT_UPLOAD_DIRECT=0: the bytes always take the NATS channel (its tests; a host where TCP between local
# processes is filtered).
DIRECT = os.environ.get("FLINT_UPLOAD_DIRECT", "1") != "0"


async def validate_upload(ctx: ServiceContext, params: dict[str, Any]) -> tuple[dict[str, Any], str]:
    pool, name = str(params.get("pool", "")), check_volume_name(str(params.get("name", "")))
    size, channel, reply = params.get("size"), str(params.get("channel", "")), str(params.get("reply", ""))
    if not isinstance(size, int) or size < 1:
        raise _fail("size", "must be a positive number of bytes", 400)
    if not _CHANNEL_ID.match(channel) or not reply.startswith("_INBOX."):
        raise _fail("channel", "an upload job is opened by the gateway, which streams the body to it", 400)
    await check_target(ctx, pool, name, size)
    loopback = str(params.get("loopback") or "")
    return ({"pool": pool, "name": name, "size": size, "channel": channel, "reply": reply, "loopback": loopback},
            f"{pool}/{name}")


async def upload_create(run: JobRun) -> None:
    await _make_volume(run, run.params["size"])


async def _say(ch: Channel, **what: Any) -> None:
    await ch.send(msgspec.json.encode(what))


def _stopped(got: int, size: int, why: str) -> ServiceError:
    return ServiceError(400, f"the upload stopped after {_fmt_bytes(got)} of {_fmt_bytes(size)}: {why}; "
                             "the volume is deleted: upload again")


async def _from_channel(ch: Channel, size: int) -> AsyncIterator[bytes]:
    got = 0
    while got < size:
        try:
            data = await ch.recv()
        except ChannelClosed as exc:
            raise _stopped(got, size, exc.reason or "the gateway closed it") from None
        got += len(data)
        if got > size:
            raise ServiceError(400, f"the upload is longer than its Content-Length ({size})", "Content-Length")
        yield data


class _Direct:
    """A listener on 127.0.0.1 for one connection that starts with the token, then carries the body. Plain
    non-blocking sockets read into one reused buffer: half the CPU of asyncio streams at these rates."""

    def __init__(self) -> None:
        self.token = secrets.token_hex(TOKEN_BYTES).encode()
        self.loop = asyncio.get_running_loop()
        self.conn: asyncio.Future[socket.socket] = self.loop.create_future()
        self.listener: socket.socket | None = None
        self.acceptor: asyncio.Task | None = None

    async def start(self) -> int:
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.listener.setblocking(False)
        self.acceptor = asyncio.create_task(self._accept())
        return self.listener.getsockname()[1]

    async def _accept(self) -> None:
        while not self.conn.done():
            sock, _ = await self.loop.sock_accept(self.listener)
            sock.setblocking(False)
            try:
                token = await asyncio.wait_for(self._read_exactly(sock, len(self.token) + 1), 10)
            except (TimeoutError, OSError, EOFError):
                sock.close()
                continue
            if not hmac.compare_digest(token, self.token + b"\n"):
                sock.close()
                continue
            self.conn.set_result(sock)
        self.listener.close()  # one connection per upload

    async def _read_exactly(self, sock: socket.socket, n: int) -> bytes:
        data = b""
        while len(data) < n:
            more = await self.loop.sock_recv(sock, n - len(data))
            if not more:
                raise EOFError
            data += more
        return data

    async def body(self, ch: Channel, size: int) -> AsyncIterator[bytes]:
        sock = await asyncio.wait_for(self._connected(ch), ACCEPT_TIMEOUT_S)
        buf = memoryview(bytearray(READ_CHUNK))
        got = 0
        while got < size:
            want, n = min(READ_CHUNK, size - got), 0
            while n < want:
                try:
                    r = await self.loop.sock_recv_into(sock, buf[n:want])
                except OSError as exc:
                    raise _stopped(got + n, size, f"the connection from the gateway broke ({exc})") from None
                if r == 0:
                    await asyncio.sleep(0.2)  # the gateway closes the channel with its reason right after
                    why = ch.closed.reason if ch.closed is not None else "the gateway's connection ended early"
                    raise _stopped(got + n, size, why)
                n += r
            got += n
            yield bytes(buf[:n])

    async def _connected(self, ch: Channel) -> socket.socket:
        while True:
            done, _ = await asyncio.wait({self.conn}, timeout=0.5)
            if done:
                return self.conn.result()
            if ch.closed is not None:
                raise _stopped(0, 1, ch.closed.reason or "the gateway closed the upload")

    async def close(self) -> None:
        if self.acceptor is not None:
            self.acceptor.cancel()
        if self.listener is not None:
            self.listener.close()
        if self.conn.done() and not self.conn.cancelled():
            self.conn.result().close()
        else:
            self.conn.cancel()


async def upload_write(run: JobRun) -> None:
    """Receive the body from the gateway while writing it into the volume."""
    p = run.params
    ch = Channel(run.ctx.nc, run.ctx.host, p["channel"], "host", tx=p["reply"],
                 rx=subjects.upload_channel(run.ctx.host, p["channel"]), chunk=UPLOAD_CHUNK,
                 window=UPLOAD_WINDOW, what="upload")
    if run.data.get("receiving"):
        reason = ("the provisioner restarted while receiving the upload: the bytes in flight are lost and the "
                  "volume is deleted; upload the file again")
        await ch.close(4000 + 410, reason)  # for a gateway still waiting (it may have given up already)
        raise ServiceError(410, reason)
    run.data["receiving"] = True
    await run.save()
    await ch.open()
    size = p["size"]
    report = _progress(run, VOLUME_UPLOAD, "write", size, "received and written")
    direct = _Direct() if DIRECT and p.get("loopback") and p["loopback"] == loopback_namespace() else None
    try:
        if direct is not None:
            port = await direct.start()
            await _say(ch, ready=True, port=port, token=direct.token.decode())
            chunks = direct.body(ch, size)
        else:
            await _say(ch, ready=True)
            chunks = _rechunk(_from_channel(ch, size))
        written = await write_stream(run.ctx.virt, p["pool"], p["name"], size, chunks, report)
        if written != size:
            raise ServiceError(500, f"wrote {written} bytes of {size}")
        await _say(ch, written=written)
        await ch.close(1000, "written")
    except ServiceError as exc:
        await ch.close(4000 + exc.code, exc.message)
        raise
    except TimeoutError:
        reason = f"the gateway did not connect within {ACCEPT_TIMEOUT_S:.0f} s; the volume is deleted: upload again"
        await ch.close(4000 + 504, reason)
        raise ServiceError(504, reason) from None
    except BaseException as exc:
        await ch.close(4000 + 500, f"writing the volume failed: {exc}")
        raise
    finally:
        if direct is not None:
            await direct.close()


async def upload_finish(run: JobRun) -> None:
    await _finish_volume(run)


VOLUME_UPLOAD = JobKind(
    name="volume.upload",
    validate=validate_upload,
    steps=[
        Step("create volume", upload_create, undo=_undo_volume, weight=0.5),
        Step("write", upload_write, weight=19),
        Step("finish", upload_finish, weight=0.5),
    ],
)
