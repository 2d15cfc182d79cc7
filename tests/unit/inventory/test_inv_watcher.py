"""The watcher with fakes: callbacks only enqueue; the consumer coalesces, debounces and writes."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace

import libvirt
import msgspec
import pytest

from flint.contracts.inventory import VM, Nic
from services.inventory.store import InventoryWriter
from services.inventory.watcher import Change, Watcher
from tests.unit.inventory.fakes import FakeEvents, FakeKV, FakeVirt

STARTED, STOPPED, RESUMED, SHUTDOWN, UNDEFINED = (
    libvirt.VIR_DOMAIN_EVENT_STARTED, libvirt.VIR_DOMAIN_EVENT_STOPPED, libvirt.VIR_DOMAIN_EVENT_RESUMED,
    libvirt.VIR_DOMAIN_EVENT_SHUTDOWN, libvirt.VIR_DOMAIN_EVENT_UNDEFINED,
)
CRASHED, DESTROYED = libvirt.VIR_DOMAIN_EVENT_STOPPED_CRASHED, libvirt.VIR_DOMAIN_EVENT_STOPPED_DESTROYED


class OnlyUUID:
    """A virDomain stand-in that fails the test if a callback does anything but read its UUID."""

    def __init__(self, uuid):
        self.uuid = uuid

    def UUIDString(self):  # noqa: N802 - libvirt's name
        return self.uuid

    def __getattr__(self, name):
        raise AssertionError(f"event callback called dom.{name}(): callbacks must only enqueue")


class FakeBatch(dict):
    """reader.DomainBatch's surface: uuid -> document (None: gone)."""

    def gone(self, uuid):
        return self.get(uuid) is None


class FakeReader:
    """Domains by uuid; a domain in `block` makes its read wait until the event is set (a destroy), and
    every batch call too (libvirt's filtered domain lists lock each domain of the host in turn)."""

    addresses_supported = True

    def __init__(self, docs):
        self.docs = docs
        self.reads: list[str] = []  # documents built, batched or not
        self.batches: list[list[str]] = []  # the UUIDs of each batch call
        self.handles: list[dict] = []  # the handles each batch call was given
        self.forgotten: list[str] = []
        self.block: dict[str, threading.Event] = {}
        self.gate: threading.Event | None = None  # when set: batch calls wait for it

    def read_domain(self, _conn, uuid, _handle=None):
        self.reads.append(uuid)
        if uuid in self.block:
            self.block[uuid].wait(5)
        return self.docs.get(uuid)

    def read_domain_facts(self, _conn, uuids, handles):
        self.batches.append(list(uuids))
        self.handles.append(dict(handles))
        if self.gate is not None:
            self.gate.wait(5)
        for held in list(self.block.values()):
            held.wait(5)
        return FakeBatch({uuid: self.docs.get(uuid) for uuid in uuids})  # the truth when the batch was read

    def build_domain(self, conn, uuid, facts, handle=None):
        if facts is None:
            return self.read_domain(conn, uuid, handle)
        self.reads.append(uuid)
        return facts[uuid]

    def forget_addresses(self, uuid=None):
        self.forgotten.append(uuid)


def vm(uuid, state="running", nics=()):
    return VM(id=uuid, name=uuid, host="h1", state=state, nics=list(nics))


def make(docs):
    kv, events = FakeKV(), FakeEvents()
    reader = FakeReader(docs)
    writer = InventoryWriter(kv, events, "h1")
    watcher = Watcher(SimpleNamespace(host="h1", virt=FakeVirt()), reader, writer)
    return watcher, reader, kv, events


def state(kv, uuid):
    return msgspec.json.decode(kv.data[f"h1.vm.{uuid}"])["state"] if f"h1.vm.{uuid}" in kv.data else None


def test_callbacks_only_enqueue():
    w, _, _, _ = make({})
    w._on_lifecycle(None, OnlyUUID("a"), STOPPED, DESTROYED, None)
    w._on_reboot(None, OnlyUUID("a"), None)
    w._on_domain_changed(None, OnlyUUID("a"), "net0", None)
    w._on_domain_changed(None, OnlyUUID("a"), 2, "https://example/ns", None)
    w._on_agent(None, OnlyUUID("a"), 1, 2, None)
    assert w.queue.qsize() == 5
    assert w.queue.get_nowait() == Change("domain", "a", STOPPED, DESTROYED)


