"""Console tickets in KV flint-console and the NATS channel, against a real nats-server.

websockify forks a process per connection, so "single use" must hold across processes: the races here
run in forked processes, each with its own NATS connection, as websockify's would."""

from __future__ import annotations

import asyncio
import multiprocessing
import secrets
import time

import nats
import pytest

from flint import bus, subjects
from flint.channel import WINDOW, Channel, ChannelClosed
from flint.tickets import CLOSE_EXPIRED, CLOSE_REFUSED, TicketRefused, TicketStore, digest

pytestmark = pytest.mark.integration


@pytest.fixture
async def nc(nats_server):
    client = await nats.connect(nats_server.url)
    await bus.ensure_streams(client)
    yield client
    await client.close()


@pytest.fixture
async def store(nc):
    return TicketStore(await nc.jetstream().key_value(subjects.KV_CONSOLE))


async def _issue(store: TicketStore, user: str = "alice", ttl: float = 30, type_: str = "vnc") -> str:
    ticket, _ = await store.issue(user=user, vm_id="vm-1", vm_name="web", host="h1", type=type_, ttl=ttl)
    return ticket


async def test_only_the_hash_is_stored(store, nc):
    ticket = await _issue(store)
    kv = await nc.jetstream().key_value(subjects.KV_CONSOLE)
    entry = await kv.get(subjects.kv_console_ticket(digest(ticket)))
    assert ticket.encode() not in entry.value
    assert all(ticket not in key for key in await kv.keys())
    assert len(ticket) >= 43  # 32 random bytes


async def test_claim_then_consume_once(store):
    ticket = await _issue(store)
    record = await store.claim(ticket, user="alice")
    assert (record.state, record.vm_id, record.host, record.type) == ("claimed", "vm-1", "h1", "vnc")
    with pytest.raises(TicketRefused) as again:
        await store.claim(ticket, user="alice")
    assert again.value.code == CLOSE_REFUSED
    await store.consume(ticket, host="h1", type="vnc")
    with pytest.raises(TicketRefused):
        await store.consume(ticket, host="h1", type="vnc")
    with pytest.raises(TicketRefused):
        await store.claim(ticket, user="alice")


async def test_an_unclaimed_ticket_cannot_be_consumed(store):
    """websockify only accepts tickets the gateway claimed after checking user, Origin and role."""
    ticket = await _issue(store)
    with pytest.raises(TicketRefused):
        await store.consume(ticket, host="h1")
    await store.claim(ticket, user="alice")  # still usable through the gateway


async def test_another_users_ticket_is_refused_and_not_burned(store):
    ticket = await _issue(store, user="alice")
    with pytest.raises(TicketRefused) as exc:
        await store.claim(ticket, user="mallory")
    assert exc.value.code == CLOSE_REFUSED and "another user" in exc.value.reason
    await store.claim(ticket, user="alice")


async def test_the_wrong_host_or_type_cannot_consume(store):
    ticket = await _issue(store, type_="serial")
    await store.claim(ticket, user="alice")
    with pytest.raises(TicketRefused):
        await store.consume(ticket, host="h2")
    with pytest.raises(TicketRefused):
        await store.consume(ticket, host="h1", type="vnc")
    await store.consume(ticket, host="h1", type="serial")


async def test_expired_tickets_are_refused(nc):
    kv = await nc.jetstream().key_value(subjects.KV_CONSOLE)
    now = [1000.0]
    store = TicketStore(kv, clock=lambda: now[0])
    ticket = await _issue(store, ttl=300)  # capped at 30 s
    now[0] += 30.5
    with pytest.raises(TicketRefused) as exc:
        await store.claim(ticket, user="alice")
    assert exc.value.code == CLOSE_EXPIRED and "30 s" in exc.value.reason
    ticket = await _issue(store, ttl=30)
    await store.claim(ticket, user="alice")
    now[0] += 41  # claimed, but nobody opened the session in time
    with pytest.raises(TicketRefused) as exc:
        await store.consume(ticket, host="h1")
    assert exc.value.code == CLOSE_EXPIRED


async def test_garbage_tickets_are_refused(store):
    for bad in ("", "x" * 500, "not-a-ticket", "../../etc/passwd"):
        with pytest.raises(TicketRefused):
            await store.claim(bad, user="alice")


def _race(url: str, ticket: str, step: str, start_at: float, results) -> None:
    """In a forked process, like websockify's per-connection process."""

    async def go() -> str:
        client = await nats.connect(url)
        try:
            store = TicketStore(await client.jetstream().key_value(subjects.KV_CONSOLE))
            await asyncio.sleep(max(0.0, start_at - time.time()))
            if step == "claim":
                await store.claim(ticket, user="alice")
            else:
                await store.consume(ticket, host="h1")
            return "won"
        except TicketRefused:
            return "refused"
        finally:
            await client.close()

    results.put(asyncio.run(go()))


