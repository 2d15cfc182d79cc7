"""VM, pool and network documents built from checked-in XML and the facts reader.py would gather."""

from __future__ import annotations

import os
from pathlib import Path

import libvirt

from flint.xml.domain import Domain
from flint.xml.network import Network as NetworkXml
from flint.xml.pool import StoragePool
from services.inventory.documents import (
    DiskFacts,
    DomainFacts,
    addresses_by_mac,
    guest_agent_connected,
    network_document,
    pool_document,
    reason_name,
    state_name,
    vm_document,
)

DATA = Path(__file__).parent / "data"


def live_domain() -> Domain:
    return Domain.parse((DATA / "domain-live.xml").read_text())


def facts(**overrides) -> DomainFacts:
    base = dict(
        state=libvirt.VIR_DOMAIN_RUNNING,
        reason=libvirt.VIR_DOMAIN_RUNNING_BOOTED,
        autostart=True,
        persistent=True,
        disks={
            "vda": DiskFacts("default", "web1.qcow2", 20 * 2**30, 3 * 2**30),
            "vdb": DiskFacts(None, None, 4 * 2**30, 2**30),
        },
        addresses={"52:54:00:ab:cd:01": ["192.168.122.10/24"]},
    )
    base.update(overrides)
    return DomainFacts(**base)


def test_vm_document_holds_what_the_ui_needs():
    vm = vm_document("h1", live_domain(), facts(), now=123.0)
    assert (vm.id, vm.name, vm.host) == ("1b4e28ba-2fa1-11d2-883f-0016d3cca427", "web1", "h1")
    assert (vm.state, vm.state_reason) == ("running", "booted")
    assert (vm.vcpus, vm.memory_mib, vm.autostart, vm.persistent) == (2, 1024, True, True)
    assert vm.firmware == "uefi"
    assert vm.description == "front end"
    assert vm.updated_at == 123.0

    vda, vdb, sda = vm.disks
    assert (vda.target, vda.bus, vda.device, vda.format) == ("vda", "virtio", "disk", "qcow2")
    assert (vda.pool, vda.volume, vda.path) == ("default", "web1.qcow2", "/var/lib/libvirt/images/web1.qcow2")
    assert (vda.capacity, vda.allocation) == (20 * 2**30, 3 * 2**30)
    # A volume disk names its pool/volume in XML: that wins over whatever a lookup found.
    assert (vdb.pool, vdb.volume, vdb.path, vdb.capacity) == ("data", "web1-data.img", None, 4 * 2**30)
    assert (sda.device, sda.path, sda.capacity) == ("cdrom", None, None)

    nic1, nic2 = vm.nics
    assert nic1.mac == "52:54:00:ab:cd:01"  # lower-cased, as libvirt's address answers are
    assert (nic1.type, nic1.network, nic1.bridge, nic1.model) == ("network", "default", "virbr0", "virtio")
    assert nic1.addresses == ["192.168.122.10/24"]
    assert (nic2.type, nic2.bridge, nic2.model, nic2.target_dev, nic2.addresses) == (
        "bridge", "br0", "e1000e", "vnet3", []
    )
    assert [(g.type, g.port, g.listen) for g in vm.graphics] == [("vnc", 5901, "127.0.0.1")]


def test_shut_off_vm_has_no_graphics_port_and_names_its_reason():
    dom = live_domain()
    dom.graphics[0].port = -1
    vm = vm_document("h1", dom, facts(state=libvirt.VIR_DOMAIN_SHUTOFF, reason=2, addresses={}), now=0)
    assert (vm.state, vm.state_reason) == ("shutoff", "destroyed")
    assert vm.graphics[0].port is None
    assert all(nic.addresses == [] for nic in vm.nics)


def test_state_and_reason_names_follow_libvirt():
    assert [state_name(s) for s in range(8)] == [
        "nostate", "running", "blocked", "paused", "shutdown", "shutoff", "crashed", "pmsuspended"
    ]
    assert reason_name(libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN) == "shutdown"
    assert reason_name(libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_USER) == "user"
    assert reason_name(libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_IOERROR) == "ioerror"
    assert reason_name(libvirt.VIR_DOMAIN_CRASHED, libvirt.VIR_DOMAIN_CRASHED_PANICKED) == "panicked"
    assert reason_name(libvirt.VIR_DOMAIN_RUNNING, 99) == "unknown"
    assert state_name(42) == "nostate"


def test_guest_agent_connected_reads_the_live_channel_state():
    dom = live_domain()
    assert guest_agent_connected(dom)
    dom.channels[0].target_state = "disconnected"
    assert not guest_agent_connected(dom)