async def test_several_events_of_one_domain_become_one_read():
    w, reader, kv, events = make({"a": vm("a")})
    w.process([Change("domain", "a", RESUMED), Change("domain", "a", STARTED), Change("domain", "a")], 0.0)
    await w.idle()
    assert reader.reads == ["a"]
    assert state(kv, "a") == "running"
    assert events.sent == [("domain", "a", "updated")]


async def test_a_held_stop_is_not_read_until_start_or_expiry():
    w, reader, kv, _ = make({"a": vm("a", "shutoff")})
    w.process([Change("domain", "a", STOPPED, CRASHED)], 0.0)
    w.process([Change("domain", "a")], 0.5)  # a device event during the hold: still not read
    await w.idle()
    assert reader.reads == [] and kv.data == {}
    w.process([], 3.1)  # the hold expired and nothing restarted it: now it shows
    await w.idle()
    assert reader.reads == ["a"] and state(kv, "a") == "shutoff"


async def test_a_destroyed_domain_is_read_at_once_and_shutdown_events_are_not_read():
    w, reader, _, _ = make({"a": vm("a", "shutoff")})
    w.process([Change("domain", "a", SHUTDOWN, 0)], 0.0)  # libvirt holds the domain until it stops
    await w.idle()
    assert reader.reads == []
    w.process([Change("domain", "a", STOPPED, DESTROYED)], 0.0)
    await w.idle()
    assert reader.reads == ["a"]
    assert reader.forgotten == ["a"]  # its addresses are stale now


async def test_an_undefined_domain_is_deleted_from_kv():
    w, _, kv, events = make({"a": vm("a")})
    w.process([Change("domain", "a", STARTED)], 0.0)
    await w.idle()
    del w.reader.docs["a"]
    w.process([Change("domain", "a", UNDEFINED), Change("domain", "never-known", UNDEFINED)], 0.0)
    await w.idle()
    assert kv.data == {}
    assert events.sent == [("domain", "a", "updated"), ("domain", "a", "deleted")]


async def test_a_blocked_domain_does_not_hold_back_the_others():
    w, reader, kv, _ = make({"slow": vm("slow", "shutoff"), "fast": vm("fast")})
    reader.block["slow"] = threading.Event()
    w.process([Change("domain", "slow", STOPPED, DESTROYED)], 0.0)
    await asyncio.sleep(0.05)
    w.process([Change("domain", "fast", STARTED)], 0.0)
    for _ in range(100):
        if state(kv, "fast"):
            break
        await asyncio.sleep(0.01)
    assert state(kv, "fast") == "running" and state(kv, "slow") is None
    # Another event for the blocked domain while its read is in flight: read once more afterwards.
    w.process([Change("domain", "slow")], 0.0)
    reader.docs["slow"] = vm("slow", "shutoff")
    reader.block["slow"].set()
    await w.idle()
    assert reader.reads.count("slow") == 2 and state(kv, "slow") == "shutoff"


async def test_an_older_read_never_overwrites_a_newer_one():
    w, _, kv, _ = make({})
    old_mark = w.writer.begin_read()  # e.g. a resync that began reading first ...
    new_mark = w.writer.begin_read()  # ... and an event read that began after it
    await w.writer.apply("domain", "h1.vm.a", "a", vm("a", "paused"), new_mark)
    assert not await w.writer.apply("domain", "h1.vm.a", "a", vm("a", "running"), old_mark)
    assert state(kv, "a") == "paused"
    # "Gone" counts as news too: an older read may not bring the domain back.
    gone = w.writer.begin_read()
    await w.writer.apply("domain", "h1.vm.a", "a", None, gone)
    assert not await w.writer.apply("domain", "h1.vm.a", "a", vm("a"), new_mark)
    assert kv.data == {}


async def test_running_vms_without_addresses_are_asked_again_for_a_while(monkeypatch):
    import services.inventory.watcher as watcher_mod

    w, reader, _, _ = make({"a": vm("a", nics=[Nic(mac="52:54:00:00:00:01")])})
    clock = [1000.0]
    monkeypatch.setattr(watcher_mod.time, "monotonic", lambda: clock[0])
    w.process([Change("domain", "a", STARTED)], 1000.0)
    await w.idle()
    assert "a" in w.addressless
    w.process([], 1011.0)
    await w.idle()
    assert reader.reads == ["a", "a"]
    w.process([], 1000.0 + watcher_mod.ADDRESS_POLL_FOR_S + 20)
    assert "a" not in w.addressless  # gave up: an isolated NIC may never get one


