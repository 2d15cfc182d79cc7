"""The domain builder against captured host capabilities: golden XML for each way a VM is made."""

from __future__ import annotations

import pytest
from lxml import etree

from flint.xml import Capabilities, Domain, DomainCapabilities
from services.provisioner.domain_builder import (
    BuildError,
    BuildPlan,
    DiskPlan,
    NicPlan,
    build_domain,
    choose_guest,
)

UUID = "5b0c3c1e-8a8f-4e44-9a51-0f4f8f1b2c3d"


@pytest.fixture
def caps(golden) -> Capabilities:
    return Capabilities.parse(golden.read("capabilities-qemu-x86_64.xml"))


@pytest.fixture
def q35(golden) -> DomainCapabilities:
    return DomainCapabilities.parse(golden.read("domcaps-kvm-q35.xml"))


@pytest.fixture
def pc(golden) -> DomainCapabilities:
    return DomainCapabilities.parse(golden.read("domcaps-qemu-pc.xml"))


def test_iso_install_bios_kvm(golden, caps, q35):
    plan = BuildPlan(
        name="install01", uuid=UUID, vcpus=2, memory_mib=2048,
        disks=[DiskPlan("vms", "install01-disk0.qcow2"), DiskPlan("vms", "install01-disk1.qcow2"),
               DiskPlan("isos", "debian-12.iso", device="cdrom", format="raw")],
        nics=[NicPlan(mac="52:54:00:aa:bb:01", network="lab")],
        boot=["cdrom", "hd"], description="Debian install",
        metadata={"created-from": "iso", "source-volume": "isos/debian-12.iso"},
    )
    dom = build_domain(plan, caps, q35, "kvm")
    text = golden.check(dom, "domain-iso-bios-out.xml")
    golden.validate(text)
    assert (dom.type, dom.machine, dom.cpu_mode, dom.is_uefi) == ("kvm", "pc-q35-7.2", "host-passthrough", False)
    assert [d.target_dev for d in dom.disks] == ["vda", "vdb", "sda"]


def test_cloud_image_uefi_tcg(golden, caps, q35):
    plan = BuildPlan(
        name="web01", uuid=UUID, vcpus=1, memory_mib=512, firmware="uefi",
        disks=[DiskPlan("vms", "web01-disk0.qcow2"), DiskPlan("vms", "web01-cidata.iso", device="cdrom", format="raw")],
        nics=[NicPlan(mac="52:54:00:aa:bb:02", bridge="br0")],
        metadata={"created-from": "cloud_image", "seed-volume": "vms/web01-cidata.iso"},
    )
    dom = build_domain(plan, caps, q35, "qemu")
    text = golden.check(dom, "domain-cloud-uefi-out.xml")
    golden.validate(text)
    assert dom.is_uefi and dom.firmware == "efi" and dom.cpu_mode == "maximum"
    assert dom.boot_devices == ["hd"]
    assert dom.flint_metadata() == {"created-from": "cloud_image", "seed-volume": "vms/web01-cidata.iso"}


def test_direct_kernel_boot(golden, caps, q35):
    plan = BuildPlan(
        name="kernel01", uuid=UUID, vcpus=1, memory_mib=256,
        disks=[DiskPlan("vms", "kernel01-disk0.qcow2")],
        kernel="/var/lib/flint/boot/vmlinuz", initrd="/var/lib/flint/boot/initrd.img",
        cmdline="root=/dev/vda console=ttyS0",
    )
    dom = build_domain(plan, caps, q35, "qemu")
    text = golden.check(dom, "domain-directboot-out.xml")
    golden.validate(text)
    assert dom.boot_devices == [] and dom.cmdline == "root=/dev/vda console=ttyS0"


