"""``<disk>``: a domain's disk or CD-ROM (file, storage volume, block device or network source)."""

from __future__ import annotations

from .base import Flag, Prop, XmlModel


class Disk(XmlModel):
    """``type`` is file / volume / block / network; ``device`` is disk / cdrom / floppy / lun."""

    TAG = "disk"
    type = Prop("./@type")
    device = Prop("./@device")
    driver_name = Prop("./driver/@name", doc="qemu")
    driver_type = Prop("./driver/@type", doc="image format: qcow2, raw, ...")
    driver_cache = Prop("./driver/@cache")
    driver_discard = Prop("./driver/@discard")
    source_file = Prop("./source/@file", doc="type='file'")
    source_dev = Prop("./source/@dev", doc="type='block'")
    source_pool = Prop("./source/@pool", doc="type='volume'")
    source_volume = Prop("./source/@volume", doc="type='volume'")
    source_protocol = Prop("./source/@protocol", doc="type='network': nbd, http, iscsi, rbd, ...")
    source_name = Prop("./source/@name", doc="type='network': export, path or image name")
    source_host_name = Prop("./source/host/@name")
    source_host_port = Prop("./source/host/@port", int)
    backing_format = Prop("./backingStore/format/@type", doc="read-only: filled in by libvirt")
    backing_path = Prop("./backingStore/source/@file", doc="read-only: filled in by libvirt")
    target_dev = Prop("./target/@dev", doc="vda, sda, hdc, ...")
    target_bus = Prop("./target/@bus", doc="virtio, sata, scsi, ide, usb")
    serial = Prop("./serial")
    boot_order = Prop("./boot/@order", int)
    readonly = Flag("./readonly")
    shareable = Flag("./shareable")

    @property
    def path(self) -> str | None:
        """The host path of a file or block source (None for volumes and network sources)."""
        return self.source_file or self.source_dev

    def set_source(self, *, file: str | None = None, dev: str | None = None,
                   pool: str | None = None, volume: str | None = None) -> Disk:
        """Point the disk at exactly one source, setting ``type`` to match (file, block or volume)."""
        if sum(x is not None for x in (file, dev, pool or volume)) != 1 or (pool is None) != (volume is None):
            raise ValueError("a disk source is one of: file, dev, or pool and volume together")
        for name in ("source_file", "source_dev", "source_pool", "source_volume", "source_protocol",
                     "source_name", "source_host_name", "source_host_port"):
            setattr(self, name, None)
        self.type = "file" if file else "block" if dev else "volume"
        self.source_file, self.source_dev, self.source_pool, self.source_volume = file, dev, pool, volume
        return self
