"""Pool and volume requests checked field by field and turned into libvirt XML models. PURE: no libvirt
connection, no I/O; every refusal is a ServiceError naming the field (``source.host``, ``capacity``...).

Each pool type is one row of TYPES: where its target is (required, a default, or none), which source
fields it needs and which it accepts, and the source formats libvirt knows for it. A field a type does
not use is refused rather than silently dropped, so a typo in a form never builds a different pool.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from dataclasses import dataclass

import libvirt
from lxml import etree

from flint.contracts.common import ServiceError
from flint.contracts.storage import POOL_TYPES, PoolCreate, PoolSource
from flint.xml import StoragePool, StorageVolume, validate_name
from flint.xml.base import to_bytes

IMAGE_POOL = "flint-images"  # the image library: a dir pool under <data dir>/images, made on first use

FS_FORMATS = ("auto", "ext2", "ext3", "ext4", "ufs", "iso9660", "udf", "gfs", "gfs2", "vfat", "hfs+", "xfs",
              "ocfs2", "vmfs")
NETFS_FORMATS = ("auto", "nfs", "glusterfs", "cifs")
DISK_FORMATS = ("gpt", "dos", "dvh", "mac", "bsd", "pc98", "sun", "lvm2")
SOURCE_FIELDS = tuple(PoolSource.__struct_fields__)
MAX_BYTES = 2**63 - 1

_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
_IQN = re.compile(r"^(iqn\.\d{4}-\d{2}\.[a-z0-9][a-z0-9.-]*(:[^\s]{1,200})?|eui\.[0-9A-Fa-f]{16}|naa\.[0-9A-Fa-f]{16,32})$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_VG = re.compile(r"^[A-Za-z0-9+_][A-Za-z0-9+_.-]{0,126}$")  # LVM's own rule (no leading '-')
_PLAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,126}$")  # ceph pool, gluster volume, zpool, share
_ADAPTER = re.compile(r"^(scsi_)?host\d{1,5}$")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")


@dataclass(frozen=True)
class PoolType:
    name: str
    target: str | None  # "required", a default path, or None (libvirt has no target for this type)
    needs: tuple[str, ...] = ()
    allows: tuple[str, ...] = ()
    formats: tuple[str, ...] = ()
    default_format: str | None = None
    file_volumes: bool = False  # volumes are files: qcow2 allowed, sparse raw allowed
    note: str = ""


TYPES: dict[str, PoolType] = {t.name: t for t in (
    PoolType("dir", "required", file_volumes=True, note="a directory on the host"),
    PoolType("fs", "required", needs=("devices",), allows=("format",), formats=FS_FORMATS, default_format="auto",
             file_volumes=True, note="a block device with a filesystem, mounted on the target"),
    PoolType("netfs", "required", needs=("host", "dir"), allows=("port", "format"), formats=NETFS_FORMATS,
             default_format="nfs", file_volumes=True, note="an NFS, CIFS or GlusterFS export mounted on the target"),
    PoolType("logical", "/dev/{vg}", allows=("name", "devices"), formats=("lvm2",), default_format="lvm2",
             note="an LVM volume group (made from source.devices when they are given)"),
    PoolType("disk", "/dev", needs=("devices",), allows=("format",), formats=DISK_FORMATS, default_format="gpt",
             note="a whole disk; volumes are its partitions"),
    PoolType("iscsi", "/dev/disk/by-path", needs=("host", "devices"),
             allows=("port", "initiator", "auth_username", "auth_secret_uuid"), note="LUNs of an iSCSI target"),
    PoolType("iscsi-direct", None, needs=("host", "devices", "initiator"), allows=("port",),
             note="an iSCSI target used through libiscsi"),
    PoolType("scsi", "/dev/disk/by-path", needs=("adapter",), note="LUNs of a SCSI host adapter"),
    PoolType("mpath", "/dev/mapper", note="multipath devices"),
    PoolType("rbd", None, needs=("host", "name"), allows=("port", "auth_username", "auth_secret_uuid"),
             note="a Ceph RBD pool"),
    PoolType("gluster", None, needs=("host", "name"), allows=("port", "dir"), file_volumes=True,
             note="a GlusterFS volume through libgfapi"),
    PoolType("zfs", None, needs=("name",), allows=("devices",), note="a ZFS pool (zpool)"),
    PoolType("vstorage", "required", needs=("name",), file_volumes=True, note="a Virtuozzo storage cluster"),
)}
assert set(TYPES) == set(POOL_TYPES)


def _fail(field: str, message: str, code: int = 422) -> ServiceError:
    return ServiceError(code, f"{field}: {message}", field)


def check_path(value: str | None, field: str) -> str:
    """An absolute path, normalised (no '.', '..', doubled or trailing slashes); never '/' itself."""
    if not value:
        raise _fail(field, "is required: an absolute path")
    if any(c in value for c in "\0\n\r\t") or len(value) > 1024:
        raise _fail(field, "contains control characters or is longer than 1024 characters")
    if not value.startswith("/"):
        raise _fail(field, f"{value!r} is not an absolute path")
    if ".." in value.split("/"):
        raise _fail(field, f"{value!r} must not contain '..'")
    norm = posixpath.normpath(value)
    if norm.startswith("//"):
        norm = "/" + norm.lstrip("/")
    if norm == "/":
        raise _fail(field, "must not be the root directory")
    return norm


def check_host(value: str | None, field: str) -> str:
    if not value:
        raise _fail(field, "is required: a host name or IP address")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    if not _HOSTNAME.match(value):
        raise _fail(field, f"{value!r} is not a host name or IP address")
    return value.lower()


def check_iqn(value: str | None, field: str) -> str:
    if not value or not _IQN.match(value):
        raise _fail(field, f"{value!r} is not an iSCSI name (iqn.YYYY-MM.reversed.domain[:name], eui.… or naa.…)")
    return value


def parse_size(value: int | str, field: str) -> int:
    """Bytes from a number, or from text with a libvirt unit: "10G" and "10GiB" are 10*1024^3, "10GB" is
    10*1000^3; fractions allowed ("1.5G")."""
    if isinstance(value, bool):
        raise _fail(field, "must be a size in bytes or text such as '10G'")
    if isinstance(value, int):
        n = value
    else:
        m = _SIZE.match(value)
        if not m:
            raise _fail(field, f"{value!r} is not a size (a number of bytes, or e.g. '512M', '10G', '1.5TiB')")
        try:
            n = int(float(m.group(1)) * to_bytes(1, m.group(2) or "b"))
        except ValueError:
            raise _fail(field, f"unknown unit {m.group(2)!r} (use K, M, G, T, KiB, MiB, GiB, TiB, KB, MB, GB...)") from None
    if n < 1:
        raise _fail(field, "must be at least 1 byte")
    if n > MAX_BYTES:
        raise _fail(field, "is too large")
    return n


def _format(pt: PoolType, src: PoolSource) -> str | None:
    fmt = src.format or pt.default_format
    if fmt is not None and pt.formats and fmt not in pt.formats:
        raise _fail("source.format", f"{fmt!r} is not a {pt.name} format; use one of {', '.join(pt.formats)}")
    return fmt


def pool_model(req: PoolCreate) -> StoragePool:
    """The pool's XML from a create request, or a ServiceError naming the first wrong field."""
    try:
        validate_name("pool", req.name)
    except ValueError as exc:
        raise _fail("name", str(exc)) from None
    pt = TYPES.get(req.type)
    if pt is None:
        raise _fail("type", f"{req.type!r} is not a pool type; use one of {', '.join(TYPES)}")
    src = req.source
    given = {f for f in SOURCE_FIELDS if getattr(src, f) not in (None, [], "")}
    for f in sorted(given - set(pt.needs) - set(pt.allows)):
        raise _fail(f"source.{f}", f"is not used by {pt.name} pools ({pt.note})")
    for f in pt.needs:
        if f not in given:
            raise _fail(f"source.{f}", f"is required for {pt.name} pools ({pt.note})")
    pool = StoragePool(type=pt.name, name=req.name)

    if src.host is not None:
        pool.source_hosts = [check_host(src.host, "source.host")]
        if src.port is not None:
            pool.source_host_port = src.port
    fmt = _format(pt, src)
    if pt.name == "netfs":
        if fmt in ("nfs", "auto"):
            pool.source_dir = check_path(src.dir, "source.dir")
        elif not _PLAIN.match(src.dir or ""):
            raise _fail("source.dir", f"{src.dir!r} is not a {fmt} share or volume name")
        else:
            pool.source_dir = src.dir
    elif pt.name == "gluster":
        pool.source_dir = "/" if src.dir in (None, "", "/") else check_path(src.dir, "source.dir")
    if src.devices:
        if pt.name in ("fs", "disk") and len(src.devices) != 1:
            raise _fail("source.devices", f"{pt.name} pools take exactly one device")
        if pt.name in ("iscsi", "iscsi-direct"):
            if len(src.devices) != 1:
                raise _fail("source.devices", "give the one iSCSI target name (IQN)")
            pool.source_devices = [check_iqn(src.devices[0], "source.devices")]
        else:
            pool.source_devices = [check_path(d, f"source.devices[{i}]") for i, d in enumerate(src.devices)]
            if len(set(pool.source_devices)) != len(pool.source_devices):
                raise _fail("source.devices", "names a device twice")
    if pt.name == "logical":
        vg = src.name or req.name
        if not _VG.match(vg):
            raise _fail("source.name", f"{vg!r} is not a volume group name")
        pool.source_name = vg
    elif src.name is not None:
        if not _PLAIN.match(src.name):
            raise _fail("source.name", f"{src.name!r} is not a valid {pt.name} name")
        pool.source_name = src.name
    if fmt is not None:
        pool.source_format = fmt
    if src.adapter is not None:
        if not _ADAPTER.match(src.adapter):
            raise _fail("source.adapter", f"{src.adapter!r} is not a SCSI host adapter (e.g. host0)")
        pool.source_adapter_type = "scsi_host"
        pool.source_adapter_name = src.adapter.removeprefix("scsi_")
    if src.initiator is not None:
        pool.initiator_iqn = check_iqn(src.initiator, "source.initiator")
    if (src.auth_username is None) != (src.auth_secret_uuid is None):
        missing = "auth_secret_uuid" if src.auth_secret_uuid is None else "auth_username"
        raise _fail(f"source.{missing}", "authentication needs both a user name and a libvirt secret UUID")
    if src.auth_username is not None:
        if not _PLAIN.match(src.auth_username):
            raise _fail("source.auth_username", f"{src.auth_username!r} is not a valid user name")
        if not _UUID.match(src.auth_secret_uuid or ""):
            raise _fail("source.auth_secret_uuid", "is not a UUID (define the key as a libvirt secret first)")
        pool.source_auth_type = "ceph" if pt.name == "rbd" else "chap"
        pool.source_auth_username = src.auth_username
        pool.source_auth_secret_uuid = src.auth_secret_uuid.lower()

    if pt.target is None:
        if req.target:
            raise _fail("target", f"is not used by {pt.name} pools")
    elif pt.target == "required":
        pool.target_path = check_path(req.target, "target")
    else:
        default = pt.target.format(vg=pool.source_name or "")
        pool.target_path = check_path(req.target or default, "target")
    return pool