@pytest.mark.parametrize("step", ["claim", "consume"])
async def test_one_winner_among_processes_racing_for_a_ticket(store, nats_server, step):
    ctx = multiprocessing.get_context("fork")
    for _ in range(3):
        ticket = await _issue(store)
        if step == "consume":
            await store.claim(ticket, user="alice")
        results = ctx.Queue()
        start_at = time.time() + 1.0
        procs = [ctx.Process(target=_race, args=(nats_server.url, ticket, step, start_at, results)) for _ in range(8)]
        for p in procs:
            p.start()
        outcomes = [results.get(timeout=30) for _ in procs]
        for p in procs:
            p.join(10)
        assert sorted(outcomes) == ["refused"] * 7 + ["won"], outcomes


# ---- the channel ------------------------------------------------------------------------------------

async def test_channel_carries_bytes_in_order_both_ways_and_closes(nc, nats_server):
    other = await nats.connect(nats_server.url)
    try:
        cid = secrets.token_hex(4)
        gw = await Channel(nc, "h1", cid, side="gateway").open()
        host = await Channel(other, "h1", cid, side="host").open()
        payload = secrets.token_bytes(3 * 1024 * 1024 + 17)
        sender = asyncio.create_task(host.send(payload))
        got = bytearray()
        while len(got) < len(payload):
            got += await gw.recv()
        await sender
        assert bytes(got) == payload
        await gw.send(b"keys")
        assert await host.recv() == b"keys"
        await host.close(4409, "VM 'web' stopped")
        with pytest.raises(ChannelClosed) as closed:
            await asyncio.wait_for(gw.recv(), 5)
        assert (closed.value.code, closed.value.reason) == (4409, "VM 'web' stopped")
        await gw.close()
    finally:
        await other.close()


async def test_a_slow_reader_holds_the_sender_at_the_window(nc, nats_server):
    other = await nats.connect(nats_server.url)
    try:
        cid = secrets.token_hex(4)
        gw = await Channel(nc, "h1", cid, side="gateway").open()
        host = await Channel(other, "h1", cid, side="host").open()
        sender = asyncio.create_task(host.send(b"x" * (4 * WINDOW)))
        await asyncio.sleep(0.5)
        assert not sender.done(), "the sender ran ahead of a reader that read nothing"
        assert host._sent - host._acked <= WINDOW + 64 * 1024
        received = 0
        while received < 4 * WINDOW:
            received += len(await gw.recv())
        await asyncio.wait_for(sender, 5)
        await gw.close()
        await host.close()
    finally:
        await other.close()


# ---- the gateway and the console service on libvirt's test driver -----------------------------------

def _vm_id(stack, api, name: str) -> str:
    return next(v["id"] for v in api.get("/api/v1/vms").json()["items"] if v["name"] == name)


def test_console_requests_through_the_gateway(stack):
    import httpx

    from tests.helpers import login
    from tests.integration.conftest import PASSWORD

    admin = login(stack, password=PASSWORD)
    web, db = _vm_id(stack, admin, "web"), _vm_id(stack, admin, "db")
    resp = admin.post(f"/api/v1/vms/{db}/console", json={"type": "vnc"})
    assert resp.status_code == 409 and "is not running" in resp.json()["detail"]
    assert admin.post(f"/api/v1/vms/{web}/console", json={"type": "rdp"}).status_code == 422
    assert admin.post("/api/v1/vms/nope/console", json={"type": "vnc"}).status_code == 404
    # The test driver's VNC ports are made up (127.0.0.1:5900 may be a real VM's screen): refused.
    resp = admin.post(f"/api/v1/vms/{web}/console", json={"type": "vnc"})
    assert resp.status_code == 501 and "test driver" in resp.json()["detail"]
    token = admin.post("/api/v1/auth/tokens", json={"name": "cons-viewer", "role": "viewer"}).json()["token"]
    viewer = httpx.post(f"{stack}/api/v1/vms/{web}/console", json={"type": "vnc"},
                        headers={"Authorization": f"Bearer {token}"})
    assert viewer.status_code == 403


async def test_a_lost_message_closes_the_channel_instead_of_corrupting_it(nc, nats_server):
    import struct

    other = await nats.connect(nats_server.url)
    try:
        cid = secrets.token_hex(4)
        gw = await Channel(nc, "h1", cid, side="gateway").open()
        host = await Channel(other, "h1", cid, side="host").open()
        await host.send(b"first")
        assert await gw.recv() == b"first"
        # As if NATS dropped a message while reconnecting: the next frame starts further on.
        await other.publish(subjects.console_channel("h1", cid, "down"), b"D" + struct.pack(">Q", 99) + b"later")
        with pytest.raises(ChannelClosed) as closed:
            await asyncio.wait_for(gw.recv(), 5)
        assert closed.value.code == 1011 and "lost data" in closed.value.reason
        await gw.close()
        await host.close()
    finally:
        await other.close()
