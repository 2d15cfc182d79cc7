"""Pools and volumes of a host: requests to its provisioner; uploads streamed to its job as they arrive.

Roles (gateway/authz.py): reads are viewer; volume changes, uploads, imports and pool start/stop/refresh/
autostart are operator; creating and deleting pools, and the `build` action, are admin, because they
act on the host itself (mkfs, vgcreate, partition labels, directories anywhere on its filesystems).
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from typing import Annotated, Any

import msgspec
import structlog
from litestar import Controller, Request, Response, delete, get, post, put
from litestar.params import Parameter
from msgspec import Meta

from flint import bus, subjects
from flint.channel import DEAD_AFTER_S, Channel, ChannelClosed, loopback_namespace
from flint.contracts.common import ServiceError
from flint.contracts.jobs import PublicJob
from flint.contracts.storage import (
    Deleted,
    PoolAction,
    PoolCreate,
    PoolDelete,
    PoolDetail,
    PoolRef,
    Size,
    UploadCheck,
    UploadCheckReply,
    VolumeCreate,
    VolumeInfo,
    VolumeList,
    VolumeRef,
    VolumeResize,
    VolumesList,
)
from gateway.accounts import role_allows
from gateway.deps import gw
from gateway.routes.jobs import submit_job

log = structlog.get_logger()
TIMEOUT_S = 120.0  # building a pool (vgcreate, a partition label) or preallocating a raw volume takes a while


class _Body(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    pass


class ActionBody(_Body):
    action: str


class VolumeCreateBody(_Body):
    name: Annotated[str, Meta(min_length=1, max_length=63)]
    capacity: Size
    format: str = "qcow2"
    preallocate: bool = False


class VolumeResizeBody(_Body):
    capacity: Size
    allow_shrink: bool = False


class ImportBody(_Body):
    url: Annotated[str, Meta(min_length=1, max_length=2048)]
    name: str | None = None
    sha256: str | None = None
    format: str | None = None


def _host_ok(request: Request, host: str) -> None:
    g = gw(request)
    if host not in g.view.host_names() and host != g.settings.host:
        raise ServiceError(404, f"no host named {host!r}")
    if g.view.is_unreachable(host):
        raise ServiceError(503, f"host {host!r} is unreachable: no heartbeat in the last {subjects.HOST_HEARTBEAT_TTL_S} s")


async def _ask(request: Request, host: str, verb: str, payload: Any, reply: Any, timeout: float = TIMEOUT_S):
    _host_ok(request, host)
    return await bus.request(gw(request).nc, subjects.request(host, "provisioner", verb), payload, reply, timeout)


class StorageController(Controller):
    path = "/hosts/{host:str}/pools"
    tags = ["storage"]

    @post("/", status_code=201)
    async def create_pool(self, request: Request, host: str, data: PoolCreate) -> PoolDetail:
        return await _ask(request, host, "pool.create", data, PoolDetail)

    @get("/{pool:str}")
    async def get_pool(self, request: Request, host: str, pool: str) -> PoolDetail:
        return await _ask(request, host, "pool.get", PoolRef(name=pool), PoolDetail, timeout=30)

    @delete("/{pool:str}", status_code=200)
    async def delete_pool(self, request: Request, host: str, pool: str, delete_volumes: bool = False,
                          force: bool = False) -> Deleted:
        req = PoolDelete(name=pool, delete_volumes=delete_volumes, force=force)
        return await _ask(request, host, "pool.delete", req, Deleted)

    @post("/{pool:str}/actions", status_code=200)
    async def pool_action(self, request: Request, host: str, pool: str, data: ActionBody) -> PoolDetail:
        if data.action == "build" and not role_allows(request.user.role, "admin"):
            raise ServiceError(403, "building a pool writes to the host's storage: this needs the admin role", "action")
        return await _ask(request, host, "pool.action", PoolAction(name=pool, action=data.action), PoolDetail)

    @get("/{pool:str}/volumes")
    async def list_volumes(self, request: Request, host: str, pool: str) -> list[VolumeInfo]:
        listed = await _ask(request, host, "volumes.list", VolumesList(pool=pool), VolumeList, timeout=30)
        return listed.volumes

    @post("/{pool:str}/volumes", status_code=201)
    async def create_volume(self, request: Request, host: str, pool: str, data: VolumeCreateBody) -> VolumeInfo:
        req = VolumeCreate(pool=pool, name=data.name, capacity=data.capacity, format=data.format,
                           preallocate=data.preallocate)
        return await _ask(request, host, "volume.create", req, VolumeInfo)

    @delete("/{pool:str}/volumes/{vol:str}", status_code=200)
    async def delete_volume(self, request: Request, host: str, pool: str, vol: str) -> Deleted:
        return await _ask(request, host, "volume.delete", VolumeRef(pool=pool, name=vol), Deleted)

    @post("/{pool:str}/volumes/{vol:str}/resize", status_code=200)
    async def resize_volume(self, request: Request, host: str, pool: str, vol: str,
                            data: VolumeResizeBody) -> VolumeInfo:
        req = VolumeResize(pool=pool, name=vol, capacity=data.capacity, allow_shrink=data.allow_shrink)
        return await _ask(request, host, "volume.resize", req, VolumeInfo)

    @post("/{pool:str}/volumes/import", status_code=202)
    async def import_volume(self, request: Request, host: str, pool: str, data: ImportBody) -> Response[PublicJob]:
        _host_ok(request, host)
        params = {"pool": pool, "url": data.url, "name": data.name, "sha256": data.sha256, "format": data.format}
        return await submit_job(request, host, "volume.import", params)

    @put("/{pool:str}/volumes/{vol:str}/content", status_code=202, request_max_body_size=None)
    async def upload(
        self,
        request: Request,
        host: str,
        pool: str,
        vol: str,
        content_length: Annotated[int | None, Parameter(header="content-length", required=False)] = None,
    ) -> Response[PublicJob]:
        """The body becomes a new volume (raw bytes: an ISO, a qcow2 or raw image). A volume.upload job
        makes the volume, then the body goes to it while it arrives (by TCP when the provisioner shares our
        loopback, else on the flow-controlled NATS channel that also carries the job's answers) and on into
        a libvirt stream: never held in memory, never staged on disk. The answer (202, the job) comes once
        every byte is in the volume. Content-Length is required and must fit the pool's free space. An
        upload cut off on the way fails its job, which deletes the volume: upload again."""
        if content_length is None:
            raise ServiceError(411, "Content-Length is required: send the file's size with the upload",
                               "Content-Length")
        if content_length < 1:
            raise ServiceError(400, "the upload is empty", "Content-Length")
        await _ask(request, host, "volume.upload.check", UploadCheck(pool=pool, name=vol, size=content_length),
                   UploadCheckReply, timeout=60)
        g = gw(request)
        channel_id = secrets.token_hex(12)
        ch = Channel(g.nc, host, channel_id, "gateway", tx=subjects.upload_channel(host, channel_id),
                     rx=g.nc.new_inbox(), chunk=UPLOAD_CHUNK, window=UPLOAD_WINDOW, what="upload")
        ch.dead_after_s = READY_TIMEOUT_S + 30  # the job may wait in the queue; _wait_ready watches it
        await ch.open()
        direct: asyncio.StreamWriter | None = None
        # The TCP road only to services this machine's `flint up` runs (local, agentless hosts): a port
        # named by anyone else (an agent's NATS user can publish to inboxes) is never connected to.
        ours = host == g.settings.host or host in g.view.registrations
        try:
            answer = await submit_job(request, host, "volume.upload", {
                "pool": pool, "name": vol, "size": content_length, "channel": channel_id, "reply": ch.rx,
                "loopback": loopback_namespace() if ours else ""})
            job_id = answer.content.id
            ready = await _wait_ready(g, ch, job_id)
            ch.dead_after_s = DEAD_AFTER_S
            if ready.get("port"):
                if not ours:
                    raise ServiceError(502, f"host {host!r} offered a loopback port for the upload, which only "
                                            "hosts run by this machine's flint up may do; refused")
                direct = await _connect(ready)
            await _send_body(request, ch, direct, content_length)
            await _wait_written(ch, content_length)
        except BaseException as exc:
            reason = exc.message if isinstance(exc, ServiceError) else "the gateway stopped the upload"
            await ch.close(4000 + (exc.code if isinstance(exc, ServiceError) else 500), reason)
            raise
        finally:
            if direct is not None:
                direct.close()
        await ch.close(1000, "done")
        job = g.view.jobs.get(job_id)
        if job is not None and job.updated_at >= answer.content.updated_at:
            answer = Response(job, status_code=202, headers=dict(answer.headers))
        return answer


UPLOAD_CHUNK = 1024 * 1024 - 1024  # one NATS message per frame, under nats-server's default max_payload (1 MiB)
UPLOAD_WINDOW = 16 * 1024 * 1024  # bytes in flight to the provisioner before the gateway waits
BODY_IDLE_S = 120.0  # the longest pause in the body before the upload is given up
READY_TIMEOUT_S = 180.0  # how long the body waits for the job to start (queued behind others, a restart)


def _channel_error(exc: ChannelClosed, what: str) -> ServiceError:
    """The host closes with 4000 + an HTTP status and the job's reason; anything else means it went away."""
    if 4400 <= exc.code < 4600:
        return ServiceError(exc.code - 4000, exc.reason)
    return ServiceError(503, f"the host's provisioner went away {what} ({exc.reason}); the upload's job rolls "
                             "back: upload again")


async def _wait_ready(g, ch: Channel, job_id: str) -> dict:
    """Until the job's write step opens its end. Meanwhile the job may be queued or fail (it says why)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    ready = asyncio.ensure_future(ch.recv())
    try:
        while True:
            done, _ = await asyncio.wait({ready}, timeout=0.5)
            if done:
                try:
                    message = msgspec.json.decode(ready.result())
                except ChannelClosed as exc:
                    raise _channel_error(exc, "before the upload started") from None
                except msgspec.DecodeError:
                    message = None
                if isinstance(message, dict) and message.get("ready"):
                    return message
                raise ServiceError(502, "the provisioner answered the upload with something unexpected")
            job = g.view.jobs.get(job_id)
            if job is not None and job.state == "failed":
                raise ServiceError(502, f"the upload's job {job_id} failed before receiving: {job.error}")
            if time.monotonic() > deadline:
                raise ServiceError(503, f"the host's provisioner did not start the upload within "
                                        f"{READY_TIMEOUT_S:.0f} s (job {job_id}); try again later")
    finally:
        if not ready.done():
            ready.cancel()


async def _connect(ready: dict) -> asyncio.StreamWriter:
    """The provisioner shares our loopback and listens for this upload: the body goes by TCP."""
    port, token = ready.get("port"), ready.get("token")
    if not (isinstance(port, int) and 1024 <= port <= 65535 and isinstance(token, str)
            and re.fullmatch(r"[0-9a-f]{32}", token)):
        raise ServiceError(502, "the provisioner offered an upload port that is not one it would make")
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as exc:
        raise ServiceError(503, f"the provisioner's upload port did not answer ({exc}); upload again") from None
    writer.write(token.encode() + b"\n")
    return writer


async def _send_body(request: Request, ch: Channel, direct: asyncio.StreamWriter | None, length: int) -> None:
    """Forward the body as it arrives: by TCP on the loopback, or on the channel (both flow-controlled)."""
    sent = 0
    body = request.stream().__aiter__()
    try:
        while True:
            try:
                # A client that stops sending without closing (a laptop asleep) must not hold the job's
                # slot and the half-written volume for ever.
                async with asyncio.timeout(BODY_IDLE_S):
                    data = await body.__anext__()
            except StopAsyncIteration:
                break
            if not data:
                continue
            sent += len(data)
            if sent > length:
                raise ServiceError(400, f"the body is longer than its Content-Length ({length})", "Content-Length")
            if ch.closed is not None:
                raise ch.closed
            if direct is None:
                await ch.send(data)
            else:
                direct.write(data)
                await direct.drain()
        if direct is not None:
            await direct.drain()
    except ChannelClosed as exc:
        raise _channel_error(exc, f"after {sent} of {length} bytes") from None
    except ServiceError:
        raise
    except TimeoutError:
        raise ServiceError(408, f"no data for {BODY_IDLE_S:.0f} s after {sent} of {length} bytes; nothing was kept: "
                                "upload again") from None
    except OSError as exc:
        if ch.closed is None:
            await asyncio.sleep(0.5)  # the provisioner says why right after it drops the connection
        if ch.closed is not None:
            raise _channel_error(ch.closed, f"after {sent} of {length} bytes") from None
        raise ServiceError(503, f"the connection to the provisioner broke after {sent} of {length} bytes "
                                f"({exc}); upload again") from None
    except Exception:  # noqa: BLE001 - the client went away or broke the body off
        raise ServiceError(400, f"the upload was cut off after {sent} of {length} bytes; nothing was kept: "
                                "upload again") from None
    if sent != length:
        raise ServiceError(400, f"the upload ended after {sent} of {length} bytes", "Content-Length")


async def _wait_written(ch: Channel, length: int) -> None:
    """The provisioner's word that every byte is in the volume (it answers after libvirt's finish)."""
    try:
        while True:
            message = msgspec.json.decode(await ch.recv())
            if "written" in message:
                if message["written"] != length:
                    raise ServiceError(500, f"the provisioner wrote {message['written']} of {length} bytes")
                return
    except ChannelClosed as exc:
        raise _channel_error(exc, "while finishing the upload") from None
