"""Pools and volumes: the bodies of the /hosts/{host}/pools... routes and the provisioner's replies.

Shape errors (a wrong type, an unknown field) are caught by decoding; what depends on the pool type or on
the host (a source device is given, the volume fits in the pool, nobody uses it) is checked by the
provisioner, which names the field in its ServiceError.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

# Every pool type libvirt 9 knows; which ones this host supports is libvirt's answer (pool capabilities).
POOL_TYPES = ("dir", "fs", "netfs", "logical", "disk", "iscsi", "iscsi-direct", "scsi", "mpath", "rbd",
              "gluster", "zfs", "vstorage")
POOL_ACTIONS = ("start", "stop", "refresh", "autostart", "noautostart", "build")
VOLUME_FORMATS = ("qcow2", "raw")
PoolName = Annotated[str, Meta(min_length=1, max_length=63)]
VolumeName = Annotated[str, Meta(min_length=1, max_length=63)]
# A size: bytes as a number, or a string with a libvirt unit ("10G", "512MiB", "1.5 GiB"; k/M/G/T = 1024^n).
Size = int | str


class _Spec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    pass


class PoolSource(_Spec):
    """The ``<source>`` of a pool; which fields a type needs is checked per type (see storage_spec)."""

    host: str | None = None  # netfs, iscsi, iscsi-direct, gluster, rbd: server name or address
    port: Annotated[int, Meta(ge=1, le=65535)] | None = None
    dir: str | None = None  # netfs: exported directory; gluster: directory in the volume
    name: str | None = None  # logical: volume group; rbd: ceph pool; gluster: volume; zfs: zpool; vstorage
    devices: list[str] = []  # fs (one), logical (PVs for a new VG), disk (one), zfs; iscsi: the target IQN
    format: str | None = None  # fs: ext4, xfs, auto...; netfs: nfs, cifs, glusterfs; disk: gpt, dos...
    adapter: str | None = None  # scsi: the SCSI host adapter, e.g. host0
    initiator: str | None = None  # iscsi, iscsi-direct: the initiator IQN
    auth_username: str | None = None  # rbd (ceph), iscsi (chap): secret by UUID, never the secret itself
    auth_secret_uuid: str | None = None


class PoolCreate(_Spec):
    name: PoolName
    type: str
    target: str | None = None  # the directory (dir, fs, netfs) or device directory (logical, disk, iscsi)
    source: PoolSource = msgspec.field(default_factory=PoolSource)
    # None: build where it is safe and needed (dir/fs/netfs: make the target directory; logical with
    # devices: make the VG; disk: write a label on an empty disk). Never wipes data unless `overwrite`.
    build: bool | None = None
    overwrite: bool = False  # fs: mkfs; logical/disk: wipe existing signatures/labels first
    start: bool = True
    autostart: bool = True


class PoolDelete(_Spec):
    name: PoolName
    delete_volumes: bool = False  # also delete the storage (dir: the directory, logical: the VG...)
    force: bool = False  # with delete_volumes: delete the volumes it still holds


class PoolAction(_Spec):
    name: PoolName
    action: str


class PoolRef(_Spec):
    name: PoolName


class PoolDetail(msgspec.Struct, kw_only=True):
    """One pool as libvirt says now (the inventory document, plus the source fields)."""

    host: str
    name: str
    uuid: str
    type: str
    state: str
    active: bool
    autostart: bool
    persistent: bool
    target: str | None
    capacity: int
    allocation: int
    available: int
    volumes: int
    source: PoolSource


class VolumeInfo(msgspec.Struct, kw_only=True):
    """One volume; the shape VM creation relies on: name, pool, path, capacity, allocation, format, type."""

    name: str
    pool: str
    path: str
    capacity: int
    allocation: int
    format: str | None
    type: str
    backing_path: str | None = None


class VolumesList(_Spec):
    pool: PoolName


class VolumeList(msgspec.Struct, kw_only=True):
    pool: str
    volumes: list[VolumeInfo]


class Deleted(msgspec.Struct, kw_only=True):
    """What a delete removed: "pool" or "pool/volume", and for a pool the volumes deleted with it."""

    deleted: str
    deleted_volumes: list[str] = []
    storage_deleted: bool = False


class VolumeCreate(_Spec):
    pool: PoolName
    name: VolumeName
    capacity: Size
    format: str = "qcow2"
    # raw only: reserve the whole size now (fully allocated) instead of a sparse file.
    preallocate: bool = False


class VolumeRef(_Spec):
    pool: PoolName
    name: VolumeName


class VolumeResize(_Spec):
    pool: PoolName
    name: VolumeName
    capacity: Size
    allow_shrink: bool = False  # shrinking loses whatever lies past the new end


class UploadCheck(_Spec):
    """Asked by the gateway before it accepts an upload's body: the pool, the name and the size fit."""

    pool: PoolName
    name: VolumeName
    size: Annotated[int, Meta(ge=1)]


class UploadCheckReply(msgspec.Struct, kw_only=True):
    pool: str
    name: str
    available: int


