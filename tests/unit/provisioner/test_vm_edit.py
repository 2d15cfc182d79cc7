"""Pure parts of changing a VM: snapshot support checks, device target names, request shapes."""

from __future__ import annotations

import msgspec
import pytest

from flint.contracts.common import ServiceError
from flint.contracts.vm_edit import DiskAttach, SnapshotCreate, VMUpdate
from flint.xml import Disk, Domain
from services.provisioner.build_names import next_target
from services.provisioner.snapshots import check_supported


class FakeDom:
    def __init__(self, model: Domain):
        self.xml = model.to_xml()

    def XMLDesc(self, flags=0):  # noqa: N802 - libvirt's name
        return self.xml

    def name(self):
        return "vm1"


def _domain(fmt: str = "qcow2", uefi: bool = False) -> Domain:
    dom = Domain(type="qemu", name="vm1", memory_mib=64, vcpus=1, os_type="hvm")
    if uefi:
        dom.use_uefi(loader="/usr/share/OVMF/OVMF_CODE.fd")
        dom.nvram = "/var/lib/libvirt/qemu/nvram/vm1_VARS.fd"
    dom.disks.append(Disk(device="disk", driver_name="qemu", driver_type=fmt, target_dev="vda",
                          target_bus="virtio").set_source(file="/tmp/x"))
    dom.disks.append(Disk(device="cdrom", driver_name="qemu", driver_type="raw", target_dev="sda",
                          target_bus="sata", readonly=True).set_source(file="/tmp/x.iso"))
    return dom


def test_qcow2_disks_with_a_raw_cdrom_can_be_snapshotted():
    check_supported(FakeDom(_domain()))


def test_a_raw_disk_is_refused():
    with pytest.raises(ServiceError) as err:
        check_supported(FakeDom(_domain("raw")))
    assert err.value.code == 422 and "vda" in err.value.message and "qcow2" in err.value.message


def test_uefi_is_refused():
    with pytest.raises(ServiceError) as err:
        check_supported(FakeDom(_domain(uefi=True)))
    assert err.value.code == 422 and "UEFI" in err.value.message


def test_next_target_skips_taken_names():
    assert next_target("virtio", ["vda", "sda"]) == "vdb"
    assert next_target("sata", ["vda", "sda", "sdb"]) == "sdc"
    assert next_target("virtio", []) == "vda"


@pytest.mark.parametrize("cls,body,field", [
    (VMUpdate, {"vcpus": 0}, "vcpus"),
    (VMUpdate, {"memory_mib": 8}, "memory_mib"),
    (SnapshotCreate, {"name": "a/b"}, "name"),
    (DiskAttach, {"size_gib": 0}, "size_gib"),
    (DiskAttach, {"bus": "floppy"}, "bus"),
])
def test_shapes_are_checked_when_decoding(cls, body, field):
    with pytest.raises(msgspec.ValidationError, match=field):
        msgspec.convert(body, cls)