def test_old_guest_on_ide_with_e1000_gets_an_i440fx_machine(golden, caps, pc):
    plan = BuildPlan(
        name="winxp", uuid=UUID, vcpus=1, memory_mib=512,
        disks=[DiskPlan("vms", "winxp-disk0.qcow2", bus="ide"),
               DiskPlan("isos", "xp.iso", device="cdrom", format="raw")],
        nics=[NicPlan(mac="52:54:00:aa:bb:03", network="lab", model="e1000"),
              NicPlan(mac="52:54:00:aa:bb:04", network="lab", model="rtl8139")],
        boot=["cdrom", "hd"],
    )
    dom = build_domain(plan, caps, pc, "qemu")
    text = golden.check(dom, "domain-oldguest-out.xml")
    golden.validate(text)
    assert dom.machine == "pc-i440fx-7.2"
    assert [(d.target_dev, d.target_bus) for d in dom.disks] == [("hda", "ide"), ("hdb", "ide")]
    assert [n.model for n in dom.interfaces] == ["e1000", "rtl8139"]


def test_sata_and_scsi_disks(caps, q35):
    plan = BuildPlan(name="mixed", uuid=UUID, vcpus=1, memory_mib=256,
                     disks=[DiskPlan("vms", "a", bus="sata"), DiskPlan("vms", "b", bus="scsi"),
                            DiskPlan("isos", "c.iso", device="cdrom", format="raw")])
    dom = build_domain(plan, caps, q35, "qemu")
    assert [(d.target_dev, d.target_bus) for d in dom.disks] == [("sda", "sata"), ("sdb", "scsi"), ("sdc", "sata")]
    assert ("scsi", "virtio-scsi") in [(c.type, c.model) for c in dom.controllers]
    assert dom.machine.startswith("pc-q35")


def test_uefi_without_autoselection_uses_a_loader_from_domain_capabilities(caps, golden):
    domcaps = DomainCapabilities.parse(golden.read("domcaps-kvm-q35.xml"))
    enum = domcaps.node.find("os/enum[@name='firmware']")
    enum.getparent().remove(enum)
    dom = build_domain(BuildPlan(name="fw", uuid=UUID, vcpus=1, memory_mib=256, firmware="uefi"), caps, domcaps, "kvm")
    assert dom.firmware is None and dom.loader == "/usr/share/OVMF/OVMF_CODE_4M.fd" and dom.loader_type == "pflash"


def test_uefi_on_a_host_without_ovmf_names_the_firmware_field(caps, golden):
    domcaps = DomainCapabilities.parse(golden.read("domcaps-kvm-q35.xml"))
    os_ = domcaps.node.find("os")
    for child in list(os_):
        os_.remove(child)
    with pytest.raises(BuildError) as err:
        build_domain(BuildPlan(name="fw", uuid=UUID, vcpus=1, memory_mib=256, firmware="uefi"), caps, domcaps, "kvm")
    assert err.value.field == "firmware" and "OVMF" in err.value.message


def test_five_ide_devices_do_not_fit(caps, pc):
    disks = [DiskPlan("vms", f"d{i}", bus="ide") for i in range(5)]
    with pytest.raises(BuildError, match="at most 4 IDE"):
        build_domain(BuildPlan(name="many", uuid=UUID, vcpus=1, memory_mib=256, disks=disks), caps, pc, "qemu")


def test_guest_choice_comes_from_capabilities_not_constants(caps):
    xml = etree.fromstring(caps.to_xml().encode())
    for emulator in xml.iter("emulator"):
        emulator.text = "/opt/qemu/bin/qemu-system-x86_64"
    other = Capabilities(xml)
    assert choose_guest(other, "qemu").emulator == "/opt/qemu/bin/qemu-system-x86_64"
    dom = build_domain(BuildPlan(name="x", uuid=UUID, vcpus=1, memory_mib=256), other, None, "qemu")
    assert dom.emulator == "/opt/qemu/bin/qemu-system-x86_64"
    with pytest.raises(BuildError) as err:
        choose_guest(caps, "xen")
    assert err.value.field == "host" and "hvm/x86_64/qemu" in err.value.message


def test_output_round_trips_through_the_domain_model(caps, q35):
    plan = BuildPlan(name="rt", uuid=UUID, vcpus=1, memory_mib=256, disks=[DiskPlan("vms", "rt-disk0.qcow2")])
    text = build_domain(plan, caps, q35, "qemu").to_xml()
    assert Domain.parse(text).to_xml() == text
