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


# ---- batches, against libvirt's test driver (in-process, no daemon) --------------------------------------


def _define(conn, name):
    return conn.defineXML(
        f"<domain type='test'><name>{name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>"
        "<os><type arch='x86_64'>hvm</type></os></domain>"
    )


def _same(doc):
    import msgspec

    return None if doc is None else msgspec.structs.replace(doc, updated_at=0.0)


class ForeignHandle:
    """A virDomain of another connection: only its connection may be asked for."""

    def __init__(self, conn):
        self.conn = conn

    def connect(self):
        return self.conn

    def __getattr__(self, name):
        raise AssertionError(f"a handle of another connection was used: {name}")


def test_a_batch_reads_what_single_reads_read():
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    conn = libvirt.open("test:///default")  # shared by every test:///default connection of this process
    try:
        running = conn.lookupByName("test")
        kept = _define(conn, "kept")
        kept.setAutostart(1)
        gone = _define(conn, "gone")
        gone_uuid = gone.UUIDString()
        gone.undefine()
        looked_up = _define(conn, "looked-up")
        flying = conn.createXML(  # transient, running
            "<domain type='test'><name>flying</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>"
            "<os><type arch='x86_64'>hvm</type></os></domain>"
        )
        uuids = [running.UUIDString(), kept.UUIDString(), gone_uuid, looked_up.UUIDString(), flying.UUIDString()]
        handles = {kept.UUIDString(): kept, gone_uuid: gone, looked_up.UUIDString(): ForeignHandle(object())}
        reader = Reader("h", "test:///default")
        single = {u: _same(reader.read_domain(conn, u)) for u in uuids}
        assert single[kept.UUIDString()].autostart and single[running.UUIDString()].state == "running"
        assert single[gone_uuid] is None and single[looked_up.UUIDString()].name == "looked-up"
        assert not single[flying.UUIDString()].persistent and single[kept.UUIDString()].persistent
        batch = reader.read_domain_facts(conn, uuids, handles)
        assert set(batch.doms) == set(uuids)  # the gone one by its handle ...
        assert set(batch.stats) == set(uuids) - {gone_uuid}  # ... but it has no stats
        assert batch.transient == {flying.UUIDString()}
        assert {u: _same(reader.build_domain(conn, u, batch)) for u in uuids} == single
        # Without a batch (it was late): a read of its own, with the handle or a lookup.
        assert _same(reader.build_domain(conn, kept.UUIDString(), None, kept)) == single[kept.UUIDString()]
        assert reader.build_domain(conn, gone_uuid, None, gone) is None
    finally:
        for name in ("kept", "looked-up"):
            conn.lookupByName(name).undefine()
        conn.lookupByName("flying").destroy()
        conn.close()
