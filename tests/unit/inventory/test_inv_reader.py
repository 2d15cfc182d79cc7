"""reader.py's address lookup with a fake virDomain: lease, then agent, then ARP, whichever answers."""

from __future__ import annotations

from pathlib import Path

import libvirt

from flint.xml.domain import Domain
from services.inventory.reader import Reader

LEASE, AGENT, ARP = (
    libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE,
    libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT,
    libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP,
)
XML = (Path(__file__).parent / "data" / "domain-live.xml").read_text()  # two NICs, agent connected


def iface(mac, addr):
    return {"hwaddr": mac, "addrs": [{"type": 0, "addr": addr, "prefix": 24}]}


class FakeDom:
    def __init__(self, answers):
        self.answers = answers  # source -> dict, or an exception to raise
        self.asked: list[int] = []

    def UUIDString(self):  # noqa: N802 - libvirt's name
        return "u1"

    def interfaceAddresses(self, source, flags=0):  # noqa: N802 - libvirt's name
        self.asked.append(source)
        answer = self.answers.get(source, {})
        if isinstance(answer, Exception):
            raise answer
        return answer


def error():
    return libvirt.libvirtError("no")


def test_each_nic_takes_the_first_source_that_knows_it():
    dom = FakeDom({
        LEASE: {"vnet2": iface("52:54:00:ab:cd:01", "192.168.122.10")},
        AGENT: error(),  # e.g. the agent did not answer in time
        ARP: {"vnet3": iface("52:54:00:ab:cd:02", "10.1.1.7")},
    })
    found = Reader("h", "qemu:///system")._addresses_of(dom, Domain.parse(XML), guest_runs=True)
    assert found == {"52:54:00:ab:cd:01": ["192.168.122.10/24"], "52:54:00:ab:cd:02": ["10.1.1.7/24"]}
    assert dom.asked == [LEASE, AGENT, ARP]


def test_stops_asking_once_every_nic_has_an_address_and_caches_the_answer():
    dom = FakeDom({LEASE: {"a": iface("52:54:00:ab:cd:01", "10.0.0.1"), "b": iface("52:54:00:ab:cd:02", "10.0.0.2")}})
    reader = Reader("h", "qemu:///system")
    first = reader._addresses_of(dom, Domain.parse(XML), guest_runs=True)
    again = reader._addresses_of(dom, Domain.parse(XML), guest_runs=True)
    assert first == again and dom.asked == [LEASE]
    reader.forget_addresses("u1")
    reader._addresses_of(dom, Domain.parse(XML), guest_runs=True)
    assert dom.asked == [LEASE, LEASE]


def test_the_agent_is_not_asked_when_disconnected_or_paused():
    xml = Domain.parse(XML)
    dom = FakeDom({})
    Reader("h", "qemu:///system")._addresses_of(dom, xml, guest_runs=False)
    assert dom.asked == [LEASE, ARP]
    xml.channels[0].target_state = "disconnected"
    dom = FakeDom({})
    Reader("h", "qemu:///system")._addresses_of(dom, xml, guest_runs=True)
    assert dom.asked == [LEASE, ARP]


def test_test_driver_is_never_asked():
    # libvirt 9.0's test driver segfaults in interfaceAddresses for a NIC on a network without <ip>.
    assert not Reader("h", "test:///tmp/node.xml").addresses_supported
    assert Reader("h", "qemu+ssh://root@10.0.0.2/system").remote
