"""Pools and volumes of a host: requests to its provisioner; uploads streamed through the Object Store.

Roles (gateway/authz.py): reads are viewer; volume changes, uploads, imports and pool start/stop/refresh/
autostart are operator; creating and deleting pools, and the `build` action, are admin, because they
act on the host itself (mkfs, vgcreate, partition labels, directories anywhere on its filesystems).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Annotated, Any

import msgspec
import structlog
from litestar import Controller, Request, Response, delete, get, post, put
from litestar.exceptions import InternalServerException
from litestar.params import Parameter
from msgspec import Meta

from flint import bus, objects, subjects
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
        """The body becomes a new volume (raw bytes: an ISO, a qcow2 or raw image). It is streamed into the
        upload bucket (never held in memory), then a volume.upload job writes it into the pool; the
        answer is that job (202). Content-Length is required and must fit the pool's free space."""
        if content_length is None:
            raise ServiceError(411, "Content-Length is required: send the file's size with the upload",
                               "Content-Length")
        if content_length < 1:
            raise ServiceError(400, "the upload is empty", "Content-Length")
        await _ask(request, host, "volume.upload.check", UploadCheck(pool=pool, name=vol, size=content_length),
                   UploadCheckReply, timeout=60)
        g = gw(request)
        js = g.nc.jetstream()
        await objects.open_bucket(js, replicas=g.settings.stream_replicas)
        name = f"{host}.{secrets.token_hex(12)}"
        try:
            size, _ = await objects.put_stream(js, name, request.stream(), limit=content_length)
        except objects.TooLarge:
            raise ServiceError(400, f"the body is longer than its Content-Length ({content_length})",
                               "Content-Length") from None
        except InternalServerException:
            raise ServiceError(400, "the upload was cut off before its end") from None
        if size != content_length:
            await objects.delete(js, name)
            raise ServiceError(400, f"the upload ended after {size} of {content_length} bytes", "Content-Length")
        try:
            answer = await submit_job(request, host, "volume.upload",
                                      {"pool": pool, "name": vol, "size": size, "object": name})
        except BaseException:
            await objects.delete(js, name)
            raise
        task = asyncio.create_task(_drop_when_done(g, answer.content.id, name))
        _cleanups.add(task)
        task.add_done_callback(_cleanups.discard)
        return answer


_cleanups: set[asyncio.Task] = set()


async def _drop_when_done(g, job_id: str, name: str) -> None:
    """The host's job deletes the object when it ends; an agent's NATS user may not be allowed to (it
    cannot purge streams), so the gateway that wrote it makes sure. What a gateway restart forgets, the
    bucket's TTL removes."""
    deadline = time.monotonic() + subjects.OBJ_UPLOADS_TTL_S
    while time.monotonic() < deadline:
        job = g.view.jobs.get(job_id)
        if job is not None and job.state in ("succeeded", "failed"):
            break
        await asyncio.sleep(2)
    try:
        await objects.delete(g.nc.jetstream(), name)
    except Exception as exc:  # noqa: BLE001 - the TTL removes it later; say so
        log.warning("upload object not deleted", object=name, error=repr(exc))
