"""WebSocket /api/v1/events: a snapshot, then every change with its stream sequence; ?since=SEQ resumes."""

from __future__ import annotations

import asyncio
import time

import msgspec
from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect

from gateway.deps import gw

_enc = msgspec.json.Encoder()


class SnapshotData(msgspec.Struct):
    vms: list
    hosts: list
    pools: list
    networks: list


class Snapshot(msgspec.Struct):
    seq: int
    data: SnapshotData
    host: str = ""
    kind: str = "snapshot"
    id: str = ""
    type: str = "snapshot"
    ts: float = 0.0
    v: int = 1


def _snapshot(g, seq: int) -> bytes:
    view = g.view
    hosts = [h for h in (view.host(n) for n in view.host_names()) if h is not None]
    data = SnapshotData(vms=view.vms_of(), hosts=hosts, pools=view.pools_of(), networks=view.networks_of())
    return _enc.encode(Snapshot(seq=seq, data=data, ts=time.time()))


@websocket("/events")
async def events(socket: WebSocket, since: int | None = None) -> None:
    g = gw(socket)
    hub = g.hub
    await socket.accept()
    queue = hub.subscribe()  # before the snapshot, so nothing published meanwhile is lost
    try:
        start = hub.last_seq
        if since is not None and since <= start and hub.can_resume(since):
            backlog = hub.since(since)
        elif since is not None and since <= start and since >= 0:
            backlog = [item async for item in hub.replay(since, start)] if since < start else []
        else:
            # Replaying a few events already in the snapshot is harmless: each carries a whole document.
            await socket.send_data(_snapshot(g, start), mode="text")
            backlog = hub.since(max(0, start - 50))
        sent = start if since is None else since
        for data in backlog:
            sent = max(sent, _seq_dec.decode(data).seq)
            await socket.send_data(data, mode="text")
        sender = asyncio.create_task(_pump(socket, queue, sent))
        receiver = asyncio.create_task(_drain(socket))
        done, pending = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
    except WebSocketDisconnect:
        pass
    finally:
        hub.unsubscribe(queue)


class _SeqOnly(msgspec.Struct):
    seq: int


_seq_dec = msgspec.json.Decoder(_SeqOnly)


async def _pump(socket: WebSocket, queue: asyncio.Queue, after: int) -> None:
    """Send queued events in order, skipping those the backlog already carried (seq 0: live samples)."""
    while True:
        data = await queue.get()
        if data is None:  # fell too far behind: the client reconnects with ?since=
            await socket.close(code=4000, reason="too slow; reconnect with since")
            return
        seq = _seq_dec.decode(data).seq
        if seq and seq <= after:
            continue
        after = max(after, seq)
        await socket.send_data(data, mode="text")


async def _drain(socket: WebSocket) -> None:
    """Read (and ignore) what the client sends, so a closed socket is noticed."""
    try:
        while True:
            await socket.receive_data(mode="text")
    except WebSocketDisconnect:
        return
