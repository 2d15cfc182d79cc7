"""vm.create's validation against a fake host: every field a request can get wrong is refused with a
4xx naming it, and a good request becomes the plan the job records."""

from __future__ import annotations

import copy

import pytest
from passlib.hash import sha512_crypt

from flint.contracts.common import ServiceError
from flint.xml import Domain
from services.provisioner.vm_create_check import check_request, volume_base
from tests.unit.provisioner.fakevirt import lab

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@example"


def iso(**changes) -> dict:
    body = {"name": "web01", "vcpus": 2, "memory_mib": 1024,
            "source": {"kind": "iso", "volume": "images/debian.iso"},
            "disks": [{"size_gib": 10, "pool": "vms"}], "nics": [{"network": "lab"}], "start": True}
    body.update(changes)
    return body


def cloud(**ci) -> dict:
    body = iso(source={"kind": "cloud_image", "volume": "images/debian-12.qcow2",
                       "cloud_init": {"user": "alice", "ssh_authorized_keys": [KEY], **ci}})
    return body


def check(body: dict, conn=None):
    return check_request(conn or lab(), "qemu:///system", "local", "qemu", copy.deepcopy(body))


def test_iso_request_becomes_a_plan():
    plan, target = check(iso())
    assert target == "web01"
    assert plan["disks"] == [{"pool": "vms", "volume": "web01-disk0.qcow2", "capacity": 10 * 1024**3,
                              "format": "qcow2", "bus": None, "backing": None}]
    assert plan["cdroms"] == [{"pool": "images", "volume": "debian.iso"}]
    assert plan["seed"] is None and plan["cloud_init"] is None
    mac = plan["nics"][0]["mac"]
    assert mac.startswith("52:54:00:")
    dom = Domain.parse(plan["domain_xml"])
    assert dom.uuid == plan["uuid"] and dom.boot_devices == ["cdrom", "hd"] and dom.interfaces[0].mac == mac
    assert [(d.source_pool, d.source_volume, d.device) for d in dom.disks] == [
        ("vms", "web01-disk0.qcow2", "disk"), ("images", "debian.iso", "cdrom")]


def test_cloud_image_request_plans_an_overlay_and_a_seed_with_the_password_hashed():
    plan, _ = check(cloud(password="hunter2-long"))
    disk = plan["disks"][0]
    assert disk["backing"] == {"path": "/pools/images/debian-12.qcow2", "format": "qcow2"}
    assert plan["seed"] == {"pool": "vms", "volume": "web01-cidata.iso", "format": "raw"}
    assert "hunter2-long" not in repr(plan)
    assert sha512_crypt.verify("hunter2-long", plan["cloud_init"]["password_hash"])
    dom = Domain.parse(plan["domain_xml"])
    assert dom.boot_devices == ["hd"]
    assert [d.source_volume for d in dom.disks] == ["web01-disk0.qcow2", "web01-cidata.iso"]


def test_cloud_image_without_disks_gets_one_the_image_size():
    body = cloud()
    body["disks"] = []
    plan, _ = check(body)
    assert plan["disks"][0]["pool"] == "images" and plan["disks"][0]["capacity"] == 2 * 1024**3


def test_direct_boot_resolves_volumes_to_paths():
    plan, _ = check(iso(direct_boot={"kernel": "images/vmlinuz", "cmdline": "console=ttyS0"}))
    dom = Domain.parse(plan["domain_xml"])
    assert dom.kernel == "/pools/images/vmlinuz" and dom.cmdline == "console=ttyS0"


def test_long_names_keep_volume_names_valid():
    name = "a" * 63
    assert len(volume_base(name) + "-cidata.iso") <= 63
    plan, _ = check(iso(name=name))
    assert len(plan["disks"][0]["volume"]) <= 63


def test_a_logical_pool_gets_a_raw_volume_and_refuses_an_overlay():
    plan, _ = check(iso(disks=[{"size_gib": 1, "pool": "lvm"}]))
    assert plan["disks"][0] == {"pool": "lvm", "volume": "web01-disk0", "capacity": 1024**3, "format": "raw",
                                "bus": None, "backing": None}
    body = cloud()
    body["disks"] = [{"size_gib": 5, "pool": "lvm"}]
    with pytest.raises(ServiceError) as err:
        check(body)
    assert err.value.field == "disks[0].pool" and "overlay" in err.value.message


def _conn_with(**changes):
    conn = lab()
    for key, value in changes.items():
        setattr(conn, key, value)
    return conn