async def test_consumer_loop_publishes_within_the_window():
    w, _, kv, _ = make({"a": vm("a")})
    task = asyncio.create_task(w.run())
    try:
        w._on_lifecycle(None, OnlyUUID("a"), STARTED, 0, None)
        for _ in range(100):
            if state(kv, "a"):
                break
            await asyncio.sleep(0.005)
        assert state(kv, "a") == "running"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


# ---- batches ---------------------------------------------------------------------------------------------


def test_take_removes_the_first_members_in_order():
    from services.inventory.watcher import take

    pending = dict.fromkeys("abcde")
    assert take(pending, 2) == ["a", "b"] and list(pending) == ["c", "d", "e"]
    assert take(pending, 10) == ["c", "d", "e"] and pending == {}
    assert take(dict.fromkeys("xy"), 0) == ["x"]  # a batch is never empty


async def test_changed_domains_are_read_in_batches_of_at_most_batch_max():
    from services.inventory.watcher import BATCH_MAX

    uuids = [f"d{i:03d}" for i in range(2 * BATCH_MAX + 2)]
    w, reader, kv, events = make({u: vm(u) for u in uuids})
    w.process([Change("domain", u, STARTED) for u in uuids], 0.0)
    await w.idle()
    assert [len(b) for b in reader.batches] == [BATCH_MAX, BATCH_MAX, 2]
    assert [u for b in reader.batches for u in b] == uuids  # in the order the changes came
    assert sorted(reader.reads) == uuids and all(state(kv, u) == "running" for u in uuids)
    assert len(events.sent) == len(uuids)


async def test_changes_during_a_batch_call_gather_for_the_next_batch():
    w, reader, kv, _ = make({u: vm(u) for u in "abcd"})
    reader.gate = threading.Event()
    w.process([Change("domain", "a", STARTED)], 0.0)  # a single change is read at once, alone
    await asyncio.sleep(0.02)
    w.process([Change("domain", "b", STARTED), Change("domain", "c")], 0.0)
    w.process([Change("domain", "d"), Change("domain", "b")], 0.0)
    assert reader.batches == [["a"]]
    reader.gate.set()
    await w.idle()
    assert reader.batches == [["a"], ["b", "c", "d"]]
    assert all(state(kv, u) == "running" for u in "abcd")


async def test_a_late_batch_call_does_not_hold_back_its_domains_nor_later_ones(monkeypatch):
    import services.inventory.watcher as watcher_mod

    monkeypatch.setattr(watcher_mod, "BATCH_WAIT_S", 0.05)
    # "held" is being destroyed: libvirt blocks every call that waits on it, the batch calls included.
    w, reader, kv, _ = make({"a": vm("a"), "b": vm("b"), "held": vm("held", "shutoff")})
    reader.block["held"] = threading.Event()
    w.process([Change("domain", "a", STARTED)], 0.0)
    for _ in range(100):
        if state(kv, "a"):
            break
        await asyncio.sleep(0.01)
    assert state(kv, "a") == "running"  # read on its own once its batch was late
    w.process([Change("domain", "b", STARTED)], 0.0)  # while the batch call is still stuck
    for _ in range(100):
        if state(kv, "b"):
            break
        await asyncio.sleep(0.01)
    assert state(kv, "b") == "running"
    assert reader.batches == [["a"]]  # no second batch call behind the stuck one
    reader.block["held"].set()
    for _ in range(100):
        if not w._batches:
            break
        await asyncio.sleep(0.01)
    w.process([Change("domain", "a")], 0.0)  # the stuck call answered: batches again
    await w.idle()
    assert reader.batches == [["a"], ["a"]]


class Handle(OnlyUUID):
    """A virDomain from an event callback."""


async def test_callback_handles_reach_the_batch_call_and_are_dropped_with_their_domain():
    w, reader, kv, _ = make({"a": vm("a")})
    dom = Handle("a")
    w._on_lifecycle(None, dom, STARTED, 0, None)
    w.process([w.queue.get_nowait()], 0.0)
    await w.idle()
    assert reader.handles == [{"a": dom}] and state(kv, "a") == "running"
    del reader.docs["a"]
    w._on_lifecycle(None, dom, UNDEFINED, 0, None)
    w.process([w.queue.get_nowait()], 0.0)
    await w.idle()
    assert kv.data == {} and w._handles == {}
    w.register(SimpleNamespace(domainEventRegisterAny=lambda *a: 1, storagePoolEventRegisterAny=lambda *a: 1,
                               networkEventRegisterAny=lambda *a: 1))
    assert w._handles == {}
