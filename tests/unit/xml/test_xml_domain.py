"""Domain model: build from scratch, edit libvirt's own XML, round trips that keep unknown XML."""

from __future__ import annotations

import pytest

from flint.xml import (
    Channel,
    Console,
    Controller,
    Disk,
    Domain,
    Graphics,
    Input,
    Interface,
    Rng,
    Serial,
    Video,
)


def cloud_vm() -> Domain:
    dom = Domain(type="qemu", name="web01", uuid="6f1c7a52-3b1e-4c1a-9d0e-2a7d5c0e9b11", title="Web server",
                 description="Front end & <TLS> termination", memory_mib=2048, current_memory_mib=2048, vcpus=2,
                 os_type="hvm", arch="x86_64", machine="pc-q35-7.2", acpi=True, apic=True,
                 cpu_mode="host-model", clock_offset="utc", on_poweroff="destroy", on_reboot="restart",
                 on_crash="destroy", emulator="/usr/bin/qemu-system-x86_64")
    dom.use_uefi()
    dom.set_flint_metadata({"created-by": "alice", "image": "debian-12"})
    dom.disks.append(Disk(device="disk", driver_name="qemu", driver_type="qcow2", target_dev="vda",
                          target_bus="virtio", boot_order=1).set_source(pool="images", volume="web01-root.qcow2"))
    dom.disks.append(Disk(device="cdrom", driver_name="qemu", driver_type="raw", target_dev="sda",
                          target_bus="sata", readonly=True).set_source(pool="images", volume="web01-seed.iso"))
    dom.controllers.append(Controller(type="usb", model="qemu-xhci", index=0))
    nic = Interface(type="network", mac="52:54:00:47:2d:c5", source_network="lab", model="virtio")
    dom.interfaces.append(nic.set_filter("flint-web01-nic0", {"IP": "10.20.0.11"}))
    dom.serials.append(Serial(type="pty", target_port=0))
    dom.consoles.append(Console(type="pty", target_type="serial", target_port=0))
    dom.channels.append(Channel.guest_agent())
    dom.inputs.append(Input(type="tablet", bus="usb"))
    dom.graphics.append(Graphics(type="vnc", port=-1, autoport=True, listen="127.0.0.1"))
    dom.videos.append(Video(model="virtio"))
    dom.rngs.append(Rng.virtio())
    return dom


def test_build_uefi_cloud_vm_matches_golden(golden):
    text = golden.check(cloud_vm(), "domain-cloud-out.xml")
    golden.validate(text, "domain")


def test_output_does_not_depend_on_the_order_fields_are_set():
    fields = dict(type="qemu", name="web01", uuid="6f1c7a52-3b1e-4c1a-9d0e-2a7d5c0e9b11", title="Web server",
                  memory_mib=2048, vcpus=2, os_type="hvm", arch="x86_64", machine="pc-q35-7.2", acpi=True,
                  apic=True, cpu_mode="host-model", on_crash="destroy", emulator="/usr/bin/qemu-system-x86_64")
    forward = Domain(**fields)
    backward = Domain(**dict(reversed(fields.items())))
    one_by_one = Domain()
    for key, value in reversed(fields.items()):
        setattr(one_by_one, key, value)
    assert forward.to_xml() == backward.to_xml() == one_by_one.to_xml()
    assert forward.to_xml().index("<name>") < forward.to_xml().index("<memory") < forward.to_xml().index("<os>")


def test_build_direct_kernel_boot_bios_vm(golden):
    dom = Domain(type="qemu", name="pxe-test", uuid="0b8f3c2e-9a47-4a4e-8f7e-3a2b1c0d9e8f", memory_mib=256,
                 vcpus=1, os_type="hvm", arch="x86_64", machine="pc-i440fx-7.2",
                 kernel="/usr/lib/ipxe/ipxe.lkrn", cmdline="console=ttyS0", boot_devices=["network", "hd"],
                 acpi=True, emulator="/usr/bin/qemu-system-x86_64")
    dom.interfaces.append(Interface(type="bridge", source_bridge="flint-test0", model="virtio"))
    dom.interfaces.append(Interface(type="direct", source_dev="eth1", source_mode="vepa", model="e1000e"))
    dom.graphics.append(Graphics(type="vnc", autoport=True, listen="127.0.0.1"))
    text = golden.check(dom, "domain-directboot-out.xml")
    golden.validate(text, "domain")
    assert not dom.is_uefi


