"""Pool and volume requests: the XML each pool type gets (golden files, checked against libvirt's own
schema), and every wrong field refused with its name."""

from __future__ import annotations

import os
from pathlib import Path

import libvirt
import msgspec
import pytest
from lxml import etree

from flint.contracts.common import ServiceError
from flint.contracts.storage import PoolCreate
from services.provisioner.storage_spec import (
    TYPES,
    build_plan,
    needs_full_space,
    parse_size,
    pool_model,
    volume_model,
)

GOLDEN = Path(__file__).parent / "golden"
RNG = Path("/usr/share/libvirt/schemas/storagepool.rng")
RNG_VOL = Path("/usr/share/libvirt/schemas/storagevol.rng")


def req(**fields) -> PoolCreate:
    return msgspec.convert(fields, PoolCreate)


def check_golden(text: str, name: str) -> None:
    path = GOLDEN / name
    if os.environ.get("FLINT_REGEN_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs from the XML built now"


def validate(text: str, rng: Path = RNG) -> None:
    if not rng.exists():
        pytest.skip(f"libvirt schema {rng} not installed")
    schema = etree.RelaxNG(etree.parse(str(rng)))
    assert schema.validate(etree.fromstring(text.encode())), f"{rng.name} rejects:\n{text}\n{schema.error_log}"


POOLS = {
    "dir": dict(name="images", type="dir", target="/var/lib/flint//images/"),
    "fs": dict(name="data", type="fs", target="/srv/data", source={"devices": ["/dev/sdb1"], "format": "ext4"}),
    "netfs": dict(name="nas", type="netfs", target="/mnt/nas",
                  source={"host": "nas.example.lan", "dir": "/exports/vm", "port": 2049}),
    "netfs-cifs": dict(name="share", type="netfs", target="/mnt/share",
                       source={"host": "192.0.2.7", "dir": "vmshare", "format": "cifs"}),
    "logical": dict(name="vg0", type="logical", source={"devices": ["/dev/sdb", "/dev/sdc"]}),
    "logical-existing": dict(name="fast", type="logical", source={"name": "nvme_vg"}),
    "disk": dict(name="sdd", type="disk", source={"devices": ["/dev/sdd"]}),
    "iscsi": dict(name="san", type="iscsi", source={"host": "san.example.lan", "port": 3260,
                                                    "devices": ["iqn.2024-01.lan.example:storage.lun1"],
                                                    "initiator": "iqn.2024-01.lan.example:host1"}),
    "iscsi-direct": dict(name="san2", type="iscsi-direct", source={
        "host": "192.0.2.20", "devices": ["iqn.2024-01.lan.example:t2"], "initiator": "iqn.2024-01.lan.example:h1"}),
    "scsi": dict(name="hba", type="scsi", source={"adapter": "host2"}),
    "mpath": dict(name="multipath", type="mpath"),
    "rbd": dict(name="ceph", type="rbd", source={"host": "mon1.example.lan", "port": 6789, "name": "rbd",
                                                 "auth_username": "libvirt",
                                                 "auth_secret_uuid": "2ec115d7-3a88-3ceb-bc12-0ac909a6fd87"}),
    "gluster": dict(name="gv", type="gluster", source={"host": "gluster.example.lan", "name": "gv0"}),
    "zfs": dict(name="tank", type="zfs", source={"name": "tank", "devices": ["/dev/sde"]}),
    "vstorage": dict(name="vz", type="vstorage", target="/mnt/vz", source={"name": "cluster1"}),
}


@pytest.mark.parametrize("key", sorted(POOLS))
def test_each_pool_type_builds_the_xml_libvirt_expects(key):
    text = pool_model(req(**POOLS[key])).to_xml()
    check_golden(text, f"pool-{key}-out.xml")
    validate(text)


def test_every_libvirt_pool_type_has_a_golden_case():
    assert {k.split("-")[0] if k != "iscsi-direct" else k for k in POOLS} == set(TYPES)


def test_paths_are_normalised_and_defaults_filled():
    assert pool_model(req(**POOLS["dir"])).target_path == "/var/lib/flint/images"
    logical = pool_model(req(**POOLS["logical"]))
    assert (logical.source_name, logical.target_path, logical.source_format) == ("vg0", "/dev/vg0", "lvm2")
    assert pool_model(req(**POOLS["disk"])).target_path == "/dev"
    assert pool_model(req(**POOLS["disk"])).source_format == "gpt"
    assert pool_model(req(**POOLS["netfs"])).source_format == "nfs"


BAD = [
    (dict(name="a/b", type="dir", target="/x"), "name", "invalid"),
    (dict(name="with.dot", type="dir", target="/x"), "name", "must not contain '.'"),
    (dict(name="p", type="nope", target="/x"), "type", "not a pool type"),
    (dict(name="p", type="dir"), "target", "is required"),
    (dict(name="p", type="dir", target="relative/path"), "target", "not an absolute path"),
    (dict(name="p", type="dir", target="/var/../etc"), "target", "'..'"),
    (dict(name="p", type="dir", target="/"), "target", "root directory"),
    (dict(name="p", type="dir", target="/x\ny"), "target", "control characters"),
    (dict(name="p", type="dir", target="/x", source={"host": "h"}), "source.host", "not used by dir pools"),
    (dict(name="p", type="fs", target="/x"), "source.devices", "required for fs pools"),
    (dict(name="p", type="fs", target="/x", source={"devices": ["sdb"]}), "source.devices[0]", "absolute"),
    (dict(name="p", type="fs", target="/x", source={"devices": ["/dev/a", "/dev/b"]}), "source.devices", "exactly one"),
    (dict(name="p", type="fs", target="/x", source={"devices": ["/dev/a"], "format": "ntfs"}), "source.format",
     "not a fs format"),
    (dict(name="p", type="netfs", target="/x", source={"dir": "/e"}), "source.host", "required for netfs"),
    (dict(name="p", type="netfs", target="/x", source={"host": "nas"}), "source.dir", "required for netfs"),
    (dict(name="p", type="netfs", target="/x", source={"host": "bad host!", "dir": "/e"}), "source.host",
     "not a host name"),
    (dict(name="p", type="netfs", target="/x", source={"host": "nas", "dir": "e"}), "source.dir", "absolute"),
    (dict(name="p", type="logical", source={"name": "-vg"}), "source.name", "not a volume group name"),
    (dict(name="p", type="logical", source={"devices": ["/dev/a", "/dev/a"]}), "source.devices", "twice"),
    (dict(name="p", type="logical", target="/dev/x", source={"dir": "/d"}), "source.dir", "not used by logical"),
    (dict(name="p", type="iscsi", source={"host": "san", "devices": ["not-an-iqn"]}), "source.devices",
     "not an iSCSI name"),
    (dict(name="p", type="iscsi", source={"host": "san", "devices": ["iqn.2024-01.x:y"], "initiator": "x"}),
     "source.initiator", "not an iSCSI name"),
    (dict(name="p", type="scsi", source={"adapter": "sda"}), "source.adapter", "not a SCSI host adapter"),
    (dict(name="p", type="rbd", source={"host": "m", "name": "rbd", "auth_username": "u"}),
     "source.auth_secret_uuid", "both"),
    (dict(name="p", type="rbd", source={"host": "m", "name": "rbd", "auth_username": "u", "auth_secret_uuid": "x"}),
     "source.auth_secret_uuid", "not a UUID"),
    (dict(name="p", type="rbd", target="/x", source={"host": "m", "name": "rbd"}), "target", "not used by rbd"),
    (dict(name="p", type="mpath", source={"devices": ["/dev/a"]}), "source.devices", "not used by mpath"),
]


@pytest.mark.parametrize(("fields", "field", "words"), BAD, ids=[f"{b[0]['type']}-{b[1]}" for b in BAD])
def test_each_wrong_field_is_refused_by_name(fields, field, words):
    with pytest.raises(ServiceError) as info:
        pool_model(req(**fields))
    assert info.value.field == field
    assert info.value.code == 422
    assert words in info.value.message


def test_unknown_and_mistyped_fields_fail_decoding():
    with pytest.raises(msgspec.ValidationError, match="sourc"):
        msgspec.convert({"name": "p", "type": "dir", "sourc": {}}, PoolCreate)
    with pytest.raises(msgspec.ValidationError, match=r"\$\.source\.port"):
        msgspec.convert({"name": "p", "type": "netfs", "source": {"port": 70000}}, PoolCreate)


def test_build_never_wipes_unless_asked():
    assert build_plan(req(**POOLS["dir"])) == (True, 0)
    assert build_plan(req(**POOLS["fs"])) == (True, 0)  # flags 0: make the directory, no mkfs
    assert build_plan(req(**POOLS["logical"])) == (True, libvirt.VIR_STORAGE_POOL_BUILD_NO_OVERWRITE)
    assert build_plan(req(**POOLS["logical-existing"])) == (False, 0)  # an existing VG is used as it is
    assert build_plan(req(**POOLS["disk"])) == (True, libvirt.VIR_STORAGE_POOL_BUILD_NO_OVERWRITE)
    assert build_plan(req(**POOLS["iscsi"])) == (False, 0)
    assert build_plan(req(**POOLS["fs"], overwrite=True)) == (True, libvirt.VIR_STORAGE_POOL_BUILD_OVERWRITE)
    assert build_plan(req(**POOLS["dir"], build=False)) == (False, 0)


@pytest.mark.parametrize(("fields", "field"), [
    (dict(POOLS["dir"], build=False, overwrite=True), "overwrite"),
    (dict(POOLS["logical-existing"], build=True), "source.devices"),
    (dict(name="d", type="fs", target="/x", source={"devices": ["/dev/a"]}, overwrite=True), "source.format"),
])
def test_build_requests_that_cannot_work_are_refused(fields, field):
    with pytest.raises(ServiceError) as info:
        build_plan(req(**fields))
    assert info.value.field == field


@pytest.mark.parametrize(("text", "expected"), [
    (1, 1), (4096, 4096), ("10G", 10 * 1024**3), ("10GiB", 10 * 1024**3), ("10GB", 10 * 1000**3),
    ("512M", 512 * 1024**2), ("1.5 T", int(1.5 * 1024**4)), (" 20k ", 20 * 1024), ("123", 123),
])
def test_sizes_read_in_libvirt_units(text, expected):
    assert parse_size(text, "capacity") == expected


@pytest.mark.parametrize(("text", "words"), [
    (0, "at least 1 byte"), (-5, "at least 1 byte"), ("ten", "not a size"), ("10 parsecs", "unknown unit"),
    ("1e3G", "not a size"), (True, "must be a size"), (2**64, "too large"),
])
def test_bad_sizes_name_the_field(text, words):
    with pytest.raises(ServiceError) as info:
        parse_size(text, "capacity")
    assert info.value.field == "capacity" and words in info.value.message


def test_volume_xml_per_pool_kind():
    qcow2 = volume_model("disk1.qcow2", "10G", "qcow2", "dir")
    check_golden(qcow2.to_xml(), "volume-qcow2-out.xml")
    validate(qcow2.to_xml(), RNG_VOL)
    raw = volume_model("disk.raw", "1G", "raw", "fs", preallocate=True)
    assert (raw.capacity, raw.allocation, raw.format) == (1024**3, 1024**3, "raw")
    lv = volume_model("lv1", "8M", "raw", "logical")
    assert (lv.capacity, lv.allocation, lv.format) == (8 * 1024**2, 8 * 1024**2, None)
    check_golden(lv.to_xml(), "volume-logical-out.xml")
    validate(lv.to_xml(), RNG_VOL)


@pytest.mark.parametrize(("args", "field", "words"), [
    (("a/b", "1G", "qcow2", "dir"), "name", "invalid"),
    (("a.b.c", "1G", "qcow2", "dir"), "name", "at most one '.'"),
    (("v", "0", "qcow2", "dir"), "capacity", "at least 1 byte"),
    (("v", "1G", "vmdk", "dir"), "format", "qcow2 or raw"),
    (("v", "1G", "qcow2", "logical"), "format", "raw volumes only"),
    (("v", "1G", "qcow2", "dir", True), "preallocate", "only raw"),
])
def test_volume_requests_refused_by_field(args, field, words):
    with pytest.raises(ServiceError) as info:
        volume_model(*args)
    assert info.value.field == field and words in info.value.message


def test_which_volumes_must_fit_the_free_space_now():
    assert not needs_full_space("qcow2", "dir", False)  # thin: grows as written
    assert needs_full_space("raw", "dir", True)
    assert needs_full_space("raw", "logical", False)
    assert needs_full_space("raw", "disk", False)
