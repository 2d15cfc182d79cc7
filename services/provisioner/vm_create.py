"""Job vm.create: disks (empty qcow2, or a qcow2 overlay on a cloud image), the cloud-init seed, define, start.

Every step is idempotent: the names it makes are fixed by the plan recorded at submission (volume names,
the domain's UUID), and each volume is written into ``run.data`` as intended before it is created and as
created after, so a redelivered job finds what an earlier attempt made. Undo removes only what this job
made: volumes it created, the domain with its own UUID.
"""

from __future__ import annotations

import time
from typing import Any

import libvirt
import structlog

from flint.contracts.common import ServiceError
from flint.service import ServiceContext
from flint.virt.connection import libvirt_error
from flint.xml import Domain, StorageVolume
from services.provisioner import cloudinit, netinstall
from services.provisioner.jobs import JobKind, JobRun, Step
from services.provisioner.vm_create_check import check_request

log = structlog.get_logger()
CHUNK = 256 * 1024
UNDEFINE_FLAGS = (
    libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
    | libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
    | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
    | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA
)


async def validate(ctx: ServiceContext, params: dict[str, Any]) -> tuple[dict[str, Any], str]:
    return await ctx.virt.call(check_request, ctx.virt.conn, ctx.virt.uri, ctx.host, ctx.virt_type, params)


# ------------------------------------------------------------------------------------- volume helpers


class VolumeTaken(Exception):
    """The name was free when the request was checked; something else made a volume of that name since."""


def _lookup_volume(conn: libvirt.virConnect, pool: str, name: str) -> libvirt.virStorageVol | None:
    try:
        return conn.storagePoolLookupByName(pool).storageVolLookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
            return None
        raise libvirt_error(exc, f"volume {pool}/{name}") from exc


def _create_volume(conn: libvirt.virConnect, pool: str, xml: str) -> None:
    try:
        conn.storagePoolLookupByName(pool).createXML(xml, 0)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_STORAGE_VOL_EXIST:
            raise VolumeTaken() from exc
        raise libvirt_error(exc, f"create a volume in pool {pool!r}") from exc


def _delete_volume(conn: libvirt.virConnect, pool: str, name: str) -> bool:
    vol = _lookup_volume(conn, pool, name)
    if vol is None:
        return False
    try:
        vol.delete(0)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_VOL:
            raise libvirt_error(exc, f"delete volume {pool}/{name}") from exc
    return True


async def _make_volume(run: JobRun, pool: str, name: str, xml: str) -> bool:
    """Create ``pool/name`` once. Returns False when an earlier attempt of this job already made it."""
    key = f"{pool}/{name}"
    intent: list[str] = run.data.setdefault("intended_volumes", [])
    created: list[str] = run.data.setdefault("created_volumes", [])
    if key in created:
        return False
    call, conn = run.ctx.virt.call, run.ctx.virt.conn
    if await call(_lookup_volume, conn, pool, name) is not None:
        if key in intent:  # made by an attempt that died before it could say so
            created.append(key)
            await run.save()
            return False
        raise ServiceError(409, f"volume {key} appeared after the request was checked: it is not this job's, "
                                "so it is left alone; delete it or name the VM differently")
    intent.append(key)
    await run.save()
    try:
        await call(_create_volume, conn, pool, xml)
    except VolumeTaken:
        intent.remove(key)
        await run.save()
        raise ServiceError(409, f"volume {key} was made by someone else meanwhile; it is left alone") from None
    created.append(key)
    await run.save()
    return True


async def _remove_volumes(run: JobRun, keys: list[str]) -> None:
    mine = set(run.data.get("intended_volumes", [])) | set(run.data.get("created_volumes", []))
    for key in keys:
        if key not in mine:
            continue
        pool, _, name = key.partition("/")
        if await run.ctx.virt.call(_delete_volume, run.ctx.virt.conn, pool, name):
            log.info("volume removed", volume=key)
        for list_name in ("intended_volumes", "created_volumes"):
            if key in run.data.get(list_name, []):
                run.data[list_name].remove(key)
        await run.save()


# ---------------------------------------------------------------------------------------------- steps


async def create_disks(run: JobRun) -> None:
    disks = run.params["disks"]
    for i, disk in enumerate(disks):
        backing = disk["backing"]
        if backing:
            vol = StorageVolume.qcow2_overlay(disk["volume"], disk["capacity"], backing["path"], backing["format"])
            what = f"overlay {disk['volume']} on {backing['path']}"
        else:
            vol = StorageVolume(name=disk["volume"], capacity=disk["capacity"], allocation=0)
            if disk["format"] != "raw":
                vol.format = disk["format"]
            what = f"disk {disk['volume']} ({disk['capacity'] / 1024**3:g} GiB)"
        await run.progress(run.job.progress, f"creating {what} in pool {disk['pool']}")
        await _make_volume(run, disk["pool"], disk["volume"], vol.to_xml())
        log.info("disk ready", pool=disk["pool"], volume=disk["volume"], index=i)


async def undo_disks(run: JobRun) -> None:
    await _remove_volumes(run, [f"{d['pool']}/{d['volume']}" for d in run.params["disks"]])