def test_libvirt_xml_round_trips_without_loss(golden):
    source = golden.read("domain-libvirt-in.xml")
    dom = Domain.parse(source)
    out = golden.check(dom, "domain-libvirt-roundtrip-out.xml")
    assert golden.canonical(out) == golden.canonical(source)


def test_live_xml_round_trips_without_loss(golden):
    source = golden.read("domain-live-in.xml")
    assert golden.canonical(Domain.parse(source).to_xml()) == golden.canonical(source)


def test_edit_libvirt_xml(golden):
    dom = Domain.parse(golden.read("domain-libvirt-in.xml"))
    dom.memory_mib = 1024
    dom.current_memory_mib = 1024
    dom.vcpus = 4
    dom.title = "Resized"
    cdrom = next(d for d in dom.disks if d.device == "cdrom")
    dom.disks.remove(cdrom)
    dom.disks.append(Disk(device="disk", driver_name="qemu", driver_type="raw", target_dev="vdb",
                          target_bus="virtio").set_source(dev="/dev/vg0/data"))
    nic = dom.interfaces[0]
    nic.set_filter("flint-web01-nic0", {"IP": "10.0.0.2", "CTRL_IP_LEARNING": "none"})
    nic.model = "e1000e"
    dom.set_flint_metadata({"created-by": "bob"})
    dom.graphics[0].listen = "0.0.0.0"
    dom.boot_devices = ["cdrom", "hd"]
    text = golden.check(dom, "domain-libvirt-edit-out.xml")
    golden.validate(text, "domain")


def test_fields_read_libvirt_xml(golden):
    dom = Domain.parse(golden.read("domain-live-in.xml"))
    assert (dom.type, dom.name, dom.vcpus, dom.memory_kib, dom.memory_mib) == ("qemu", "web01", 2, 2097152, 2048)
    assert (dom.arch, dom.machine, dom.os_type, dom.firmware) == ("x86_64", "pc-q35-7.2", "hvm", "efi")
    assert dom.loader == "/usr/share/OVMF/OVMF_CODE_4M.fd" and dom.loader_readonly is True
    assert dom.nvram_template == "/usr/share/OVMF/OVMF_VARS_4M.fd"
    assert (dom.acpi, dom.apic, dom.cpu_mode, dom.cpu_model) == (True, True, "custom", "qemu64")
    assert dom.description == "Front end & TLS termination"
    assert [c.type for c in dom.controllers] == ["usb", "sata", "pci"]
    console = dom.consoles[0]
    assert (console.tty, console.target_type, dom.serials[0].source_path) == ("/dev/pts/3", "serial", "/dev/pts/3")
    channel = dom.channels[0]
    assert (channel.target_name, channel.target_state) == ("org.qemu.guest_agent.0", "disconnected")
    assert dom.disks[0].backing_path == "/var/lib/libvirt/images/debian-12.qcow2"
    assert dom.disks[0].backing_format == "qcow2"
    assert (dom.videos[0].model, dom.videos[0].primary, dom.rngs[0].backend) == ("virtio", True, "/dev/urandom")
    assert dom.interfaces[0].filter_params() == {"IP": ["10.20.0.11"]}


def test_memory_in_other_units_is_read_as_kib():
    dom = Domain.parse("<domain><memory unit='GiB'>2</memory><currentMemory unit='MB'>1000</currentMemory></domain>")
    assert dom.memory_kib == 2 * 1024 * 1024 and dom.memory_mib == 2048
    assert dom.current_memory_kib == 1000 * 1000 * 1000 // 1024
    dom.memory_mib = 512
    assert "<memory unit=\"KiB\">524288</memory>" in dom.to_xml()
    dom.memory_mib = None
    assert "memory>" not in dom.to_xml().replace("currentMemory", "")


def test_uefi_with_explicit_loader_then_back_to_bios():
    dom = Domain(name="fw", os_type="hvm")
    dom.use_uefi(loader="/usr/share/OVMF/OVMF_CODE_4M.fd", nvram_template="/usr/share/OVMF/OVMF_VARS_4M.fd")
    assert dom.is_uefi and dom.loader_type == "pflash" and dom.firmware is None
    assert '<loader readonly="yes" type="pflash">/usr/share/OVMF/OVMF_CODE_4M.fd</loader>' in dom.to_xml()
    dom.use_bios()
    assert not dom.is_uefi
    assert dom.to_xml() == "<domain>\n  <name>fw</name>\n  <os>\n    <type>hvm</type>\n  </os>\n</domain>\n"


