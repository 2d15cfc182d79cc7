"""One subscription to FLINT_EVENTS (and the live samples) fanned out to every WebSocket client.

Events keep their stream sequence so a client can resume with ?since=SEQ; recent ones are held
in memory, older ones are read back from the stream."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator

import msgspec
import structlog
from nats.aio.client import Client as NATS
from nats.js.api import ConsumerConfig, DeliverPolicy

from flint import subjects

log = structlog.get_logger()
RING_SIZE = 20_000
CLIENT_QUEUE = 10_000


class Envelope(msgspec.Struct):
    """What a WebSocket client gets: the event with its stream sequence (0 for live-only samples)."""

    seq: int
    host: str
    kind: str
    id: str
    type: str
    ts: float = 0.0
    v: int = 1
    data: msgspec.Raw = msgspec.Raw(b"null")


class _Event(msgspec.Struct):
    host: str
    kind: str
    id: str
    type: str
    ts: float = 0.0
    v: int = 1
    data: msgspec.Raw = msgspec.Raw(b"null")


_dec = msgspec.json.Decoder(_Event)
_enc = msgspec.json.Encoder()


def _envelope(seq: int, raw: bytes) -> bytes:
    e = _dec.decode(raw)
    return _enc.encode(Envelope(seq, e.host, e.kind, e.id, e.type, e.ts, e.v, e.data))


class EventHub:
    def __init__(self) -> None:
        self.ring: collections.deque[tuple[int, bytes]] = collections.deque(maxlen=RING_SIZE)
        self.last_seq = 0
        self.clients: set[asyncio.Queue] = set()
        self._subs: list = []
        self._nc: NATS | None = None
        self.latest_samples: dict[str, dict] = {}

    async def start(self, nc: NATS) -> None:
        self._nc = nc
        js = nc.jetstream()
        info = await js.stream_info(subjects.EVENTS_STREAM)
        self.last_seq = info.state.last_seq
        start = max(info.state.first_seq, self.last_seq - RING_SIZE + 1)
        config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=max(start, 1))
        if info.state.messages == 0:
            config = ConsumerConfig(deliver_policy=DeliverPolicy.NEW)
        self._subs.append(
            await js.subscribe(subjects.EVENTS_ALL, stream=subjects.EVENTS_STREAM, ordered_consumer=True,
                               config=config, cb=self._on_event)
        )
        self._subs.append(await nc.subscribe(subjects.LIVE_ALL, cb=self._on_live))

    async def stop(self) -> None:
        for sub in self._subs:
            try:
                await sub.unsubscribe()
            except Exception:  # noqa: BLE001 - closing anyway
                pass

    async def _on_event(self, msg) -> None:
        seq = msg.metadata.sequence.stream
        try:
            data = _envelope(seq, msg.data)
        except msgspec.DecodeError:
            log.warning("undecodable event skipped", subject=msg.subject)
            return
        self.ring.append((seq, data))
        self.last_seq = max(self.last_seq, seq)
        self._fan_out(data)

    async def _on_live(self, msg) -> None:
        try:
            event = _dec.decode(msg.data)
        except msgspec.DecodeError:
            return
        if event.kind == "metrics":
            self.latest_samples[event.id] = msgspec.json.decode(event.data)
        self._fan_out(_enc.encode(Envelope(0, event.host, event.kind, event.id, event.type, event.ts, event.v, event.data)))

    def _fan_out(self, data: bytes) -> None:
        for queue in list(self.clients):
            try:
                queue.put_nowait(data)
            except asyncio.QueueFull:
                # A client this far behind is closed (code 4000) and resumes with ?since=: drop what it
                # has not read yet and leave only the close marker, so it is told at once.
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(None)
                self.clients.discard(queue)

    def subscribe(self) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(maxsize=CLIENT_QUEUE)
        self.clients.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self.clients.discard(queue)

    def can_resume(self, since: int) -> bool:
        if since >= self.last_seq:
            return True
        return bool(self.ring) and self.ring[0][0] <= since + 1

    def since(self, since: int) -> list[bytes]:
        return [data for seq, data in self.ring if seq > since]

    async def replay(self, since: int, until: int) -> AsyncIterator[bytes]:
        """Events after `since` up to `until` read back from the stream (older than the ring)."""
        assert self._nc is not None
        js = self._nc.jetstream()
        sub = await js.subscribe(
            subjects.EVENTS_ALL,
            stream=subjects.EVENTS_STREAM,
            ordered_consumer=True,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=since + 1),
        )
        try:
            while True:
                msg = await sub.next_msg(timeout=5)
                seq = msg.metadata.sequence.stream
                yield _envelope(seq, msg.data)
                if seq >= until:
                    return
        finally:
            await sub.unsubscribe()