def _upload(conn: libvirt.virConnect, pool: str, name: str, data: bytes) -> None:
    vol = conn.storagePoolLookupByName(pool).storageVolLookupByName(name)
    stream = conn.newStream(0)
    try:
        vol.upload(stream, 0, len(data), 0)
        offset = 0
        while offset < len(data):
            sent = stream.send(data[offset : offset + CHUNK])
            if sent < 0:
                raise RuntimeError("the stream refused data")
            offset += sent
        stream.finish()
    except BaseException:
        try:
            stream.abort()
        except libvirt.libvirtError:
            pass
        raise


async def make_seed(run: JobRun) -> None:
    seed, ci = run.params["seed"], run.params["cloud_init"]
    if not seed or run.data.get("seed_uploaded"):
        return
    files = cloudinit.seed_files(ci, f"iid-{run.params['uuid']}", [n["mac"] for n in run.params["nics"]])
    iso = cloudinit.seed_iso(files)
    await run.progress(run.job.progress, f"writing the cloud-init seed {seed['volume']} ({len(iso)} bytes)")
    vol = StorageVolume(name=seed["volume"], capacity=len(iso), allocation=0, format=seed.get("format"))
    await _make_volume(run, seed["pool"], seed["volume"], vol.to_xml())
    try:
        await run.ctx.virt.call(_upload, run.ctx.virt.conn, seed["pool"], seed["volume"], iso)
    except libvirt.libvirtError as exc:
        raise libvirt_error(exc, f"upload the cloud-init seed to {seed['pool']}/{seed['volume']}") from exc
    run.data["seed_uploaded"] = True
    await run.save()


async def undo_seed(run: JobRun) -> None:
    seed = run.params["seed"]
    if seed:
        await _remove_volumes(run, [f"{seed['pool']}/{seed['volume']}"])


def _domain(conn: libvirt.virConnect, vm_uuid: str) -> libvirt.virDomain | None:
    try:
        return conn.lookupByUUIDString(vm_uuid)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return None
        raise libvirt_error(exc, f"VM {vm_uuid}") from exc


def _metadata(run: JobRun) -> dict[str, str]:
    p = run.params
    values = {
        "created-by": run.job.user or "unknown",
        "created-at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(run.job.created_at or time.time())),
        "created-from": p["source"]["kind"],
        "source-volume": p["source"]["volume"],
        "job": run.job.id,
    }
    if p["seed"]:
        values["seed-volume"] = f"{p['seed']['pool']}/{p['seed']['volume']}"
    if p.get("direct_boot"):
        values["kernel-volume"] = p["direct_boot"]["kernel_ref"]
    return values


async def define(run: JobRun) -> None:
    p = run.params
    dom = Domain.parse(p["domain_xml"])
    dom.set_flint_metadata(_metadata(run))
    xml = dom.to_xml()

    def blocking() -> None:
        conn = run.ctx.virt.conn
        if _domain(conn, p["uuid"]) is not None:
            return  # defined by an earlier attempt
        try:
            conn.defineXMLFlags(xml, libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
        except libvirt.libvirtError as exc:
            raise libvirt_error(exc, f"define VM {p['name']!r}") from exc

    await run.progress(run.job.progress, f"defining {p['name']}")
    await run.ctx.virt.call(blocking)
    run.job.result = {"id": p["uuid"], "name": p["name"]}
    if p.get("warnings"):
        run.job.result["warnings"] = p["warnings"]
    await run.save()


async def undo_define(run: JobRun) -> None:
    p = run.params

    def blocking() -> None:
        dom = _domain(run.ctx.virt.conn, p["uuid"])  # only ever this job's domain, by its UUID
        if dom is None:
            return
        try:
            if dom.isActive():
                dom.destroy()
            dom.undefineFlags(UNDEFINE_FLAGS)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                raise libvirt_error(exc, f"undefine {p['name']!r}") from exc

    await run.ctx.virt.call(blocking)
    run.job.result = {}


async def start(run: JobRun) -> None:
    p = run.params
    if not p["start"]:
        return
    if p.get("netinstall"):
        await netinstall.start_install(run)  # a transient install run; the persistent definition boots the disk
        return

    def blocking() -> None:
        dom = _domain(run.ctx.virt.conn, p["uuid"])
        if dom is None:
            raise ServiceError(409, f"VM {p['name']!r} ({p['uuid']}) disappeared before it could start")
        if dom.isActive():
            return
        try:
            dom.create()
        except libvirt.libvirtError as exc:
            raise libvirt_error(exc, f"start VM {p['name']!r}") from exc

    await run.progress(run.job.progress, f"starting {p['name']}")
    await run.ctx.virt.call(blocking)


async def undo_start(run: JobRun) -> None:
    def blocking() -> None:
        dom = _domain(run.ctx.virt.conn, run.params["uuid"])
        if dom is not None and dom.isActive():
            try:
                dom.destroy()
            except libvirt.libvirtError as exc:
                if dom.isActive():
                    raise libvirt_error(exc, f"power off {run.params['name']!r}") from exc

    await run.ctx.virt.call(blocking)


VM_CREATE = JobKind(
    name="vm.create",
    validate=validate,
    steps=[
        Step("create disks", create_disks, undo_disks, weight=2),
        Step("cloud-init seed", make_seed, undo_seed),
        Step("installer files", netinstall.fetch_files, netinstall.remove_files, weight=3),
        Step("define", define, undo_define),
        Step("start", start, undo_start, weight=2),
        Step("installer cleanup", netinstall.cleanup_files, weight=0.2),
    ],
)
