"""Resync and the KV writer with a fake KV: quiet when unchanged, drift repaired, gone keys removed,
and a resync's older read never overwrites what event handling read after it."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import msgspec

from flint import bus
from flint.contracts.inventory import VM, Pool
from services.inventory.debounce import StopDebouncer
from services.inventory.reader import Snapshot
from services.inventory.resync import Resyncer
from services.inventory.store import InventoryWriter
from tests.unit.inventory.fakes import FakeEvents, FakeKV, FakeVirt


class FakeReader:
    def __init__(self, snap):
        self.snap = snap

    def read_all(self, _conn):
        return self.snap


def vm(uuid, state="running", updated_at=1.0):
    return VM(id=uuid, name=f"vm-{uuid}", host="h1", state=state, updated_at=updated_at)


def build(snap, hook=None):
    kv, events = FakeKV(), FakeEvents()
    writer = InventoryWriter(kv, events, "h1")
    watcher = SimpleNamespace(debouncer=StopDebouncer(), addressless={}, note_addresses=lambda doc: None)
    ctx = SimpleNamespace(host="h1", virt=FakeVirt(hook))
    return Resyncer(ctx, FakeReader(snap), writer, watcher), kv, events, writer


async def test_first_resync_writes_everything_then_resyncs_are_quiet():
    snap = Snapshot(vms=[vm("a"), vm("b")], pools=[Pool(host="h1", name="p")])
    resyncer, kv, events, _ = build(snap)
    first = await resyncer.resync()
    assert (first.domains, first.pools, first.updated, first.deleted) == (2, 1, 3, 0)
    assert sorted(kv.data) == ["h1.pool.p", "h1.vm.a", "h1.vm.b"]
    events.sent.clear()
    # A new read differs only in its timestamp: nothing a user sees changed, so nothing is sent.
    snap.vms = [vm("a", updated_at=99.0), vm("b", updated_at=99.0)]
    second = await resyncer.resync()
    assert (second.updated, second.deleted, events.sent) == (0, 0, [])


async def test_drift_in_kv_is_repaired_and_unknown_keys_removed():
    resyncer, kv, events, _ = build(Snapshot(vms=[vm("a")]))
    await resyncer.resync()
    kv.data["h1.vm.a"] = bus.encode(vm("a", state="shutoff"))  # edited behind the service's back
    kv.data["h1.vm.ghost"] = bus.encode(vm("ghost"))
    kv.data["other.vm.x"] = b"{}"  # another host's key: not ours to judge
    events.sent.clear()
    reply = await resyncer.resync()
    assert (reply.updated, reply.deleted) == (1, 1)
    assert msgspec.json.decode(kv.data["h1.vm.a"])["state"] == "running"
    assert "h1.vm.ghost" not in kv.data and "other.vm.x" in kv.data
    assert sorted(events.sent) == [("domain", "a", "updated"), ("domain", "ghost", "deleted")]


async def test_a_resync_does_not_overwrite_what_events_read_after_it():
    holder = {}

    async def meanwhile():
        # While the resync reads libvirt, event handling reads two domains and writes its newer view.
        writer = holder["writer"]
        mark = writer.begin_read()
        await writer.apply("domain", "h1.vm.a", "a", vm("a", state="paused"), mark)
        await writer.apply("domain", "h1.vm.new", "new", vm("new"), mark)  # defined after the snapshot

    resyncer, kv, events, writer = build(Snapshot(vms=[vm("a", state="running")]), hook=meanwhile)
    holder["writer"] = writer
    reply = await resyncer.resync()
    assert msgspec.json.decode(kv.data["h1.vm.a"])["state"] == "paused"  # not the resync's older "running"
    assert "h1.vm.new" in kv.data  # not deleted for being absent from the older snapshot
    assert (reply.updated, reply.deleted) == (0, 0)


async def test_a_held_stop_is_neither_written_nor_deleted_by_resync():
    resyncer, kv, _, _ = build(Snapshot(vms=[vm("a")]))
    await resyncer.resync()
    resyncer.watcher.debouncer.feed("a", 5, 2, 0.0)  # STOPPED, crashed: held
    resyncer.reader.snap = Snapshot(vms=[vm("a", state="shutoff")])
    await resyncer.resync()
    assert msgspec.json.decode(kv.data["h1.vm.a"])["state"] == "running"
    resyncer.reader.snap = Snapshot(vms=[])  # a transient domain vanished with its stop
    await resyncer.resync()
    assert "h1.vm.a" in kv.data


async def test_resyncs_do_not_interleave():
    resyncer, _, _, _ = build(Snapshot(vms=[vm(str(i)) for i in range(50)]))
    first, second = await asyncio.gather(resyncer.resync(), resyncer.resync())
    assert first.updated + second.updated == 50


async def test_sends_for_one_key_keep_their_order_while_other_keys_go_ahead():
    class SlowFirstKV(FakeKV):
        def __init__(self):
            super().__init__()
            self.release = asyncio.Event()

        async def put(self, key, value):
            if key == "h1.vm.a" and b"paused" in value:
                await self.release.wait()  # the first write of "a" is slow to be acknowledged
            await super().put(key, value)

    kv, events = SlowFirstKV(), FakeEvents()
    writer = InventoryWriter(kv, events, "h1")
    first = asyncio.create_task(writer.apply("domain", "h1.vm.a", "a", vm("a", "paused"), writer.begin_read()))
    await asyncio.sleep(0)
    second = asyncio.create_task(writer.apply("domain", "h1.vm.a", "a", vm("a", "running"), writer.begin_read()))
    other = asyncio.create_task(writer.apply("domain", "h1.vm.b", "b", vm("b"), writer.begin_read()))
    await other  # another key is not held up by a's slow write
    assert kv.ops == [("put", "h1.vm.b")]
    kv.release.set()
    await asyncio.gather(first, second)
    assert kv.ops == [("put", "h1.vm.b"), ("put", "h1.vm.a"), ("put", "h1.vm.a")]
    assert msgspec.json.decode(kv.data["h1.vm.a"])["state"] == "running"
