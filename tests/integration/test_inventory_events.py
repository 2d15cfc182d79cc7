"""The event path in-process: real libvirt callbacks (test driver, via libvirtaio) -> watcher -> real NATS.

The test driver only reports changes made on its own connection, so this test owns the connection and
makes the changes itself; the watcher, reader and KV writer are the service's own classes.
"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import libvirt
import nats
import pytest
from nats.js.errors import KeyNotFoundError

from flint import bus, subjects
from flint.contracts.events import Event
from flint.contracts.inventory import VM, Network, Pool
from flint.virt.connection import register_event_loop
from services.inventory.reader import Reader
from services.inventory.resync import Resyncer
from services.inventory.store import InventoryWriter, KvBucket
from services.inventory.watcher import Watcher
from tests.helpers import REPO

pytestmark = pytest.mark.integration

TESTNODE = REPO / "tests" / "integration" / "fixtures" / "testnode.xml"
HOST = "evtest"
WEB = "6695eb01-f6a4-8304-79aa-97f2502e193f"


class ThreadedVirt:
    connected = True

    def __init__(self, conn):
        self.conn = conn
        self.uri = f"test://{TESTNODE}"

    async def call(self, fn, *args):
        return await asyncio.to_thread(fn, *args)


@pytest.fixture
async def stack(nats_server):
    register_event_loop(asyncio.get_running_loop())  # before the connection opens
    nc = await nats.connect(nats_server.url)
    await bus.ensure_streams(nc)
    conn = libvirt.open(f"test://{TESTNODE}")
    events: list[Event] = []

    async def collect(msg):
        events.append(bus.decode(Event, msg.data))

    await nc.subscribe(subjects.events_of_host(HOST), cb=collect)
    kv = await nc.jetstream().key_value(subjects.KV_INVENTORY)
    ctx = SimpleNamespace(host=HOST, virt=ThreadedVirt(conn), events=bus.EventPublisher(nc, HOST))
    reader = Reader(HOST, ctx.virt.uri)
    writer = InventoryWriter(KvBucket(nc.jetstream(), kv, subjects.KV_INVENTORY), ctx.events, HOST)
    watcher = Watcher(ctx, reader, writer)
    resyncer = Resyncer(ctx, reader, writer, watcher)
    assert watcher.register(conn) == []
    await resyncer.resync()
    task = asyncio.create_task(watcher.run())
    events.clear()
    yield SimpleNamespace(conn=conn, kv=kv, events=events, resyncer=resyncer)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    for key in await _keys(kv):
        await kv.purge(key)
    await nc.close()
    conn.close()


async def _keys(kv):
    try:
        return [k for k in await kv.keys() if k.startswith(f"{HOST}.")]
    except Exception:  # noqa: BLE001 - NoKeysError on an empty bucket
        return []


async def state_in_kv(kv, uuid):
    try:
        return bus.decode(VM, (await kv.get(subjects.kv_vm(HOST, uuid))).value).state
    except KeyNotFoundError:
        return None


async def until(check, timeout=3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.01)
    raise AssertionError(f"not reached within {timeout} s")


def domain_states(events, uuid):
    return [e.data["state"] if e.type == "updated" else "deleted" for e in events if e.kind == "domain" and e.id == uuid]


async def test_lifecycle_changes_reach_kv_and_events_promptly(stack):
    web = stack.conn.lookupByUUIDString(WEB)
    started = time.monotonic()
    await asyncio.to_thread(web.suspend)
    await until(lambda: _is(stack.kv, WEB, "paused"))
    await asyncio.to_thread(web.resume)
    await until(lambda: _is(stack.kv, WEB, "running"))
    await asyncio.to_thread(web.destroy)
    await until(lambda: _is(stack.kv, WEB, "shutoff"))
    assert time.monotonic() - started < 1.5  # three changes, each shown well within 0.5 s
    await until(lambda: _events_are(stack.events, WEB, ["paused", "running", "shutoff"]))
    destroyed = bus.decode(VM, (await stack.kv.get(subjects.kv_vm(HOST, WEB))).value)
    assert destroyed.state_reason == "destroyed"


async def test_defined_and_undefined_domains(stack):
    xml = ("<domain type='test'><name>fresh</name><uuid>0b9e8f3c-1111-4222-8333-944455556666</uuid>"
           "<memory unit='MiB'>128</memory><vcpu>3</vcpu><os><type>hvm</type></os></domain>")
    dom = await asyncio.to_thread(stack.conn.defineXML, xml)
    uuid = dom.UUIDString()
    await until(lambda: _is(stack.kv, uuid, "shutoff"))
    doc = bus.decode(VM, (await stack.kv.get(subjects.kv_vm(HOST, uuid))).value)
    assert (doc.name, doc.vcpus, doc.memory_mib) == ("fresh", 3, 128)
    await asyncio.to_thread(dom.undefine)
    await until(lambda: _is(stack.kv, uuid, None))
    await until(lambda: _events_are(stack.events, uuid, ["shutoff", "deleted"]))


async def test_reboot_seen_as_stop_then_start_never_shows_shutoff(stack):
    web = stack.conn.lookupByUUIDString(WEB)
    watcher_reboot = _watcher_of(stack)._on_reboot
    watcher_reboot(stack.conn, web, None)  # the test driver's reboot raises no event: play libvirt's part
    await asyncio.to_thread(web.shutdown)  # STOPPED (shutdown) right after a REBOOT: held
    await asyncio.sleep(0.3)
    assert await state_in_kv(stack.kv, WEB) == "running"
    await asyncio.to_thread(web.create)  # STARTED ends the hold
    await asyncio.sleep(0.3)
    assert await state_in_kv(stack.kv, WEB) == "running"
    assert "shutoff" not in domain_states(stack.events, WEB)
    # An ordinary guest shutdown later is shown at once.
    await asyncio.to_thread(web.shutdown)
    await until(lambda: _is(stack.kv, WEB, "shutoff"), timeout=0.5)


async def test_pool_and_network_changes(stack):
    pool = stack.conn.storagePoolLookupByName("data")
    await asyncio.to_thread(pool.destroy)

    async def pool_inactive():
        doc = bus.decode(Pool, (await stack.kv.get(subjects.kv_pool(HOST, "data"))).value)
        return not doc.active and doc.capacity == 0

    await until(pool_inactive)
    net = stack.conn.networkLookupByName("isolated")
    await asyncio.to_thread(net.destroy)

    async def net_inactive():
        return not bus.decode(Network, (await stack.kv.get(subjects.kv_network(HOST, "isolated"))).value).active

    await until(net_inactive)
    kinds = {(e.kind, e.id) for e in stack.events}
    assert {("pool", "data"), ("network", "isolated")} <= kinds
    # The next resync agrees with what events wrote; the one thing no event covers is the VM whose disk
    # lives in the stopped pool: its sizes can no longer come from the pool's volume.
    stack.events.clear()
    reply = await stack.resyncer.resync()
    assert (reply.updated, reply.deleted) == (1, 0)
    await asyncio.sleep(0.1)
    assert [(e.kind, e.id) for e in stack.events] == [("domain", WEB)]
    reply = await stack.resyncer.resync()
    assert (reply.updated, reply.deleted) == (0, 0)


async def _is(kv, uuid, state):
    return await state_in_kv(kv, uuid) == state


async def _events_are(events, uuid, states):
    return domain_states(events, uuid) == states


def _watcher_of(stack):
    return stack.resyncer.watcher
