"""``<domain>``: a virtual machine definition (inactive or live XML)."""

from __future__ import annotations

from collections.abc import Mapping

from .base import YES_NO, Children, Flag, Prop, PropList, Size, XmlModel
from .devices import Channel, Console, Controller, Graphics, Input, Rng, Serial, Video
from .disk import Disk
from .interface import Interface
from .metadata import ROOT as METADATA_ROOT
from .metadata import read_metadata, update_metadata
from .names import validator

_UEFI_HINTS = ("ovmf", "edk2", "aavmf", "efi")


class Domain(XmlModel):
    """``type`` is kvm or qemu (TCG). Sizes are KiB in XML; ``memory_mib`` is the convenient view."""

    TAG = "domain"
    type = Prop("./@type")
    name = Prop("./name", validate=validator("vm"))
    uuid = Prop("./uuid")
    title = Prop("./title")
    description = Prop("./description")
    _metadata = Prop("./metadata/flint:vm")
    memory_kib = Size("./memory", "KiB")
    current_memory_kib = Size("./currentMemory", "KiB")
    vcpus = Prop("./vcpu", int)
    vcpu_placement = Prop("./vcpu/@placement")
    # <os>
    firmware = Prop("./os/@firmware", doc="efi / bios: let libvirt pick the firmware files")
    os_type = Prop("./os/type", doc="hvm")
    arch = Prop("./os/type/@arch")
    machine = Prop("./os/type/@machine")
    loader = Prop("./os/loader", doc="firmware code path, e.g. an OVMF_CODE file")
    loader_readonly = Prop("./os/loader/@readonly", YES_NO)
    loader_secure = Prop("./os/loader/@secure", YES_NO)
    loader_type = Prop("./os/loader/@type", doc="pflash (UEFI) or rom")
    nvram = Prop("./os/nvram", doc="per-VM UEFI variable store")
    nvram_template = Prop("./os/nvram/@template")
    kernel = Prop("./os/kernel", doc="direct kernel boot")
    initrd = Prop("./os/initrd")
    cmdline = Prop("./os/cmdline")
    boot_devices = PropList("./os/boot/@dev", doc="hd, cdrom, network, fd: in boot order")
    bootmenu = Prop("./os/bootmenu/@enable", YES_NO)
    # <features>, <cpu>, <clock>, lifecycle
    acpi = Flag("./features/acpi")
    apic = Flag("./features/apic")
    cpu_mode = Prop("./cpu/@mode", doc="host-passthrough, host-model, custom, maximum")
    cpu_model = Prop("./cpu/model")
    clock_offset = Prop("./clock/@offset", doc="utc, localtime")
    on_poweroff = Prop("./on_poweroff", doc="destroy, restart, preserve, rename-restart")
    on_reboot = Prop("./on_reboot")
    on_crash = Prop("./on_crash")
    # <devices>, in libvirt's own order
    emulator = Prop("./devices/emulator")
    disks = Children(Disk, "./devices/disk")
    controllers = Children(Controller, "./devices/controller")
    interfaces = Children(Interface, "./devices/interface")
    serials = Children(Serial, "./devices/serial")
    consoles = Children(Console, "./devices/console")
    channels = Children(Channel, "./devices/channel")
    inputs = Children(Input, "./devices/input")
    graphics = Children(Graphics, "./devices/graphics")
    videos = Children(Video, "./devices/video")
    rngs = Children(Rng, "./devices/rng")

    @property
    def memory_mib(self) -> int | None:
        return None if self.memory_kib is None else self.memory_kib // 1024

    @memory_mib.setter
    def memory_mib(self, value: int | None) -> None:
        self.memory_kib = None if value is None else int(value) * 1024

    @property
    def current_memory_mib(self) -> int | None:
        return None if self.current_memory_kib is None else self.current_memory_kib // 1024

    @current_memory_mib.setter
    def current_memory_mib(self, value: int | None) -> None:
        self.current_memory_kib = None if value is None else int(value) * 1024

    @property
    def is_uefi(self) -> bool:
        """True when the domain boots UEFI firmware (``firmware='efi'``, a pflash or an OVMF-like loader)."""
        if self.firmware == "efi" or self.loader_type == "pflash":
            return True
        return any(hint in (self.loader or "").lower() for hint in _UEFI_HINTS)

    def use_uefi(self, loader: str | None = None, nvram_template: str | None = None,
                 secure: bool | None = None) -> Domain:
        """Boot UEFI: with no ``loader`` libvirt picks the firmware (``<os firmware='efi'>``); with one,
        it is a read-only pflash (path from domain capabilities) and ``nvram_template`` its variables."""
        if loader is None:
            self.firmware = "efi"
            return self
        self.firmware = None
        self.loader, self.loader_readonly, self.loader_type = loader, True, "pflash"
        self.loader_secure = secure
        if nvram_template:
            self.nvram_template = nvram_template
        return self

    def use_bios(self) -> Domain:
        for name in ("loader_readonly", "loader_secure", "loader_type", "loader", "nvram_template", "nvram"):
            setattr(self, name, None)
        self.firmware = None
        return self

    def flint_metadata(self) -> dict[str, str]:
        """Flint's ``<metadata><flint:vm>`` values as ``{key: text}``."""
        return read_metadata(self.node.find(f"metadata/{METADATA_ROOT}"))

    def set_flint_metadata(self, values: Mapping[str, str | None]) -> Domain:
        """Merge ``values`` into Flint's metadata element (``None`` removes a key), keeping other keys and
        other applications' metadata."""
        element = self.node.find(f"metadata/{METADATA_ROOT}")
        if element is None:
            self._metadata = ""  # creates <metadata><flint:vm> in their declared place
            element = self.node.find(f"metadata/{METADATA_ROOT}")
            element.text = None
        update_metadata(element, values)
        if len(element) == 0:
            self._metadata = None
        return self

