"""Volumes on the host's libvirt: list, create, delete, resize, and writing bytes in through a libvirt stream.

The synchronous functions BLOCK (libvirt calls): run them with ``ctx.virt.call``. Data goes through
virStorageVolUpload streams, never through a local path, so a remote (qemu+ssh) host works the same.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import libvirt

from flint.contracts.common import ServiceError
from flint.contracts.storage import Deleted, VolumeCreate, VolumeInfo, VolumeResize
from flint.virt.connection import VirtConnection, libvirt_error
from flint.xml import StoragePool, StorageVolume, validate_name
from services.provisioner.pools import (
    lookup_pool,
    overlays_on,
    refresh_quietly,
    require_active,
    vms_using,
)
from services.provisioner.storage_spec import needs_full_space, parse_size, volume_model

VOL_TYPES = ("file", "block", "dir", "network", "netdir", "ploop")


def _fmt_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return f"{n} B"


def check_volume_name(name: str) -> str:
    try:
        return validate_name("volume", name)
    except ValueError as exc:
        raise ServiceError(422, f"name: {exc}", "name") from None


def lookup_volume(pool: libvirt.virStoragePool, name: str, field: str = "name") -> libvirt.virStorageVol:
    try:
        return pool.storageVolLookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
            raise ServiceError(404, f"no volume {name!r} in storage pool {pool.name()!r}", field) from None
        raise libvirt_error(exc, f"volume {pool.name()}/{name}") from exc


def volume_exists(pool: libvirt.virStoragePool, name: str) -> bool:
    try:
        pool.storageVolLookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
            return False
        raise libvirt_error(exc, f"volume {pool.name()}/{name}") from exc
    return True


def pool_type(pool: libvirt.virStoragePool) -> str:
    return StoragePool.parse(pool.XMLDesc(0)).type or ""


def volume_info(pool_name: str, vol: libvirt.virStorageVol) -> VolumeInfo:
    kind, capacity, allocation = vol.info()
    xml = StorageVolume.parse(vol.XMLDesc(0))
    return VolumeInfo(
        name=vol.name(),
        pool=pool_name,
        path=vol.path(),
        capacity=capacity,
        allocation=allocation,
        format=xml.format,
        type=VOL_TYPES[kind] if 0 <= kind < len(VOL_TYPES) else "file",
        backing_path=xml.backing_path,
    )


def list_volumes(conn: libvirt.virConnect, pool_name: str) -> list[VolumeInfo]:
    pool = lookup_pool(conn, pool_name)
    require_active(pool)
    found = []
    for vol in pool.listAllVolumes(0):
        try:
            found.append(volume_info(pool_name, vol))
        except libvirt.libvirtError:
            continue  # deleted while we listed
    return sorted(found, key=lambda v: v.name)


def create_volume(conn: libvirt.virConnect, req: VolumeCreate) -> VolumeInfo:
    pool = lookup_pool(conn, req.pool)
    kind = pool_type(pool)
    model = volume_model(req.name, req.capacity, req.format, kind, req.preallocate)
    require_active(pool)
    if volume_exists(pool, req.name):
        raise ServiceError(409, f"storage pool {req.pool!r} already has a volume named {req.name!r}", "name")
    capacity = model.capacity or 0
    available = pool.info()[3]
    if needs_full_space(req.format, kind, req.preallocate) and capacity > available:
        raise ServiceError(
            422, f"capacity: {_fmt_bytes(capacity)} does not fit: storage pool {req.pool!r} has "
                 f"{_fmt_bytes(available)} free", "capacity")
    try:
        vol = pool.createXML(model.to_xml(), 0)
    except libvirt.libvirtError as exc:
        raise libvirt_error(exc, f"create volume {req.pool}/{req.name}") from exc
    refresh_quietly(pool)
    return volume_info(req.pool, vol)


def users_of_volume(conn: libvirt.virConnect, pool_name: str, vol: libvirt.virStorageVol,
                    running_only: bool = False) -> list[str]:
    users = vms_using(conn, pool_name, {vol.name(): vol.path()}, running_only=running_only)
    return users.get(vol.name(), [])


def delete_volume(conn: libvirt.virConnect, pool_name: str, name: str) -> Deleted:
    pool = lookup_pool(conn, pool_name, "pool")
    require_active(pool)
    vol = lookup_volume(pool, name)
    path = vol.path()
    vms = users_of_volume(conn, pool_name, vol)
    if vms:
        raise ServiceError(409, f"volume {pool_name}/{name} is used by VM {', '.join(vms)}", "name")
    overlays = overlays_on(conn, {path}).get(path, [])
    if overlays:
        raise ServiceError(409, f"volume {pool_name}/{name} is the base image of {', '.join(overlays)}", "name")
    try:
        vol.delete(0)
    except libvirt.libvirtError as exc:
        err = libvirt_error(exc, f"delete volume {pool_name}/{name}")
        if pool_type(pool) == "disk" and "parted" in err.message and name[-1:].isdigit() and "p" in name:
            # libvirt takes the partition number as what follows the disk's name, so for disks whose name
            # ends in a digit (loop0p1, nvme0n1p1) it asks parted to remove partition "p1".
            err = ServiceError(err.code, err.message.rstrip() + " — libvirt cannot delete partitions of a disk "
                               "whose name ends in a digit; delete the pool with its storage to wipe the whole "
                               "disk, or remove the partition with parted on the host and refresh the pool", "name")
        raise err from exc
    refresh_quietly(pool)
    return Deleted(deleted=f"{pool_name}/{name}")


def resize_volume(conn: libvirt.virConnect, req: VolumeResize) -> VolumeInfo:
    """Grow (or, when allowed, shrink) to ``capacity``. A disk of a running VM is refused: resizing under a
    running guest must go through the VM (blockresize), or the guest sees a disk change size unannounced."""
    pool = lookup_pool(conn, req.pool)
    require_active(pool)
    vol = lookup_volume(pool, req.name)
    new = parse_size(req.capacity, "capacity")
    _, current, _ = vol.info()
    if new == current:
        return volume_info(req.pool, vol)
    if new < current and not req.allow_shrink:
        raise ServiceError(409, f"capacity: {_fmt_bytes(new)} is smaller than the volume's {_fmt_bytes(current)}; "
                                "shrinking loses the data past the new end: ask with allow_shrink", "capacity")
    running = users_of_volume(conn, req.pool, vol, running_only=True)
    if running:
        raise ServiceError(409, f"volume {req.pool}/{req.name} is a disk of running VM {', '.join(running)}: "
                                "resize it while the VM is shut off", "name")
    kind = pool_type(pool)
    if new > current and needs_full_space("raw", kind, False):
        available = pool.info()[3]
        if new - current > available:
            raise ServiceError(422, f"capacity: growing by {_fmt_bytes(new - current)} does not fit: storage pool "
                                    f"{req.pool!r} has {_fmt_bytes(available)} free", "capacity")
    flags = libvirt.VIR_STORAGE_VOL_RESIZE_SHRINK if new < current else 0
    try:
        vol.resize(new, flags)
    except libvirt.libvirtError as exc:
        raise libvirt_error(exc, f"resize volume {req.pool}/{req.name}") from exc
    refresh_quietly(pool)
    return volume_info(req.pool, pool.storageVolLookupByName(req.name))


# ---- writing bytes into a volume ---------------------------------------------------------------------

def _send_all(stream: libvirt.virStream, data: bytes) -> None:
    """A blocking stream takes the whole buffer at once (the RPC layer splits it); loop in case it
    does not."""
    while data:
        sent = stream.send(data)
        if sent < 0:
            raise OSError("libvirt stream refused the data")
        data = data[sent:]


Progress = Callable[[int], Awaitable[None]]


async def write_stream(virt: VirtConnection, pool_name: str, name: str, length: int,
                       chunks: AsyncIterator[bytes], progress: Progress | None = None,
                       every_s: float = 0.5) -> int:
    """Upload what ``chunks`` yields into the volume from offset 0 (length 0: as much as comes, for files).
    One libvirt send is in flight while the next chunk is read, so reading and writing overlap.
    Returns the byte count; aborts the libvirt stream on any failure."""

    def open_stream() -> libvirt.virStream:
        conn = virt.conn
        vol = lookup_volume(lookup_pool(conn, pool_name), name)
        stream = conn.newStream(0)
        try:
            vol.upload(stream, 0, length, 0)
        except libvirt.libvirtError as exc:
            raise libvirt_error(exc, f"open volume {pool_name}/{name} for writing") from exc
        return stream

    stream = await virt.call(open_stream)
    pending: asyncio.Future | None = None
    total = 0
    last = time.monotonic()
    try:
        async for data in chunks:
            if not data:
                continue
            if pending is not None:
                await pending
            pending = asyncio.ensure_future(virt.call(_send_all, stream, data))
            total += len(data)
            if progress is not None and time.monotonic() - last >= every_s:
                last = time.monotonic()
                await progress(total)
        if pending is not None:
            await pending
            pending = None
        await virt.call(stream.finish)
    except BaseException as exc:
        if pending is not None:
            if not pending.done():
                await asyncio.wait([pending])
            if not pending.cancelled():
                pending.exception()  # retrieved: the first failure is the one reported
        try:
            await virt.call(stream.abort)
        except libvirt.libvirtError:
            pass
        if isinstance(exc, libvirt.libvirtError):
            raise libvirt_error(exc, f"write volume {pool_name}/{name}") from exc
        raise
    if progress is not None:
        await progress(total)
    return total
