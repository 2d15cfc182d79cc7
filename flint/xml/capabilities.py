"""Read-only models of ``virConnectGetCapabilities`` and ``virConnectGetDomainCapabilities`` XML.

The provisioner picks emulator, machine type and firmware from these, never from hard-coded paths.
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import YES_NO, Children, Prop, PropList, XmlModel

_SECURE_HINTS = ("secboot", ".ms.", "snakeoil", "secure")


class Machine(XmlModel):
    """``<machine canonical='pc-q35-7.2' maxCpus='288'>q35</machine>``: an alias has a canonical name."""

    TAG = "machine"
    name = Prop(".")
    canonical = Prop("./@canonical")
    max_cpus = Prop("./@maxCpus", int)
    deprecated = Prop("./@deprecated", YES_NO)


class GuestDomain(XmlModel):
    """``<domain type='kvm'>``, optionally with its own emulator and machines."""

    TAG = "domain"
    type = Prop("./@type")
    emulator = Prop("./emulator")
    machines = Children(Machine, "./machine")


class Guest(XmlModel):
    TAG = "guest"
    os_type = Prop("./os_type")
    arch = Prop("./arch/@name")
    wordsize = Prop("./arch/wordsize", int)
    emulator = Prop("./arch/emulator")
    machines = Children(Machine, "./arch/machine")
    domains = Children(GuestDomain, "./arch/domain")

    @property
    def domain_types(self) -> list[str]:
        return [d.type for d in self.domains]


@dataclass(frozen=True)
class GuestChoice:
    """What a new domain needs from the host: ``<domain type>``, ``<os><type arch machine>``, emulator."""

    virt_type: str
    os_type: str
    arch: str
    emulator: str
    machine: str


def default_machine(machines: list[Machine], arch: str) -> str | None:
    """q35 (as its canonical, versioned name) on x86, else the first alias's target, else the first."""
    if arch in ("x86_64", "i686"):
        for m in machines:
            if m.name == "q35" or (m.canonical or "").startswith("pc-q35"):
                return m.canonical or m.name
    for m in machines:
        if m.canonical:
            return m.canonical
    return machines[0].name if machines else None


class Capabilities(XmlModel):
    TAG = "capabilities"
    host_uuid = Prop("./host/uuid")
    host_arch = Prop("./host/cpu/arch")
    host_cpu_model = Prop("./host/cpu/model")
    host_cpu_vendor = Prop("./host/cpu/vendor")
    guests = Children(Guest, "./guest")

    def pick_guest(self, arch: str | None = None, virt_type: str = "kvm", os_type: str = "hvm") -> GuestChoice:
        """The emulator and default machine for ``arch`` (default: the host's) under ``virt_type``.

        Raises ``LookupError`` naming what the host offers when nothing fits.
        """
        arch = arch or self.host_arch
        offered = []
        for guest in self.guests:
            offered += [f"{guest.os_type}/{guest.arch}/{t}" for t in guest.domain_types]
            if guest.arch != arch or guest.os_type != os_type:
                continue
            for dom in guest.domains:
                if dom.type != virt_type:
                    continue
                emulator = dom.emulator or guest.emulator
                machine = default_machine(list(dom.machines) or list(guest.machines), arch)
                if emulator and machine:
                    return GuestChoice(virt_type, os_type, arch, emulator, machine)
        raise LookupError(f"host offers no {os_type}/{arch}/{virt_type} guest (it offers: "
                          f"{', '.join(offered) or 'none'})")


class DomainCapabilities(XmlModel):
    """What one emulator/machine/virt type supports: firmware, loaders, device enums."""

    TAG = "domainCapabilities"
    path = Prop("./path", doc="emulator")
    virt_type = Prop("./domain")
    machine = Prop("./machine")
    arch = Prop("./arch")
    max_vcpus = Prop("./vcpu/@max", int)
    os_supported = Prop("./os/@supported", YES_NO)
    firmware = PropList("./os/enum[@name='firmware']/value", doc="firmware auto-selection: efi, bios")
    loader_supported = Prop("./os/loader/@supported", YES_NO)
    loaders = PropList("./os/loader/value", doc="firmware code paths (OVMF_CODE...)")
    loader_types = PropList("./os/loader/enum[@name='type']/value")
    loader_secure = PropList("./os/loader/enum[@name='secure']/value")

    def enum(self, device: str, name: str) -> list[str]:
        """Values of ``<devices><{device}><enum name='{name}'>``, e.g. ``enum("disk", "bus")``."""
        return [str(v) for v in self.node.xpath("./devices/*[local-name()=$d]/enum[@name=$n]/value/text()",
                                                d=device, n=name)]

    def supports(self, device: str) -> bool:
        return bool(self.node.xpath("./devices/*[local-name()=$d][@supported='yes']", d=device))

    @property
    def efi_supported(self) -> bool:
        return "efi" in self.firmware or (bool(self.loader_supported) and "pflash" in self.loader_types)

    def uefi_loader(self, secure: bool = False) -> str | None:
        """A UEFI code path: a Secure Boot build when ``secure``, a plain one otherwise (None if none)."""
        for path in self.loaders:
            if any(hint in path.lower() for hint in _SECURE_HINTS) == secure:
                return path
        return None
