"""A create request (already checked and resolved into a ``BuildPlan``) -> a ``flint.xml.Domain``.

Pure: the host's capabilities come in as parsed models; nothing here talks to libvirt. Arch, emulator
and machine type come from the host's capabilities, firmware and device models from the domain
capabilities of that emulator/machine, the virt type from the service's detection.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flint.xml import (
    Capabilities,
    Channel,
    Console,
    Controller,
    Disk,
    Domain,
    DomainCapabilities,
    Graphics,
    GuestChoice,
    Input,
    Interface,
    Rng,
    Serial,
    Video,
)

TARGET_PREFIX = {"virtio": "vd", "scsi": "sd", "sata": "sd", "usb": "sd", "ide": "hd"}
IDE_SLOTS = 4
LEGACY_NICS = ("e1000", "rtl8139")


@dataclass(frozen=True)
class DiskPlan:
    pool: str
    volume: str
    device: str = "disk"  # disk | cdrom
    bus: str | None = None  # None: virtio for disks, the machine's CD-ROM bus for cdroms
    format: str = "qcow2"


@dataclass(frozen=True)
class NicPlan:
    mac: str
    network: str | None = None
    bridge: str | None = None
    model: str = "virtio"


@dataclass(frozen=True)
class BuildPlan:
    name: str
    uuid: str
    vcpus: int
    memory_mib: int
    firmware: str = "bios"  # bios | uefi
    disks: list[DiskPlan] = field(default_factory=list)  # in order: disks, then CD-ROMs
    nics: list[NicPlan] = field(default_factory=list)
    boot: list[str] = field(default_factory=lambda: ["hd"])  # os boot devices, in order
    kernel: str | None = None  # host paths, for direct kernel boot
    initrd: str | None = None
    cmdline: str | None = None
    description: str = ""
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def needs_ide(self) -> bool:
        return any(d.bus == "ide" for d in self.disks)

    @property
    def legacy(self) -> bool:
        """Asked for old-guest devices (IDE/SATA disks, e1000/rtl8139 NICs): give it old-guest video and USB."""
        return any(d.bus in ("ide", "sata") for d in self.disks) or any(n.model in LEGACY_NICS for n in self.nics)


class BuildError(ValueError):
    """The host cannot run what was asked (no UEFI firmware, no such guest): ``field`` names the cause."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def choose_guest(caps: Capabilities, virt_type: str, legacy_ide: bool = False) -> GuestChoice:
    """The host's arch under ``virt_type``: its emulator and machine (q35; i440fx 'pc' when IDE is asked,
    since q35 has no IDE controller)."""
    try:
        choice = caps.pick_guest(virt_type=virt_type)
    except LookupError as exc:
        raise BuildError("host", str(exc)) from None
    if not legacy_ide or "q35" not in choice.machine:
        return choice
    for guest in caps.guests:
        if guest.arch != choice.arch or guest.os_type != choice.os_type:
            continue
        doms = [d for d in guest.domains if d.type == virt_type]
        machines = list(doms[0].machines) if doms and len(doms[0].machines) else list(guest.machines)
        pc = next((m.canonical or m.name for m in machines if m.name == "pc"), None)
        pc = pc or next((m.name for m in machines if m.name.startswith("pc-i440fx")), None)
        if pc:
            return GuestChoice(choice.virt_type, choice.os_type, choice.arch, choice.emulator, pc)
    raise BuildError("disks", f"IDE disks need an i440fx ('pc') machine, which {choice.emulator} does not offer")


def _cdrom_bus(machine: str) -> str:
    return "sata" if "q35" in machine else "ide"


