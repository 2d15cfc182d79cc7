"""Storage pools and volumes: libvirt's XML read in any unit, built from scratch, edited in place."""

from __future__ import annotations

import pytest

from flint.xml import StoragePool, StorageVolume


@pytest.mark.parametrize("name", ["pool-dir-in.xml", "pool-logical-in.xml", "pool-netfs-in.xml",
                                  "volume-overlay-in.xml"])
def test_round_trip_keeps_everything(golden, name):
    source = golden.read(name)
    model = (StorageVolume if name.startswith("volume") else StoragePool).parse(source)
    assert golden.canonical(model.to_xml()) == golden.canonical(source)


def test_read_dir_pool_from_libvirt(golden):
    pool = StoragePool.parse(golden.read("pool-dir-in.xml"))
    assert (pool.type, pool.name, pool.target_path) == ("dir", "images", "/var/lib/libvirt/images")
    assert (pool.capacity, pool.allocation, pool.available) == (270553174016, 24894496768, 245658677248)
    assert (pool.target_mode, pool.target_owner, pool.target_group) == ("0755", 0, 0)
    assert (pool.source_devices, pool.source_hosts, pool.source_dir, pool.source_name) == ([], [], None, None)


def test_read_logical_pool(golden):
    pool = StoragePool.parse(golden.read("pool-logical-in.xml"))
    assert pool.source_devices == ["/dev/sdb1", "/dev/sdc1"]
    assert (pool.source_name, pool.source_format, pool.target_path) == ("vg0", "lvm2", "/dev/vg0")


def test_read_netfs_pool_sizes_in_other_units(golden):
    pool = StoragePool.parse(golden.read("pool-netfs-in.xml"))
    assert pool.capacity == 100 * 1024**3
    assert pool.allocation == 1024**3
    assert pool.available == 106300440576
    assert (pool.source_hosts, pool.source_host_port, pool.source_dir, pool.source_format) == (
        ["nas.example.lan"], 2049, "/exports/images", "nfs")
    assert (pool.target_owner, pool.target_group) == (107, 107)


def test_edit_netfs_pool(golden):
    pool = StoragePool.parse(golden.read("pool-netfs-in.xml"))
    pool.source_hosts = ["nas2.example.lan"]
    pool.source_dir = "/exports/vm"
    pool.target_mode = "0711"
    text = golden.check(pool, "pool-netfs-edit-out.xml")
    golden.validate(text, "storagepool")
    assert "<protocol ver" in text


def test_build_pools(golden):
    pools = {
        "pool-build-dir-out.xml": StoragePool(type="dir", name="images", target_path="/var/lib/libvirt/images",
                                              target_mode="0711"),
        "pool-build-logical-out.xml": StoragePool(type="logical", name="vg0", source_name="vg0",
                                                  source_devices=["/dev/sdb1", "/dev/sdc1"],
                                                  source_format="lvm2", target_path="/dev/vg0"),
        "pool-build-netfs-out.xml": StoragePool(type="netfs", name="nfs-images", source_hosts=["nas.example.lan"],
                                                source_dir="/exports/images", source_format="nfs",
                                                target_path="/var/lib/libvirt/nfs-images"),
        "pool-build-iscsi-out.xml": StoragePool(type="iscsi", name="san", source_hosts=["san.example.lan"],
                                                source_devices=["iqn.2024-01.lan.example:storage.lun1"],
                                                target_path="/dev/disk/by-path"),
    }
    for name, pool in pools.items():
        golden.validate(golden.check(pool, name), "storagepool")


def test_pool_name_is_validated():
    with pytest.raises(ValueError, match="pool name '../x' is invalid"):
        StoragePool(name="../x")


def test_read_real_overlay_volume(golden):
    vol = StorageVolume.parse(golden.read("volume-overlay-in.xml"))
    assert (vol.type, vol.name, vol.format) == ("file", "web01-root.qcow2", "qcow2")
    assert vol.key == vol.path == "/var/lib/libvirt/images/web01-root.qcow2"
    assert (vol.capacity, vol.allocation, vol.physical) == (10 * 1024**3, 200704, 196768)
    assert (vol.backing_path, vol.backing_format) == ("/var/lib/libvirt/images/debian-12.qcow2", "qcow2")
    assert (vol.target_mode, vol.target_owner) == ("0600", 0)


def test_build_overlay_volume(golden):
    vol = StorageVolume.qcow2_overlay("web01-root.qcow2", 20 * 1024**3, "/var/lib/libvirt/images/debian-12.qcow2")
    golden.validate(golden.check(vol, "volume-build-overlay-out.xml"), "storagevol")


def test_build_raw_volume_and_resize(golden):
    vol = StorageVolume(name="data.raw", capacity=1024**3, allocation=0, format="raw")
    vol.capacity = 2 * 1024**3
    golden.validate(golden.check(vol, "volume-build-raw-out.xml"), "storagevol")
    assert StorageVolume.parse("<volume><capacity unit='M'>5</capacity></volume>").capacity == 5 * 1024**2


def test_volume_name_is_validated():
    with pytest.raises(ValueError, match="volume name 'a.b.c' may contain at most one"):
        StorageVolume(name="a.b.c")
