"""The inventory service as a process: a real nats-server and libvirt's test driver (testnode.xml).

The test driver keeps its state per connection, so nothing outside the service can change what it sees:
these tests check the start-up resync, the requests, and resync's handling of drift in KV.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import msgspec
import nats
import pytest
from nats.js.errors import KeyNotFoundError

from flint import bus, subjects
from flint.contracts.common import Empty, ServiceError
from flint.contracts.events import Event
from flint.contracts.health import HealthReply
from flint.contracts.inventory import (
    VM,
    HostFacts,
    InventoryRefresh,
    MetricsRequest,
    Network,
    Pool,
    ResyncReply,
    VMMetrics,
)
from tests.helpers import REPO, Proc, eventually, flint_env, python_module

pytestmark = pytest.mark.integration

TESTNODE = REPO / "tests" / "integration" / "fixtures" / "testnode.xml"
HOST = "itest"
WEB, DB, CACHE = (
    "6695eb01-f6a4-8304-79aa-97f2502e193f",
    "8f1d6a3e-2b6c-4a57-9c0e-3d7f1b2a9e11",
    "c2b1e0f4-7a1d-4d0e-8b6a-5f4e3d2c1b0a",
)
GIB = 2**30


def start_inventory(nats_url: str, log_dir) -> Proc:
    env = flint_env(
        FLINT_NATS_URL=nats_url,
        FLINT_HOST=HOST,
        FLINT_LIBVIRT_URI=f"test://{TESTNODE}",
        FLINT_VIRT_TYPE="qemu",
        FLINT_LOG_FORMAT="json",
    )
    return Proc(python_module("services.inventory"), env, log_dir / f"inventory-{time.monotonic_ns()}.log")


@pytest.fixture(scope="module")
def inventory(nats_server, tmp_path_factory):
    logs = tmp_path_factory.mktemp("inventory")
    proc = start_inventory(nats_server.url, logs)
    yield {"proc": proc, "logs": logs, "url": nats_server.url}
    proc.stop()


@pytest.fixture
async def nc(nats_server):
    client = await nats.connect(nats_server.url)
    yield client
    await client.close()


async def wait_for(check, timeout=15.0, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = await check()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - retried until the deadline
            last = exc
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what} not reached within {timeout} s (last error: {last!r})")


async def kv_doc(nc, key, kind):
    kv = await nc.jetstream().key_value(subjects.KV_INVENTORY)
    return bus.decode(kind, (await kv.get(key)).value)


async def health(nc) -> HealthReply:
    return await bus.request(nc, subjects.health(HOST, "inventory"), Empty(), HealthReply, timeout=2)


async def events_since(nc, start_seq: int) -> list[Event]:
    js = nc.jetstream()
    info = await js.stream_info(subjects.EVENTS_STREAM)
    found = []
    for seq in range(start_seq, info.state.last_seq + 1):
        try:
            msg = await js.get_msg(subjects.EVENTS_STREAM, seq)
        except Exception:  # noqa: BLE001 - a purged or deleted sequence number
            continue
        if msg.subject.startswith(f"flint.evt.{HOST}."):
            found.append(bus.decode(Event, msg.data))
    return found


async def last_seq(nc) -> int:
    return (await nc.jetstream().stream_info(subjects.EVENTS_STREAM)).state.last_seq


async def test_vm_documents_reach_kv(inventory, nc):
    web = await wait_for(lambda: kv_doc(nc, subjects.kv_vm(HOST, WEB), VM), what="the web VM in KV")
    assert (web.name, web.host, web.state, web.vcpus, web.memory_mib) == ("web", HOST, "running", 2, 512)
    assert web.description == "the running one"
    vda, vdb = web.disks
    assert (vda.target, vda.pool, vda.volume, vda.format) == ("vda", "images", "web.qcow2", "qcow2")
    assert (vda.capacity, vda.allocation) == (10 * GIB, 2 * GIB)
    assert (vdb.target, vdb.pool, vdb.volume, vdb.capacity) == ("vdb", "data", "web-data.img", 4 * GIB)
    (nic,) = web.nics
    assert (nic.mac, nic.network, nic.model) == ("52:54:00:aa:00:01", "isolated", "virtio")
    assert [(g.type, g.port) for g in web.graphics] == [("vnc", 5900)]

    db = await kv_doc(nc, subjects.kv_vm(HOST, DB), VM)
    assert (db.name, db.state, db.vcpus, db.memory_mib) == ("db", "shutoff", 1, 1024)
    assert [(d.target, d.volume, d.capacity) for d in db.disks] == [("vda", "db.qcow2", 20 * GIB)]
    cache = await kv_doc(nc, subjects.kv_vm(HOST, CACHE), VM)
    assert (cache.state, cache.disks, cache.nics) == ("paused", [], [])


async def test_host_pool_and_network_documents(inventory, nc):
    host = await wait_for(lambda: kv_doc(nc, subjects.kv_host(HOST), HostFacts), what="the host document")
    assert host.libvirt_version == "9.0.0"
    assert (host.name, host.cpus, host.virt_type, host.remote) == (HOST, 4, "qemu", False)
    assert host.memory_total_bytes > 0 and host.uptime_s > 0
    hosts_kv = await nc.jetstream().key_value(subjects.KV_HOSTS)
    beat = bus.decode(HostFacts, (await hosts_kv.get(HOST)).value)
    assert beat.state == "up" and time.time() - beat.updated_at < 15

    images = await kv_doc(nc, subjects.kv_pool(HOST, "images"), Pool)
    assert (images.type, images.active, images.target, images.volumes) == ("dir", True, "/flint-test/images", 2)
    assert images.capacity == 100 * GIB and images.allocation == 7 * GIB  # the test driver sums its volumes
    # The target does not exist on this machine: grouped by libvirt's own figures.
    assert images.group_id == f"libvirt:{images.capacity}:{images.available}"
    data = await kv_doc(nc, subjects.kv_pool(HOST, "data"), Pool)
    assert data.volumes == 1

    net = await kv_doc(nc, subjects.kv_network(HOST, "isolated"), Network)
    assert (net.forward_mode, net.bridge, net.ip_address, net.active) == ("isolated", "flintbr-test", None, True)


async def test_health_answers_with_libvirt_connected(inventory, nc):
    reply = await wait_for(lambda: health(nc), what="inventory health")
    assert reply.ok and reply.service == "inventory" and reply.host == HOST
    assert reply.libvirt.connected and reply.libvirt.version == "9.0.0"
    assert reply.libvirt.virt_type == "qemu"


async def test_metrics_request_answers(inventory, nc):
    await wait_for(lambda: health(nc), what="inventory health")

    async def samples():
        reply = await bus.request(nc, subjects.request(HOST, "inventory", "metrics"), MetricsRequest(id=WEB),
                                  VMMetrics, timeout=2)
        return reply if reply.samples else None

    reply = await wait_for(samples, what="a metrics sample of the running VM")
    assert reply.interval_s == 5.0
    assert reply.samples[-1].t <= time.time()
    with pytest.raises(ServiceError) as err:
        await bus.request(nc, subjects.request(HOST, "inventory", "metrics"), MetricsRequest(id=str(uuid.uuid4())),
                          VMMetrics, timeout=2)
    assert err.value.code == 404


async def test_events_stream_has_domain_updates(inventory, nc):
    await wait_for(lambda: kv_doc(nc, subjects.kv_vm(HOST, WEB), VM), what="the web VM in KV")
    events = await events_since(nc, 1)
    updated = {e.id for e in events if e.kind == "domain" and e.type == "updated"}
    assert {WEB, DB, CACHE} <= updated
    web_event = next(e for e in events if e.id == WEB)
    assert web_event.data["name"] == "web" and web_event.data["state"] == "running"
    assert {e.id for e in events if e.kind == "pool"} >= {"images", "data"}
    assert any(e.kind == "host" for e in events)


async def resync(nc) -> ResyncReply:
    return await bus.request(nc, subjects.request(HOST, "inventory", "resync"), Empty(), ResyncReply, timeout=10)


async def test_resync_of_an_unchanged_host_is_quiet(inventory, nc):
    await wait_for(lambda: kv_doc(nc, subjects.kv_vm(HOST, WEB), VM), what="the web VM in KV")
    await resync(nc)  # waits for the start-up resync to finish writing, if it still is
    before = await last_seq(nc)
    reply = await resync(nc)
    assert (reply.domains, reply.pools, reply.networks) == (3, 2, 1)
    noise = [(e.kind, e.id, e.type) for e in await events_since(nc, before + 1) if e.kind != "host"]
    assert (reply.updated, reply.deleted, noise) == (0, 0, [])


async def test_resync_removes_keys_of_vms_that_do_not_exist(inventory, nc):
    await wait_for(lambda: kv_doc(nc, subjects.kv_vm(HOST, WEB), VM), what="the web VM in KV")
    kv = await nc.jetstream().key_value(subjects.KV_INVENTORY)
    ghost = str(uuid.uuid4())
    await kv.put(subjects.kv_vm(HOST, ghost), msgspec.json.encode(VM(id=ghost, name="ghost", host=HOST,
                                                                      state="running")))
    await kv.put(subjects.kv_pool(HOST, "ghostpool"), msgspec.json.encode(Pool(host=HOST, name="ghostpool")))
    before = await last_seq(nc)
    reply = await resync(nc)
    assert reply.deleted == 2
    for key in (subjects.kv_vm(HOST, ghost), subjects.kv_pool(HOST, "ghostpool")):
        with pytest.raises(KeyNotFoundError):
            await kv.get(key)
    deleted = {(e.kind, e.id) for e in await events_since(nc, before + 1) if e.type == "deleted"}
    assert deleted == {("domain", ghost), ("pool", "ghostpool")}


async def test_resync_repairs_a_drifted_document(inventory, nc):
    web = await wait_for(lambda: kv_doc(nc, subjects.kv_vm(HOST, WEB), VM), what="the web VM in KV")
    kv = await nc.jetstream().key_value(subjects.KV_INVENTORY)
    await kv.put(subjects.kv_vm(HOST, WEB), msgspec.json.encode(msgspec.structs.replace(web, state="shutoff")))
    await kv.delete(subjects.kv_network(HOST, "isolated"))
    before = await last_seq(nc)
    reply = await resync(nc)
    # KV was changed behind the service's back: resync compares with what KV holds, not with what it
    # remembers writing, so both the edited and the deleted document are put right.
    assert (reply.updated, reply.deleted) == (2, 0)
    assert (await kv_doc(nc, subjects.kv_vm(HOST, WEB), VM)).state == "running"
    assert (await kv_doc(nc, subjects.kv_network(HOST, "isolated"), Network)).name == "isolated"
    kinds = sorted(e.kind for e in await events_since(nc, before + 1) if e.type == "updated" and e.kind != "host")
    assert kinds == ["domain", "network"]


async def test_refresh_rereads_one_object_and_answers_when_written(inventory, nc):
    await wait_for(lambda: health(nc), what="inventory health")
    subject = subjects.request(HOST, "inventory", "refresh")
    await bus.request(nc, subject, InventoryRefresh(kind="network", id="isolated"), Empty, timeout=5)
    assert (await kv_doc(nc, subjects.kv_network(HOST, "isolated"), Network)).bridge == "flintbr-test"
    # An object libvirt does not know answers too (its key, if any, is removed).
    await bus.request(nc, subject, InventoryRefresh(kind="pool", id="nosuchpool"), Empty, timeout=5)
    with pytest.raises(ServiceError) as err:
        await bus.request(nc, subject, InventoryRefresh(kind="volume", id="x"), Empty, timeout=5)
    assert err.value.code == 400


async def test_a_restarted_service_publishes_nothing_new(inventory, nc):
    await wait_for(lambda: kv_doc(nc, subjects.kv_vm(HOST, WEB), VM), what="the web VM in KV")
    inventory["proc"].stop()
    before = await last_seq(nc)
    inventory["proc"] = start_inventory(inventory["url"], inventory["logs"])
    await wait_for(lambda: health(nc), what="the restarted inventory")
    await asyncio.sleep(0.5)  # its start-up resync
    reply = await resync(nc)
    assert reply.domains == 3 and reply.updated == 0
    assert [e for e in await events_since(nc, before + 1) if e.kind != "host"] == []


def test_the_service_log_is_json_without_errors(inventory):
    eventually(lambda: "resync done" in inventory["proc"].output(), what="a resync in the log")
    for line in inventory["proc"].output().splitlines():
        record = msgspec.json.decode(line)
        assert record["level"] in ("info", "warning", "debug"), line
