"""Creating a VM: the body of POST /api/v1/vms, as the gateway decodes it and the provisioner checks it.

Shape errors (a wrong type, a missing field, an unknown field, a size <= 0) are caught by decoding;
everything that needs the host (the name is free, the pool has room, the volume exists) is checked by
the provisioner before anything is made. ``network_install`` boots the installer's kernel and initrd (from
the tree's .treeinfo at ``location``, or the explicit URLs) once, with ``kernel_args``; ``pxe`` puts the NIC on
the chosen network or bridge first in the boot order (see services/provisioner/netinstall.py).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

Firmware = Literal["bios", "uefi"]
DiskBus = Literal["virtio", "scsi", "sata", "ide"]
NicModel = Literal["virtio", "e1000", "e1000e", "rtl8139"]
VolumeRef = Annotated[str, Meta(min_length=3, max_length=127, description='"pool/volume"')]


class _Spec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    pass


class DiskSpec(_Spec, kw_only=True):
    size_gib: Annotated[float, Meta(gt=0, le=65536, description="size in GiB (fractions allowed)")]
    pool: Annotated[str, Meta(min_length=1, max_length=63)]
    bus: DiskBus | None = None  # None: virtio (sata or ide for old guests)


class NicSpec(_Spec, kw_only=True):
    network: str | None = None  # a libvirt network by name ...
    bridge: str | None = None  # ... or a host bridge
    model: NicModel = "virtio"
    mac: str | None = None  # None: chosen when the request is accepted


class CloudInitNetwork(_Spec, kw_only=True):
    """DHCP (the default), or a static ``address`` in CIDR form (``prefix`` if the address has none)."""

    dhcp: bool = True
    address: str | None = None
    prefix: Annotated[int, Meta(ge=0, le=128)] | None = None
    gateway: str | None = None
    dns: list[str] = []


class CloudInit(_Spec, kw_only=True):
    hostname: str | None = None  # default: the VM name
    user: str | None = None
    password: str | None = None  # hashed (SHA-512 crypt) before the job is recorded
    ssh_authorized_keys: list[str] = []
    network: CloudInitNetwork | None = None
    packages: list[str] = []
    runcmd: list[str | list[str]] = []
    user_data: dict[str, Any] | str | None = None  # merged last: a mapping, or "#cloud-config" YAML text


class IsoSource(_Spec, kw_only=True, tag="iso", tag_field="kind"):
    volume: VolumeRef
    cloud_init: CloudInit | None = None


class CloudImageSource(_Spec, kw_only=True, tag="cloud_image", tag_field="kind"):
    volume: VolumeRef
    cloud_init: CloudInit | None = None


class NetworkInstallSource(_Spec, kw_only=True, tag="network_install", tag_field="kind"):
    location: Annotated[str, Meta(max_length=2048, description="the install tree (with .treeinfo)")]
    kernel: Annotated[str, Meta(max_length=2048)] | None = None  # explicit URLs win over the tree's
    initrd: Annotated[str, Meta(max_length=2048)] | None = None
    kernel_args: Annotated[str, Meta(max_length=4096)] = ""  # e.g. "inst.ks=http://…/ks.cfg console=ttyS0"
    cloud_init: CloudInit | None = None


class PxeSource(_Spec, kw_only=True, tag="pxe", tag_field="kind"):
    network: str | None = None
    bridge: str | None = None
    cloud_init: CloudInit | None = None


Source = IsoSource | CloudImageSource | NetworkInstallSource | PxeSource


class DirectBoot(_Spec, kw_only=True):
    """Boot a kernel (and initrd) from pool volumes instead of the disks' boot loader."""

    kernel: VolumeRef
    initrd: VolumeRef | None = None
    cmdline: Annotated[str, Meta(max_length=4096)] = ""


class VMCreateRequest(_Spec, kw_only=True):
    host: str | None = None  # None: the gateway's own host
    name: str
    vcpus: Annotated[int, Meta(ge=1, le=4096)] = 1
    memory_mib: Annotated[int, Meta(ge=1)] = 1024
    firmware: Firmware = "bios"
    source: Source
    disks: list[DiskSpec] = []
    nics: list[NicSpec] = []
    start: bool = True
    direct_boot: DirectBoot | None = None
    description: Annotated[str, Meta(max_length=1024)] = ""


def source_kind(source: Source) -> str:
    """The ``kind`` tag of a decoded source (msgspec keeps tags out of the attributes)."""
    return source.__struct_config__.tag