def build_plan(req: PoolCreate) -> tuple[bool, int]:
    """(build?, libvirt build flags). Building never destroys data unless ``overwrite`` is asked:
    dir/fs/netfs only make the target directory (fs runs mkfs only with overwrite); logical makes a new VG
    only on devices with no signature on them; disk writes a label only on an empty disk."""
    kind = req.type
    if req.build is None:
        build = kind in ("dir", "fs", "netfs", "disk") or (kind in ("logical", "zfs") and bool(req.source.devices))
    else:
        build = req.build
    if req.overwrite and not build:
        raise _fail("overwrite", "only applies when the pool is built")
    if not build:
        return False, 0
    if kind == "logical" and not req.source.devices:
        raise _fail("source.devices", "building a logical pool makes a new volume group: name its devices")
    if req.overwrite:
        if kind == "fs" and (req.source.format or "auto") == "auto":
            raise _fail("source.format", "name the filesystem to make (e.g. ext4) when overwrite is asked")
        return True, libvirt.VIR_STORAGE_POOL_BUILD_OVERWRITE
    if kind in ("dir", "netfs", "fs"):
        return True, 0  # for fs, flags 0 means: make the directory, leave the device alone
    return True, libvirt.VIR_STORAGE_POOL_BUILD_NO_OVERWRITE