def _target_name(prefix: str, index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(ord("a") + rem) + letters
    return prefix + letters


def _cpu_mode(domcaps: DomainCapabilities | None, virt_type: str) -> str | None:
    """KVM: host-passthrough (the host's CPU as it is). TCG: 'maximum' (every feature QEMU emulates, so
    guests built for x86-64-v2 and later boot), else QEMU's default model."""
    if domcaps is None:
        return None
    wanted = "host-passthrough" if virt_type == "kvm" else "maximum"
    ok = domcaps.node.xpath("./cpu/mode[@name=$m]/@supported", m=wanted)
    return wanted if ok and ok[0] == "yes" else None


def _video_model(domcaps: DomainCapabilities | None, legacy: bool) -> str:
    """virtio-vga (VGA-compatible, and fast with a driver); plain VGA for old guests."""
    wanted = ("vga", "cirrus", "virtio") if legacy else ("virtio", "vga", "cirrus")
    offered = domcaps.enum("video", "modelType") if domcaps is not None else []
    return next((m for m in wanted if m in offered), wanted[0])


def _apply_firmware(dom: Domain, firmware: str, domcaps: DomainCapabilities | None) -> None:
    if firmware != "uefi":
        dom.use_bios()
        return
    if domcaps is not None and "efi" in domcaps.firmware:
        dom.use_uefi()  # libvirt picks the OVMF build and its variable store from the firmware descriptors
        return
    loader = domcaps.uefi_loader(secure=False) if domcaps is not None else None
    if not loader:
        raise BuildError("firmware", "UEFI was asked for but this host offers no UEFI firmware for "
                                     f"{domcaps.path if domcaps is not None else 'its emulator'} (install OVMF)")
    dom.use_uefi(loader=loader)


def build_domain(plan: BuildPlan, caps: Capabilities, domcaps: DomainCapabilities | None,
                 virt_type: str) -> Domain:
    guest = choose_guest(caps, virt_type, plan.needs_ide)
    dom = Domain(type=virt_type, name=plan.name, uuid=plan.uuid, memory_mib=plan.memory_mib,
                 current_memory_mib=plan.memory_mib, vcpus=plan.vcpus, os_type=guest.os_type, arch=guest.arch,
                 machine=guest.machine, clock_offset="utc", on_poweroff="destroy", on_reboot="restart",
                 on_crash="destroy", emulator=guest.emulator)
    if plan.description:
        dom.description = plan.description
    if plan.metadata:
        dom.set_flint_metadata(plan.metadata)
    _apply_firmware(dom, plan.firmware, domcaps)
    if plan.kernel:
        dom.kernel = plan.kernel
        dom.initrd = plan.initrd
        dom.cmdline = plan.cmdline or None
    else:
        dom.boot_devices = plan.boot
    if guest.arch in ("x86_64", "i686"):
        dom.acpi, dom.apic = True, True
    dom.cpu_mode = _cpu_mode(domcaps, virt_type)

    used: dict[str, int] = {}
    buses = set()
    for disk in plan.disks:
        bus = disk.bus or ("virtio" if disk.device == "disk" else _cdrom_bus(guest.machine))
        buses.add(bus)
        prefix = TARGET_PREFIX[bus]
        target = _target_name(prefix, used.get(prefix, 0))
        used[prefix] = used.get(prefix, 0) + 1
        if bus == "ide" and used[prefix] > IDE_SLOTS:
            raise BuildError("disks", f"at most {IDE_SLOTS} IDE devices (disks and CD-ROMs together) fit a VM")
        d = Disk(device=disk.device, driver_name="qemu", driver_type=disk.format, target_dev=target,
                 target_bus=bus, readonly=disk.device == "cdrom")
        if disk.device == "disk" and disk.format == "qcow2":
            d.driver_discard = "unmap"
        dom.disks.append(d.set_source(pool=disk.pool, volume=disk.volume))
    if not plan.legacy:  # old guests get the machine's default USB controller (UHCI/EHCI), which they drive
        dom.controllers.append(Controller(type="usb", index=0, model="qemu-xhci"))
    if "scsi" in buses:
        dom.controllers.append(Controller(type="scsi", index=0, model="virtio-scsi"))
    for nic in plan.nics:
        if nic.network:
            iface = Interface(type="network", mac=nic.mac, source_network=nic.network, model=nic.model)
        else:
            iface = Interface(type="bridge", mac=nic.mac, source_bridge=nic.bridge, model=nic.model)
        dom.interfaces.append(iface)
    dom.serials.append(Serial(type="pty", target_port=0))
    dom.consoles.append(Console(type="pty", target_type="serial", target_port=0))
    dom.channels.append(Channel.guest_agent())
    dom.inputs.append(Input(type="tablet", bus="usb"))
    dom.graphics.append(Graphics(type="vnc", port=-1, autoport=True, listen="127.0.0.1"))
    dom.videos.append(Video(model=_video_model(domcaps, plan.legacy)))
    dom.rngs.append(Rng.virtio())
    return dom
