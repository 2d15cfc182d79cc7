"""Changing an existing VM: its settings, snapshots, disks and NICs (requests to the host's provisioner).

Shape errors are caught by decoding (422 naming the field); what needs the host (the VM exists, the volume
is free, the disk is qcow2) is checked by the provisioner (4xx naming the field)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from flint.contracts.vms import DiskBus, NicModel, VolumeRef

SnapshotName = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]


class _Req(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    pass


class VMUpdate(_Req, kw_only=True):
    """The body of PATCH /vms/{id}: only the fields given change. The gateway adds ``id``."""

    id: str = ""
    vcpus: Annotated[int, Meta(ge=1, le=4096)] | None = None
    memory_mib: Annotated[int, Meta(ge=16)] | None = None
    autostart: bool | None = None
    description: Annotated[str, Meta(max_length=1024)] | None = None


class VMUpdateReply(msgspec.Struct, kw_only=True):
    id: str
    live: list[str] = []  # fields applied to the running VM too
    next_boot: list[str] = []  # fields saved in the definition that take effect at next boot
    message: str = ""


class SnapshotCreate(_Req, kw_only=True):
    id: str = ""
    name: SnapshotName
    description: Annotated[str, Meta(max_length=1024)] = ""


class SnapshotRef(_Req, kw_only=True):
    id: str
    name: str


class SnapshotsList(_Req, kw_only=True):
    id: str


class SnapshotInfo(msgspec.Struct, kw_only=True):
    name: str
    description: str = ""
    created_at: int = 0  # unix seconds
    state: str = ""  # the VM's state when it was taken: running, shutoff, ...
    parent: str | None = None
    current: bool = False


class SnapshotList(msgspec.Struct, kw_only=True):
    id: str
    snapshots: list[SnapshotInfo]


class SnapshotDone(msgspec.Struct, kw_only=True):
    id: str
    name: str
    action: str  # created, reverted, deleted
    state: str = ""  # the VM's state afterwards


class DiskAttach(_Req, kw_only=True):
    """A new empty qcow2 volume (``size_gib`` in ``pool``) or an existing ``volume`` ("pool/vol")."""

    id: str = ""
    size_gib: Annotated[float, Meta(gt=0, le=65536)] | None = None
    pool: Annotated[str, Meta(min_length=1, max_length=63)] | None = None
    volume: VolumeRef | None = None
    bus: DiskBus = "virtio"


class DiskDetach(_Req, kw_only=True):
    id: str
    target: str


class NicAttach(_Req, kw_only=True):
    id: str = ""
    network: str | None = None
    bridge: str | None = None
    model: NicModel = "virtio"


class NicDetach(_Req, kw_only=True):
    id: str
    mac: str


class DeviceChange(msgspec.Struct, kw_only=True):
    id: str
    action: str  # attached, detached
    device: str  # disk target (vdb) or NIC MAC
    live: bool  # also changed on the running VM
    volume: str | None = None  # "pool/vol" of an attached disk
    message: str = ""


class VMCloneRequest(_Req, kw_only=True):
    """The body of POST /vms/{id}/clone (the gateway adds ``id``)."""

    id: str = ""
    name: str
    linked: bool = False
