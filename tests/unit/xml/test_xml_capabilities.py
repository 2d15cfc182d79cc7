"""Host and domain capabilities, captured from this project's Debian 12 machine (libvirt 9.0, QEMU 7.2)."""

from __future__ import annotations

import pytest

from flint.xml import Capabilities, DomainCapabilities

ARM_CAPS = """<capabilities>
  <host><cpu><arch>aarch64</arch></cpu></host>
  <guest>
    <os_type>hvm</os_type>
    <arch name='aarch64'>
      <wordsize>64</wordsize>
      <emulator>/usr/bin/qemu-system-aarch64</emulator>
      <machine maxCpus='512'>virt-7.2</machine>
      <machine maxCpus='4'>raspi3b</machine>
      <machine canonical='virt-7.2' maxCpus='512'>virt</machine>
      <domain type='qemu'/>
      <domain type='kvm'>
        <emulator>/usr/libexec/qemu-kvm</emulator>
      </domain>
    </arch>
  </guest>
  <guest>
    <os_type>hvm</os_type>
    <arch name='riscv64'>
      <wordsize>64</wordsize>
      <emulator>/usr/bin/qemu-system-riscv64</emulator>
      <machine maxCpus='8'>spike</machine>
      <machine maxCpus='512'>virt</machine>
      <domain type='qemu'/>
    </arch>
  </guest>
</capabilities>"""


@pytest.fixture
def caps(golden) -> Capabilities:
    return Capabilities.parse(golden.read("capabilities-qemu-x86_64.xml"))


def test_host(caps, golden):
    assert (caps.host_arch, caps.host_cpu_model, caps.host_cpu_vendor) == ("x86_64", "Broadwell", "Intel")
    golden.validate(golden.read("capabilities-qemu-x86_64.xml"), "capability")


def test_guests(caps):
    assert [(g.os_type, g.arch, g.wordsize, g.emulator, g.domain_types) for g in caps.guests] == [
        ("hvm", "i686", 32, "/usr/bin/qemu-system-i386", ["qemu", "kvm"]),
        ("hvm", "x86_64", 64, "/usr/bin/qemu-system-x86_64", ["qemu", "kvm"]),
    ]
    x86 = caps.guests[1]
    q35 = next(m for m in x86.machines if m.name == "q35")
    assert (q35.canonical, q35.max_cpus, q35.deprecated) == ("pc-q35-7.2", 288, None)
    assert next(m for m in x86.machines if m.name == "pc-i440fx-1.5").deprecated is True
    assert x86.machines[0].name == "pc-i440fx-7.2"  # libvirt lists QEMU's default first, not q35


def test_pick_guest_prefers_q35_on_x86(caps):
    for virt_type in ("kvm", "qemu"):
        choice = caps.pick_guest("x86_64", virt_type)
        assert (choice.virt_type, choice.os_type, choice.arch) == (virt_type, "hvm", "x86_64")
        assert (choice.emulator, choice.machine) == ("/usr/bin/qemu-system-x86_64", "pc-q35-7.2")
    assert caps.pick_guest(virt_type="qemu").arch == "x86_64"  # the host's arch by default
    assert caps.pick_guest("i686", "qemu").emulator == "/usr/bin/qemu-system-i386"


def test_pick_guest_reports_what_the_host_offers(caps):
    with pytest.raises(LookupError, match=r"no hvm/aarch64/kvm guest .*hvm/x86_64/kvm"):
        caps.pick_guest("aarch64", "kvm")
    with pytest.raises(LookupError, match="no hvm/x86_64/xen"):
        caps.pick_guest("x86_64", "xen")


def test_pick_guest_elsewhere_uses_domain_emulator_and_first_alias_or_first_machine():
    caps = Capabilities.parse(ARM_CAPS)
    kvm = caps.pick_guest(virt_type="kvm")
    assert (kvm.arch, kvm.emulator, kvm.machine) == ("aarch64", "/usr/libexec/qemu-kvm", "virt-7.2")
    assert caps.pick_guest(virt_type="qemu").emulator == "/usr/bin/qemu-system-aarch64"
    assert caps.pick_guest("riscv64", "qemu").machine == "spike"


def test_domain_capabilities_kvm_q35(golden):
    text = golden.read("domcaps-kvm-q35.xml")
    golden.validate(text, "domaincaps")
    dc = DomainCapabilities.parse(text)
    assert (dc.path, dc.virt_type, dc.machine, dc.arch, dc.max_vcpus) == (
        "/usr/bin/qemu-system-x86_64", "kvm", "pc-q35-7.2", "x86_64", 288)
    assert dc.firmware == ["efi"] and dc.efi_supported and dc.loader_types == ["rom", "pflash"]
    assert dc.loaders == ["/usr/share/OVMF/OVMF_CODE_4M.ms.fd", "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd",
                          "/usr/share/OVMF/OVMF_CODE_4M.fd"]
    assert dc.uefi_loader() == "/usr/share/OVMF/OVMF_CODE_4M.fd"
    assert dc.uefi_loader(secure=True) == "/usr/share/OVMF/OVMF_CODE_4M.ms.fd"
    assert dc.loader_secure == ["yes", "no"]
    assert dc.enum("disk", "bus") == ["fdc", "scsi", "virtio", "usb", "sata"]
    assert "vnc" in dc.enum("graphics", "type") and "virtio" in dc.enum("video", "modelType")
    assert dc.supports("rng") and not dc.supports("nonexistent")


def test_domain_capabilities_tcg_i440fx_has_no_secure_boot(golden):
    dc = DomainCapabilities.parse(golden.read("domcaps-qemu-pc.xml"))
    assert (dc.virt_type, dc.machine, dc.max_vcpus) == ("qemu", "pc-i440fx-7.2", 255)
    assert dc.loaders == ["/usr/share/OVMF/OVMF_CODE_4M.fd"] and dc.loader_secure == ["no"]
    assert dc.uefi_loader() == "/usr/share/OVMF/OVMF_CODE_4M.fd" and dc.uefi_loader(secure=True) is None
    assert dc.enum("disk", "diskDevice") == ["disk", "cdrom", "floppy", "lun"]


def test_domain_capabilities_without_firmware_support():
    dc = DomainCapabilities.parse("<domainCapabilities><os supported='yes'><loader supported='no'/></os>"
                                  "</domainCapabilities>")
    assert not dc.efi_supported and dc.uefi_loader() is None and dc.loaders == [] and dc.max_vcpus is None