def volume_model(name: str, capacity: int | str, fmt: str, pool_type: str, preallocate: bool = False) -> StorageVolume:
    """A new volume's XML. qcow2 lives only in pools of files; block pools hold raw volumes, fully
    allocated (a thin LVM volume would be a snapshot)."""
    try:
        validate_name("volume", name)
    except ValueError as exc:
        raise _fail("name", str(exc)) from None
    size = parse_size(capacity, "capacity")
    pt = TYPES.get(pool_type)
    file_pool = pt is not None and pt.file_volumes
    if fmt not in ("qcow2", "raw"):
        raise _fail("format", f"{fmt!r} is not a volume format; use qcow2 or raw")
    if fmt == "qcow2" and not file_pool:
        raise _fail("format", f"a {pool_type} pool holds raw volumes only")
    if preallocate and fmt != "raw":
        raise _fail("preallocate", "only raw volumes can be fully allocated")
    if not file_pool:
        vol = StorageVolume(name=name, capacity=size, allocation=size)
        vol.node.append(etree.Element("target"))  # no format: the pool decides (an LV, a partition)
        return vol
    return StorageVolume(name=name, capacity=size, allocation=size if preallocate else 0, format=fmt)


def needs_full_space(fmt: str, pool_type: str, preallocate: bool) -> bool:
    """Whether the whole capacity must fit in the pool's free space now."""
    pt = TYPES.get(pool_type)
    return preallocate or pt is None or not pt.file_volumes