CASES = [
    ("name charset", iso(name="web 01"), 422, "name"),
    ("name taken", iso(name="taken"), 409, "name"),
    ("missing name", {k: v for k, v in iso().items() if k != "name"}, 400, "name"),
    ("unknown field", iso(cpus=2), 400, ""),
    ("vcpus > host", iso(vcpus=5), 422, "vcpus"),
    ("vcpus 0", iso(vcpus=0), 400, "vcpus"),
    ("memory too small", iso(memory_mib=63), 422, "memory_mib"),
    ("memory > host", iso(memory_mib=16385), 422, "memory_mib"),
    ("firmware", iso(firmware="efi"), 400, "firmware"),
    ("host", iso(host="other"), 400, "host"),
    ("disk size 0", iso(disks=[{"size_gib": 0, "pool": "vms"}]), 400, "disks[0].size_gib"),
    ("pool missing", iso(disks=[{"size_gib": 1, "pool": "nope"}]), 422, "disks[0].pool"),
    ("pool inactive", iso(disks=[{"size_gib": 1, "pool": "off"}]), 422, "disks[0].pool"),
    ("pool full", iso(disks=[{"size_gib": 30, "pool": "vms"}, {"size_gib": 30, "pool": "vms"}]),
     422, "disks[0].size_gib"),
    ("bus", iso(disks=[{"size_gib": 1, "pool": "vms", "bus": "usb"}]), 400, "disks[0].bus"),
    ("iso missing", iso(source={"kind": "iso", "volume": "images/nope.iso"}), 422, "source.volume"),
    ("iso not pool/vol", iso(source={"kind": "iso", "volume": "debian.iso"}), 422, "source.volume"),
    ("pxe network missing", iso(source={"kind": "pxe", "network": "nope"}), 422, "source.network"),
    ("pxe network down", iso(source={"kind": "pxe", "network": "down"}), 422, "source.network"),
    ("network install not http", iso(source={"kind": "network_install", "location": "ftp://127.0.0.1/d"}), 422,
     "source.location"),
    ("network install not started", iso(source={"kind": "network_install", "location": "http://127.0.0.1/d"},
                                        start=False), 422, "start"),
    ("image is an ISO", iso(source={"kind": "cloud_image", "volume": "images/tools.iso"}), 422, "source.volume"),
    ("network missing", iso(nics=[{"network": "nope"}]), 422, "nics[0].network"),
    ("network down", iso(nics=[{"network": "down"}]), 422, "nics[0].network"),
    ("neither network nor bridge", iso(nics=[{"model": "virtio"}]), 422, "nics[0]"),
    ("bridge name", iso(nics=[{"bridge": "../etc"}]), 422, "nics[0].bridge"),
    ("bridge missing", iso(nics=[{"bridge": "flintnobr0"}]), 422, "nics[0].bridge"),
    ("nic model", iso(nics=[{"network": "lab", "model": "pcnet"}]), 400, "nics[0].model"),
    ("multicast mac", iso(nics=[{"network": "lab", "mac": "01:00:5e:00:00:01"}]), 422, "nics[0].mac"),
    ("same mac twice", iso(nics=[{"network": "lab", "mac": "52:54:00:00:00:01"},
                                 {"network": "lab", "mac": "52:54:00:00:00:01"}]), 422, "nics[1].mac"),
    ("disk smaller than image", cloud() | {"disks": [{"size_gib": 1, "pool": "vms"}]}, 422, "disks[0].size_gib"),
    ("hostname", cloud(hostname="web_01"), 422, "source.cloud_init.hostname"),
    ("user", cloud(user="Alice"), 422, "source.cloud_init.user"),
    ("ssh key", cloud(ssh_authorized_keys=["ssh-ed25519"]), 422, "source.cloud_init.ssh_authorized_keys[0]"),
    ("static without nic", cloud(network={"address": "10.0.0.2/24"}) | {"nics": []}, 422,
     "source.cloud_init.network"),
    ("gateway", cloud(network={"address": "10.0.0.2/24", "gateway": "10.9.0.1"}), 422,
     "source.cloud_init.network.gateway"),
    ("cloud-init unknown key", cloud(passwd="x"), 400, ""),
    ("kernel missing", iso(direct_boot={"kernel": "images/nope"}), 422, "direct_boot.kernel"),
    ("initrd missing", iso(direct_boot={"kernel": "images/vmlinuz", "initrd": "images/nope"}), 422,
     "direct_boot.initrd"),
    ("ide on q35 is switched, not refused; 5 IDE devices are refused",
     iso(disks=[{"size_gib": 1, "pool": "vms", "bus": "ide"}] * 4), 422, "disks"),
]


@pytest.mark.parametrize("what, body, status, field", CASES, ids=[c[0] for c in CASES])
def test_invalid_field_is_refused_naming_it(what, body, status, field):
    with pytest.raises(ServiceError) as err:
        check(body)
    assert err.value.code == status, err.value.message
    if field:
        assert err.value.field == field, err.value.message
        assert err.value.message.startswith(field)
    assert len(err.value.message) > len(field) + 10


def test_a_volume_name_already_in_the_pool_is_not_overwritten():
    conn = lab()
    conn.pools["vms"].add("web01-disk0.qcow2", 1024**3, "qcow2")
    with pytest.raises(ServiceError) as err:
        check(iso(), conn)
    assert (err.value.code, err.value.field) == (409, "disks[0]")
