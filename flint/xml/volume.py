"""``<volume>``: a storage volume in a pool (qcow2/raw file, logical volume, ...)."""

from __future__ import annotations

from .base import Prop, Size, XmlModel
from .names import validator


class StorageVolume(XmlModel):
    """Sizes are bytes whatever unit the XML used. ``key`` and ``path`` are set by libvirt."""

    TAG = "volume"
    type = Prop("./@type", doc="file, block, dir, network, netdir, ploop")
    name = Prop("./name", validate=validator("volume"))
    key = Prop("./key")
    capacity = Size("./capacity")
    allocation = Size("./allocation")
    physical = Size("./physical")
    path = Prop("./target/path")
    format = Prop("./target/format/@type", doc="qcow2, raw, iso, ...")
    target_mode = Prop("./target/permissions/mode")
    target_owner = Prop("./target/permissions/owner", int)
    target_group = Prop("./target/permissions/group", int)
    compat = Prop("./target/compat", doc="qcow2 compatibility level, e.g. 1.1")
    backing_path = Prop("./backingStore/path")
    backing_format = Prop("./backingStore/format/@type")

    @classmethod
    def qcow2_overlay(cls, name: str, capacity: int, backing_path: str, backing_format: str = "qcow2"):
        """A qcow2 volume on top of a read-only base image (creation time does not grow with its size)."""
        return cls(name=name, capacity=capacity, format="qcow2", backing_path=backing_path,
                   backing_format=backing_format)