def test_addresses_by_mac_skips_loopback_and_keeps_prefixes():
    answer = {
        "lo": {"hwaddr": "00:00:00:00:00:00", "addrs": [{"type": 0, "addr": "127.0.0.1", "prefix": 8}]},
        "eth0": {
            "hwaddr": "52:54:00:AB:CD:01",
            "addrs": [
                {"type": 0, "addr": "10.0.0.5", "prefix": 24},
                {"type": 1, "addr": "fe80::5054:ff:feab:cd01", "prefix": 64},
                {"type": 0, "addr": "10.0.0.5", "prefix": 24},
            ],
        },
        "vnet9": {"hwaddr": "52:54:00:ab:cd:02", "addrs": [{"type": 0, "addr": "192.168.1.7", "prefix": None}]},
    }
    assert addresses_by_mac(answer) == {
        "52:54:00:ab:cd:01": ["10.0.0.5/24", "fe80::5054:ff:feab:cd01/64"],
        "52:54:00:ab:cd:02": ["192.168.1.7"],
    }
    assert addresses_by_mac({}) == {}


POOL_XML = """<pool type='dir'><name>images</name><uuid>35bb2ad9-388a-cdfe-461a-b8907f6e53fe</uuid>
<capacity unit='bytes'>0</capacity><target><path>/srv/images</path></target></pool>"""


def fake_stat(devices):
    def stat(path):
        if path not in devices:
            raise FileNotFoundError(path)
        return os.stat_result((0, 0, devices[path], 0, 0, 0, 0, 0, 0, 0))

    return stat


def test_pool_document_groups_by_the_filesystem_under_its_target():
    stat = fake_stat({"/srv/images": 7, "/srv": 7, "/": 1})
    pool = pool_document("h1", StoragePool.parse(POOL_XML), [2, 100, 30, 70], autostart=True, persistent=True,
                         volumes=3, remote=False, stat=stat)
    assert (pool.name, pool.type, pool.state, pool.active, pool.target) == (
        "images", "dir", "running", True, "/srv/images"
    )
    assert (pool.capacity, pool.allocation, pool.available, pool.volumes) == (100, 30, 70, 3)
    assert (pool.group_id, pool.group_label) == ("fs:7", "/srv")


def test_a_filesystem_pool_shows_its_own_volumes_not_the_whole_filesystem():
    # libvirt reports the filesystem's use as every dir pool's allocation; the pool's share is its volumes.
    pool = pool_document("h1", StoragePool.parse(POOL_XML), [2, 100, 60, 40], autostart=True, persistent=True,
                         volumes=2, volumes_allocation=7, remote=True)
    assert (pool.capacity, pool.allocation, pool.available) == (100, 7, 40)
    lvm = StoragePool.parse("<pool type='logical'><name>vg</name><source><name>vg0</name></source></pool>")
    pool = pool_document("h1", lvm, [2, 100, 60, 40], autostart=True, persistent=True, volumes=2,
                         volumes_allocation=7, remote=False)
    assert (pool.allocation, pool.group_id) == (60, "vg:vg0")


def test_inactive_pool_reports_no_figures():
    pool = pool_document("h1", StoragePool.parse(POOL_XML), [0, 0, 0, 0], autostart=False, persistent=True,
                         volumes=0, remote=True)
    assert (pool.state, pool.active, pool.capacity, pool.available) == ("inactive", False, 0, 0)
    assert pool.group_id == "libvirt:0:0"


def test_network_documents():
    isolated = NetworkXml.parse("<network><name>iso</name><bridge name='virbr9'/></network>")
    doc = network_document("h1", isolated, active=True, autostart=False, persistent=True)
    assert (doc.forward_mode, doc.mode, doc.bridge, doc.ip_address, doc.prefix, doc.dhcp) == (
        "isolated", "isolated", "virbr9", None, None, False
    )
    nat = NetworkXml.parse(
        "<network><name>default</name><forward mode='nat'/><bridge name='virbr0'/>"
        "<ip address='192.168.122.1' netmask='255.255.255.0'><dhcp>"
        "<range start='192.168.122.2' end='192.168.122.254'/></dhcp></ip></network>"
    )
    doc = network_document("h1", nat, active=False, autostart=True, persistent=True)
    assert (doc.forward_mode, doc.mode, doc.ip_address, doc.prefix, doc.dhcp, doc.active) == (
        "nat", "nat", "192.168.122.1", 24, True, False
    )
