"""The provisioner's storage endpoints (flint.<host>.provisioner.<verb>): thin, blocking work off the loop."""

from __future__ import annotations

import structlog

from flint.bus import Endpoint
from flint.contracts.common import Empty, ServiceError
from flint.contracts.storage import (
    Deleted,
    PoolAction,
    PoolCreate,
    PoolDelete,
    PoolDetail,
    PoolRef,
    UploadCheck,
    UploadCheckReply,
    VolumeCreate,
    VolumeInfo,
    VolumeList,
    VolumeRef,
    VolumeResize,
    VolumesList,
)
from flint.service import ServiceContext
from services.provisioner import pools, volumes
from services.provisioner.storage_spec import IMAGE_POOL
from services.provisioner.volume_jobs import check_target, ensure_library

log = structlog.get_logger()


def storage_endpoints(ctx: ServiceContext) -> list[Endpoint]:
    virt = ctx.virt

    async def pool_get(req: PoolRef) -> PoolDetail:
        return await virt.call(pools.get_pool, virt.conn, ctx.host, req.name)

    async def pool_create(req: PoolCreate) -> PoolDetail:
        detail = await virt.call(pools.create_pool, virt.conn, ctx.host, req)
        log.info("pool created", pool=req.name, type=req.type)
        return detail

    async def pool_delete(req: PoolDelete) -> Deleted:
        done = await virt.call(pools.delete_pool, virt.conn, req)
        log.info("pool deleted", pool=req.name, storage_deleted=req.delete_volumes)
        return done

    async def pool_action(req: PoolAction) -> PoolDetail:
        return await virt.call(pools.pool_action, virt.conn, ctx.host, req.name, req.action)

    async def images_ensure(_: Empty) -> PoolDetail:
        await ensure_library(ctx)
        return await virt.call(pools.get_pool, virt.conn, ctx.host, IMAGE_POOL)

    async def volumes_list(req: VolumesList) -> VolumeList:
        return VolumeList(pool=req.pool, volumes=await virt.call(volumes.list_volumes, virt.conn, req.pool))

    async def volume_create(req: VolumeCreate) -> VolumeInfo:
        if req.pool == IMAGE_POOL:
            await ensure_library(ctx)
        info = await virt.call(volumes.create_volume, virt.conn, req)
        log.info("volume created", pool=req.pool, volume=req.name, capacity=info.capacity)
        return info

    async def volume_delete(req: VolumeRef) -> Deleted:
        return await virt.call(volumes.delete_volume, virt.conn, req.pool, req.name)

    async def volume_resize(req: VolumeResize) -> VolumeInfo:
        return await virt.call(volumes.resize_volume, virt.conn, req)

    async def upload_check(req: UploadCheck) -> UploadCheckReply:
        volumes.check_volume_name(req.name)
        await check_target(ctx, req.pool, req.name, req.size)
        pool = await virt.call(pools.get_pool, virt.conn, ctx.host, req.pool)
        if not pool.active:
            raise ServiceError(409, f"storage pool {req.pool!r} is not active", "pool")
        return UploadCheckReply(pool=req.pool, name=req.name, available=pool.available)

    return [
        Endpoint("pool.get", PoolRef, pool_get),
        Endpoint("pool.create", PoolCreate, pool_create),
        Endpoint("pool.delete", PoolDelete, pool_delete),
        Endpoint("pool.action", PoolAction, pool_action),
        Endpoint("images.ensure", Empty, images_ensure),
        Endpoint("volumes.list", VolumesList, volumes_list),
        Endpoint("volume.create", VolumeCreate, volume_create),
        Endpoint("volume.delete", VolumeRef, volume_delete),
        Endpoint("volume.resize", VolumeResize, volume_resize),
        Endpoint("volume.upload.check", UploadCheck, upload_check),
    ]
