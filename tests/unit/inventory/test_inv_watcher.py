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


class FakeReader:
    """Domains by uuid; a domain in `block` makes its read wait until the event is set (a destroy)."""

    addresses_supported = True

    def __init__(self, docs):
        self.docs = docs
        self.reads: list[str] = []
        self.forgotten: list[str] = []
        self.block: dict[str, threading.Event] = {}

    def read_domain(self, _conn, uuid):
        self.reads.append(uuid)
        if uuid in self.block:
            self.block[uuid].wait(5)
        return self.docs.get(uuid)

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