def test_flint_metadata_merges_and_keeps_other_applications_metadata(golden):
    dom = Domain.parse(golden.read("domain-live-in.xml"))
    assert dom.flint_metadata() == {"created-by": "alice", "image": "debian-12"}
    dom.set_flint_metadata({"image": None, "owner": "ops"})
    assert dom.flint_metadata() == {"created-by": "alice", "owner": "ops"}
    assert "libosinfo:os" in dom.to_xml()
    dom.set_flint_metadata({"created-by": None, "owner": None})
    assert dom.flint_metadata() == {} and "flint:vm" not in dom.to_xml() and "<metadata>" in dom.to_xml()
    with pytest.raises(ValueError, match="metadata key"):
        dom.set_flint_metadata({"Bad Key": "x"})


def test_vm_name_is_validated_on_set():
    with pytest.raises(ValueError, match="VM name"):
        Domain(name="../etc")
    with pytest.raises(ValueError, match="VM name"):
        Domain().name = "a b"


def test_values_are_escaped_not_formatted():
    dom = Domain(description="</description><devices><disk/></devices>", title="x' onload='y")
    again = Domain.parse(dom.to_xml())
    assert again.description == "</description><devices><disk/></devices>"
    assert again.title == "x' onload='y"
    assert len(again.disks) == 0


def test_entities_are_not_expanded():
    evil = ('<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            "<domain><name>&x;</name></domain>")
    assert "root:" not in (Domain.parse(evil).name or "")


def test_parse_rejects_other_documents():
    with pytest.raises(ValueError, match="expected <domain>"):
        Domain.parse("<network/>")


def test_device_xml_alone_for_attach_device():
    disk = Disk(device="disk", driver_name="qemu", driver_type="qcow2", target_dev="vdb", target_bus="virtio")
    disk.set_source(file="/var/lib/libvirt/images/extra.qcow2")
    assert disk.to_xml() == (
        '<disk type="file" device="disk">\n'
        '  <driver name="qemu" type="qcow2"/>\n'
        '  <source file="/var/lib/libvirt/images/extra.qcow2"/>\n'
        '  <target dev="vdb" bus="virtio"/>\n'
        "</disk>\n"
    )
    with pytest.raises(ValueError, match="one of"):
        disk.set_source(file="/a", pool="p", volume="v")


def test_child_lists_are_typed():
    with pytest.raises(TypeError, match="holds Disk"):
        Domain().disks.append(Interface())


def test_metadata_element_for_set_metadata_api():
    from flint.xml import FLINT_NS, flint_metadata_xml, parse_flint_metadata

    # virDomainSetMetadata refuses a declared namespace: it adds FLINT_NS itself
    xml = flint_metadata_xml({"created-by": "alice", "job": "4f2a"})
    assert xml == "<vm><created-by>alice</created-by><job>4f2a</job></vm>"
    assert parse_flint_metadata(xml) == {"created-by": "alice", "job": "4f2a"}
    # and libvirt may return it namespaced
    namespaced = f'<flint:vm xmlns:flint="{FLINT_NS}"><flint:job>4f2a</flint:job></flint:vm>'
    assert parse_flint_metadata(namespaced) == {"job": "4f2a"}
    assert parse_flint_metadata(None) == {} and parse_flint_metadata("<other/>") == {}


def test_network_disk_and_device_identity(golden):
    dom = Domain.parse(golden.read("domain-live-in.xml"))
    disk = Disk(device="disk", type="network", source_protocol="nbd", source_name="export1",
                source_host_name="127.0.0.1", source_host_port=10809, target_dev="vdc", target_bus="virtio")
    dom.disks.append(disk)
    assert disk in dom.disks and dom.disks[-1] == disk and dom.disks[0] != disk
    assert '<source protocol="nbd" name="export1">\n        <host name="127.0.0.1" port="10809"/>' in dom.to_xml()
    assert (disk.path, dom.disks[2].source_host_port) == (None, 10809)
    nic = dom.interfaces[1]
    nic.boot_order = 2
    dom.graphics[0].passwd = "s3cret'\"<"
    assert Domain.parse(dom.to_xml()).graphics[0].passwd == "s3cret'\"<"
    golden.validate(dom.to_xml(), "domain")
