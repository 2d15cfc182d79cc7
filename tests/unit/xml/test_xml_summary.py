from __future__ import annotations

from flint.xml import Domain, domain_summary


def test_summary_of_live_xml(golden):
    s = domain_summary(golden.read("domain-live-in.xml"))
    assert {k: s[k] for k in ("uuid", "name", "title", "description", "virt_type", "arch", "machine")} == {
        "uuid": "6f1c7a52-3b1e-4c1a-9d0e-2a7d5c0e9b11", "name": "web01", "title": "Web server",
        "description": "Front end & TLS termination", "virt_type": "qemu", "arch": "x86_64",
        "machine": "pc-q35-7.2"}
    assert (s["vcpus"], s["memory_mib"], s["current_memory_mib"], s["firmware"], s["boot"]) == (
        2, 2048, 1024, "uefi", [])
    assert s["disks"] == [
        {"target": "vda", "bus": "virtio", "device": "disk", "type": "file", "pool": None, "volume": None,
         "path": "/var/lib/libvirt/images/web01-root.qcow2", "format": "qcow2", "readonly": False,
         "boot_order": 1},
        {"target": "sda", "bus": "sata", "device": "cdrom", "type": "volume", "pool": "images",
         "volume": "web01-seed.iso", "path": None, "format": "raw", "readonly": True, "boot_order": None},
    ]
    assert s["nics"] == [
        {"mac": "52:54:00:47:2d:c5", "model": "virtio", "type": "network", "network": "lab", "bridge": "virbr1",
         "source_dev": None, "target_dev": "vnet0", "filter": "flint-web01-nic0", "boot_order": None},
        {"mac": "52:54:00:11:22:33", "model": "e1000e", "type": "bridge", "network": None, "bridge": "br0",
         "source_dev": None, "target_dev": "vnet1", "filter": None, "boot_order": None},
    ]
    assert s["graphics"] == [
        {"type": "vnc", "port": 5900, "autoport": True, "listen": "127.0.0.1"},
        {"type": "spice", "port": -1, "autoport": True, "listen": None},
    ]
    assert s["metadata"] == {"created-by": "alice", "image": "debian-12"}


def test_summary_of_inactive_libvirt_xml(golden):
    s = domain_summary(golden.read("domain-libvirt-in.xml"))
    assert (s["name"], s["firmware"], s["memory_mib"], s["vcpus"], s["boot"], s["metadata"]) == (
        "web01", "uefi", 512, 2, ["hd"], {})
    assert s["graphics"] == [{"type": "vnc", "port": -1, "autoport": True, "listen": "127.0.0.1"}]
    assert [(d["device"], d["path"], d["pool"], d["volume"]) for d in s["disks"]] == [
        ("disk", "/tmp/x.qcow2", None, None), ("cdrom", None, "default", "x.iso")]
    assert s["nics"][0]["mac"] == "52:54:00:47:2d:c5" and s["nics"][0]["target_dev"] is None


def test_summary_of_bios_vm_and_of_a_model(golden):
    dom = Domain.parse(golden.read("domain-directboot-out.xml"))
    s = domain_summary(dom)
    assert (s["firmware"], s["boot"], s["memory_mib"]) == ("bios", ["network", "hd"], 256)
    assert [(n["type"], n["bridge"], n["source_dev"]) for n in s["nics"]] == [
        ("bridge", "flint-test0", None), ("direct", None, "eth1")]


def test_summary_firmware_from_loader_only():
    xml = ("<domain><os><type>hvm</type><loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE.fd"
           "</loader></os></domain>")
    assert domain_summary(xml)["firmware"] == "uefi"
    assert domain_summary("<domain><os><loader>/usr/share/edk2/ovmf/x.fd</loader></os></domain>")["firmware"] == "uefi"
    assert domain_summary("<domain/>")["firmware"] == "bios"
