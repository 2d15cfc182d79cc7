"""Storage pools on the host's libvirt: create (with undo), delete, actions, details, and who uses what.

Every function here BLOCKS (libvirt calls): the handlers run them with ``ctx.virt.call``. Everything goes
through libvirt's storage API, so the same code serves a remote (qemu+ssh) host.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePosixPath

import libvirt
import structlog

from flint.contracts.common import ServiceError
from flint.contracts.storage import POOL_ACTIONS, Deleted, PoolCreate, PoolDelete, PoolDetail, PoolSource
from flint.virt.connection import libvirt_error
from flint.xml import StoragePool, StorageVolume, domain_summary
from services.provisioner.storage_spec import IMAGE_POOL, build_plan, pool_model

log = structlog.get_logger()
POOL_STATES = ("inactive", "building", "running", "degraded", "inaccessible")


def lookup_pool(conn: libvirt.virConnect, name: str, field: str = "pool") -> libvirt.virStoragePool:
    try:
        return conn.storagePoolLookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_POOL:
            raise ServiceError(404, f"no storage pool named {name!r}", field) from None
        raise libvirt_error(exc, f"pool {name!r}") from exc


def pool_exists(conn: libvirt.virConnect, name: str) -> bool:
    try:
        conn.storagePoolLookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_POOL:
            return False
        raise libvirt_error(exc, f"pool {name!r}") from exc
    return True


def require_active(pool: libvirt.virStoragePool) -> None:
    if not pool.isActive():
        raise ServiceError(409, f"storage pool {pool.name()!r} is not active: start it first", "pool")


def pool_detail(host: str, pool: libvirt.virStoragePool) -> PoolDetail:
    xml = StoragePool.parse(pool.XMLDesc(0))
    state, capacity, allocation, available = pool.info()
    active = state in (2, 3)
    count = len(pool.listAllVolumes(0)) if active else 0
    return PoolDetail(
        host=host,
        name=pool.name(),
        uuid=pool.UUIDString(),
        type=xml.type or "",
        state=POOL_STATES[state] if 0 <= state < len(POOL_STATES) else "inactive",
        active=active,
        autostart=bool(pool.autostart()),
        persistent=bool(pool.isPersistent()),
        target=xml.target_path,
        capacity=capacity if active else 0,
        allocation=allocation if active else 0,
        available=available if active else 0,
        volumes=count,
        source=PoolSource(
            host=(xml.source_hosts or [None])[0],
            port=xml.source_host_port,
            dir=xml.source_dir,
            name=xml.source_name,
            devices=xml.source_devices,
            format=xml.source_format,
            adapter=xml.source_adapter_name,
            initiator=xml.initiator_iqn,
            auth_username=xml.source_auth_username,
            auth_secret_uuid=xml.source_auth_secret_uuid,
        ),
    )


def get_pool(conn: libvirt.virConnect, host: str, name: str) -> PoolDetail:
    return pool_detail(host, lookup_pool(conn, name))


def refresh_quietly(pool: libvirt.virStoragePool) -> None:
    """Re-read the pool so its figures (and the inventory, through libvirt's refresh event) are current.
    libvirt refuses while another upload into the pool runs; the periodic refresh catches up then."""
    try:
        if pool.isActive():
            pool.refresh(0)
    except libvirt.libvirtError as exc:
        log.info("pool refresh skipped", pool=pool.name(), reason=exc.get_error_message())


def create_pool(conn: libvirt.virConnect, host: str, req: PoolCreate) -> PoolDetail:
    """define → build → start → autostart; when a step fails, the earlier ones are undone."""
    model = pool_model(req)
    build, flags = build_plan(req)
    if pool_exists(conn, req.name):
        raise ServiceError(409, f"a storage pool named {req.name!r} already exists", "name")
    undo: list[tuple[str, Callable[[], object]]] = []
    step = "define"
    try:
        pool = conn.storagePoolDefineXML(model.to_xml(), libvirt.VIR_STORAGE_POOL_DEFINE_VALIDATE)
        undo.append(("undefine", pool.undefine))
        if build:
            step = "build"
            pool.build(flags)
            if req.type in ("logical", "zfs"):  # a VG or zpool we made: remove it again
                undo.append(("delete what the build made", lambda: pool.delete(0)))
        if req.start:
            step = "start"
            pool.create(0)
            undo.append(("stop", pool.destroy))
        if req.autostart:
            step = "autostart"
            pool.setAutostart(1)
        return pool_detail(host, pool)
    except libvirt.libvirtError as exc:
        left = []
        for what, fn in reversed(undo):
            try:
                fn()
            except libvirt.libvirtError as undo_exc:
                left.append(f"{what}: {undo_exc.get_error_message()}")
        err = libvirt_error(exc, f"{step} pool {req.name!r}")
        if err.code == 502:  # the host refused what the request described (device, server, path)
            err = ServiceError(422, err.message.replace(": libvirt said:", ":"))
        tail = "; nothing was left behind" if not left else f"; could not undo: {'; '.join(left)}"
        raise ServiceError(err.code, err.message + tail, _field_of_step(step, req)) from exc


def _field_of_step(step: str, req: PoolCreate) -> str | None:
    if step == "define":
        return {"dir": "target", "netfs": "source.dir"}.get(req.type, "source.devices" if req.source.devices else None)
    if step in ("build", "start"):
        if req.type in ("fs", "disk", "logical") and req.source.devices:
            return "source.devices"
        if req.source.host:
            return "source.host"
        return "target"
    return None


# ---- who uses what -----------------------------------------------------------------------------------

def disk_users(conn: libvirt.virConnect) -> list[tuple[str, bool, dict]]:
    """(VM name, running?, disk) for every disk of every VM, from its persistent and live XML."""
    found = []
    for dom in conn.listAllDomains(0):
        try:
            name, active = dom.name(), bool(dom.isActive())
            xmls = [dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)]
            if active:
                xmls.append(dom.XMLDesc(0))
        except libvirt.libvirtError:
            continue  # gone while we looked
        seen = set()
        for xml in xmls:
            for disk in domain_summary(xml)["disks"]:
                key = (disk["path"], disk["pool"], disk["volume"])
                if key not in seen:
                    seen.add(key)
                    found.append((name, active, disk))
    return found


def vms_using(conn: libvirt.virConnect, pool: str, volumes: dict[str, str], target: str | None = None,
              running_only: bool = False) -> dict[str, list[str]]:
    """volume name -> names of the VMs whose disks use it (by path, by pool/volume, or by a path under the
    directory of a pool of files (``target``) that libvirt has not listed yet)."""
    by_path = {path: name for name, path in volumes.items() if path}
    under = PurePosixPath(target) if target and target.startswith("/") else None
    users: dict[str, list[str]] = {}
    for vm, active, disk in disk_users(conn):
        if running_only and not active:
            continue
        vol = None
        if disk["pool"] == pool and disk["volume"]:
            vol = disk["volume"]
        elif disk["path"] in by_path:
            vol = by_path[disk["path"]]
        elif under is not None and disk["path"] and PurePosixPath(disk["path"]).is_relative_to(under):
            vol = PurePosixPath(disk["path"]).name
        if vol is not None and vm not in users.setdefault(vol, []):
            users[vol].append(vm)
    return users


def overlays_on(conn: libvirt.virConnect, paths: set[str]) -> dict[str, list[str]]:
    """path -> "pool/volume" of the volumes in any active pool whose backing file it is."""
    found: dict[str, list[str]] = {}
    if not paths:
        return found
    for pool in conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE):
        try:
            vols = pool.listAllVolumes(0)
        except libvirt.libvirtError:
            continue
        for vol in vols:
            try:
                backing = StorageVolume.parse(vol.XMLDesc(0)).backing_path
            except libvirt.libvirtError:
                continue
            if backing in paths:
                found.setdefault(backing, []).append(f"{pool.name()}/{vol.name()}")
    return found


def describe_users(users: dict[str, list[str]]) -> str:
    return "; ".join(f"{vol} is used by VM {', '.join(vms)}" for vol, vms in sorted(users.items()))


# ---- delete and actions ------------------------------------------------------------------------------

def delete_pool(conn: libvirt.virConnect, req: PoolDelete) -> Deleted:
    """Stop and undefine; with delete_volumes also remove the storage (after the volumes, with force).
    Refused while a VM uses one of its volumes: the refusal names them."""
    pool = lookup_pool(conn, req.name)
    xml = StoragePool.parse(pool.XMLDesc(0))
    active, persistent = bool(pool.isActive()), bool(pool.isPersistent())
    if req.delete_volumes and not persistent:
        raise ServiceError(409, f"storage pool {req.name!r} is transient: it vanishes when stopped, so its storage "
                                "cannot be deleted through it; delete its volumes first, then the pool", "delete_volumes")
    volumes: dict[str, str] = {}
    if active:
        volumes = {v.name(): v.path() for v in pool.listAllVolumes(0)}
    file_pool = xml.type in ("dir", "fs", "netfs", "vstorage")
    users = vms_using(conn, req.name, volumes, xml.target_path if file_pool else None)
    if users:
        raise ServiceError(409, f"storage pool {req.name!r} is in use: {describe_users(users)}", "pool")
    backed = overlays_on(conn, set(volumes.values()))
    outside = {p: [o for o in on if o.split("/", 1)[0] != req.name] for p, on in backed.items()}
    outside = {p: on for p, on in outside.items() if on}
    if outside:
        which = "; ".join(f"{p} backs {', '.join(on)}" for p, on in outside.items())
        raise ServiceError(409, f"storage pool {req.name!r} holds base images of other volumes: {which}", "pool")
    deleted: list[str] = []
    try:
        if req.delete_volumes:
            if not active:
                pool.create(0)  # to see what it holds
                active = True
                volumes = {v.name(): v.path() for v in pool.listAllVolumes(0)}
            if volumes and not req.force:
                names = ", ".join(sorted(volumes)[:20]) + (" ..." if len(volumes) > 20 else "")
                raise ServiceError(409, f"storage pool {req.name!r} still holds {len(volumes)} volume(s): {names}; "
                                        "delete them first, or ask to force", "force")
            if xml.type == "disk":  # wiping the label (pool.delete below) removes every partition at once
                deleted = sorted(volumes)
            else:  # overlays first, then the base images they sit on
                for vol in sorted(pool.listAllVolumes(0), key=lambda v: v.path() in backed):
                    vol.delete(0)
                    deleted.append(vol.name())
        if active:
            pool.destroy()
        if req.delete_volumes:
            pool.delete(0)
        if persistent:
            pool.undefine()
    except libvirt.libvirtError as exc:
        raise libvirt_error(exc, f"delete pool {req.name!r}") from exc
    return Deleted(deleted=req.name, deleted_volumes=deleted, storage_deleted=req.delete_volumes)


def pool_action(conn: libvirt.virConnect, host: str, name: str, action: str) -> PoolDetail:
    if action not in POOL_ACTIONS:
        raise ServiceError(422, f"action must be one of {', '.join(POOL_ACTIONS)}", "action")
    pool = lookup_pool(conn, name)
    active = bool(pool.isActive())
    try:
        if action == "start" and not active:
            pool.create(0)
        elif action == "stop" and active:
            users = vms_using(conn, name, {v.name(): v.path() for v in pool.listAllVolumes(0)},
                              running_only=True)
            if users:
                raise ServiceError(409, f"storage pool {name!r} is in use by running VMs: {describe_users(users)}",
                                   "pool")
            pool.destroy()
        elif action == "refresh":
            require_active(pool)
            pool.refresh(0)
        elif action in ("autostart", "noautostart"):
            pool.setAutostart(1 if action == "autostart" else 0)
        elif action == "build":
            if active:
                raise ServiceError(409, f"storage pool {name!r} is active: stop it before building", "action")
            pool.build(libvirt.VIR_STORAGE_POOL_BUILD_NO_OVERWRITE if _block_type(pool) else 0)
    except libvirt.libvirtError as exc:
        raise libvirt_error(exc, f"{action} pool {name!r}") from exc
    return pool_detail(host, pool)


def _block_type(pool: libvirt.virStoragePool) -> bool:
    return (StoragePool.parse(pool.XMLDesc(0)).type or "") in ("logical", "disk", "zfs")


def ensure_image_pool(conn: libvirt.virConnect, host: str, path: str) -> PoolDetail:
    """The image library: a dir pool named flint-images at ``path``, defined, built, started and set to
    autostart on first use; an existing one (wherever its directory) is started if it is not running."""
    try:
        pool = conn.storagePoolLookupByName(IMAGE_POOL)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_POOL:
            raise libvirt_error(exc, f"pool {IMAGE_POOL}") from exc
        return create_pool(conn, host, PoolCreate(name=IMAGE_POOL, type="dir", target=path))
    if not pool.isActive():
        try:
            pool.create(0)
        except libvirt.libvirtError as exc:
            if pool.isActive():
                return pool_detail(host, pool)
            raise libvirt_error(exc, f"start the image library pool {IMAGE_POOL}") from exc
    return pool_detail(host, pool)
