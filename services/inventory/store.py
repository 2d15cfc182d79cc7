"""The one place inventory documents leave the service: KV flint-inventory first, then an event.

A document is written and announced only when it differs from what KV holds (ignoring updated_at), so a
resync of an unchanged host is silent.

An older read must never overwrite a newer one, yet nothing may hold a lock across a libvirt call (one
domain being destroyed blocks every call on it for 1-2 s; a full resync reads 1,000 domains for ~0.3 s) or
across a NATS acknowledgement (that would cap the event rate at one object per round trip). So:
- each read takes a *mark* (a counter) before it starts, and its write carries the mark: a key already
  written from a later read is left alone (the write is stale). The check and the bookkeeping are
  synchronous, so no other write slips in between;
- the sends for one key (KV put, then event) are chained behind that key's previous sends, so they reach
  NATS in the order their checks passed, while different keys go out concurrently.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import structlog
from nats.js.api import DeliverPolicy
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from flint import bus
from flint.contracts.inventory import VM, HostFacts, Network, Pool

log = structlog.get_logger()

_DOC_TYPES: dict[str, type] = {"vm": VM, "pool": Pool, "net": Network}
# Sends in flight at once (a burst of changes, a big resync). Each waits for two acknowledgements in turn,
# so on a loaded 2-core machine 64 held 1,000 undefines 0.2-0.45 s behind libvirt; 256: within 0.1 s.
CONCURRENCY = 256


def fingerprint(doc: Any) -> bytes:
    """The document's bytes without its timestamp: equal fingerprints mean nothing a user sees changed."""
    if hasattr(doc, "updated_at"):
        doc = msgspec.structs.replace(doc, updated_at=0.0)
    return bus.encode(doc)


def doc_type_of_key(host: str, key: str) -> type | None:
    """`<host>.vm.<uuid>` -> VM, `<host>.pool.<name>` -> Pool, `<host>.host` -> HostFacts ..."""
    rest = key[len(host) + 1 :] if key.startswith(host + ".") else ""
    if rest == "host":
        return HostFacts
    return _DOC_TYPES.get(rest.split(".", 1)[0])


class InventoryWriter:
    def __init__(self, kv: KvBucket, events: bus.EventPublisher, host: str):
        self.kv = kv
        self.events = events
        self.host = host
        self._fingerprints: dict[str, bytes] = {}
        self._ids: dict[str, str] = {}  # key -> the id its events carry (a name with dots maps to a token)
        self._limit = asyncio.Semaphore(CONCURRENCY)
        self._marks = 0
        self._written_from: dict[str, int] = {}  # key -> mark of the read its current KV value came from
        self._sending: dict[str, asyncio.Future] = {}  # key -> completion of its latest send

    # ---- read marks ----------------------------------------------------------------------------------

    def begin_read(self) -> int:
        """Call just before reading libvirt; pass the mark to the write that follows."""
        self._marks += 1
        return self._marks

    def is_stale(self, key: str, mark: int) -> bool:
        """True when `key` was already written from a read that began after `mark`."""
        return mark < self._written_from.get(key, 0)

    def forget_marks_before(self, mark: int) -> None:
        """Marks older than every read still in flight decide nothing any more."""
        self._written_from = {k: m for k, m in self._written_from.items() if m >= mark}

    # ---- what KV holds -------------------------------------------------------------------------------

    async def load(self) -> int:
        """Remember what KV already holds for this host, so a restart publishes only real changes."""
        return self.adopt(await self.kv.entries(f"{self.host}.>", with_values=True))

    def adopt(self, entries: dict[str, bytes | None], mark: int | None = None) -> int:
        """Take KV's current documents as the reference for "changed": catches edits made behind our back
        and keys deleted by someone else. Keys absent from `entries` are forgotten, except keys written
        from reads that began after `mark`: the snapshot may predate those writes."""
        fingerprints: dict[str, bytes] = {}
        if mark is not None:
            for key, written in self._written_from.items():
                if written > mark and key in self._fingerprints:
                    fingerprints[key] = self._fingerprints[key]
        for key, value in entries.items():
            kind = doc_type_of_key(self.host, key)
            if kind is None or value is None or key in fingerprints:
                continue
            try:
                fingerprints[key] = fingerprint(bus.decode(kind, value))
            except msgspec.MsgspecError:
                pass  # an older document shape: it will be rewritten
        self._fingerprints = fingerprints
        return len(fingerprints)

    def known(self, key: str) -> bool:
        return key in self._fingerprints

    # ---- writes --------------------------------------------------------------------------------------

    async def apply(self, kind: str, key: str, ident: str, doc: Any, mark: int) -> bool:
        """The outcome of one read: write `doc`, or delete the key when the object is gone (doc None)."""
        if doc is not None:
            return await self.put(kind, key, ident, doc, mark=mark)
        if self.is_stale(key, mark):
            return False
        self._written_from[key] = mark  # "gone" is news too: an older read must not bring it back
        if not self.known(key):
            return False
        await self.delete(kind, key, ident)
        return True

    async def put(self, kind: str, key: str, ident: str, doc: Any, mark: int | None = None,
                  force: bool = False) -> bool:
        """Write and announce `doc` if it differs from what KV holds (or `force`); True when it did."""
        if mark is not None:
            if self.is_stale(key, mark):
                return False
            self._written_from[key] = mark
        fp = fingerprint(doc)
        if not force and self._fingerprints.get(key) == fp:
            return False
        self._fingerprints[key] = fp
        self._ids[key] = ident
        await self._in_order(key, self._send_put(kind, key, ident, doc))
        return True

    async def _send_put(self, kind: str, key: str, ident: str, doc: Any) -> None:
        await self.kv.put(key, bus.encode(doc))
        await self.events.publish(kind, ident, "updated", doc)

    async def _send_delete(self, kind: str, key: str, ident: str) -> None:
        try:
            await self.kv.delete(key)
        except KeyNotFoundError:
            pass
        await self.events.publish(kind, ident, "deleted", None)

    async def _in_order(self, key: str, send: Any) -> None:
        """Run `send` after the key's previous sends; registered before the first await, so in call order."""
        previous = self._sending.get(key)
        done = asyncio.get_running_loop().create_future()
        self._sending[key] = done
        try:
            if previous is not None:
                await asyncio.shield(previous)
            async with self._limit:
                await send
        finally:
            done.set_result(None)
            if self._sending.get(key) is done:
                del self._sending[key]

    async def delete(self, kind: str, key: str, ident: str | None = None) -> None:
        ident = ident or self._ids.get(key) or key.rsplit(".", 1)[-1]
        self._fingerprints.pop(key, None)
        self._ids.pop(key, None)
        await self._in_order(key, self._send_delete(kind, key, ident))

    async def put_many(self, items: list[tuple[str, str, str, Any]], mark: int | None = None) -> int:
        """Concurrent puts (distinct keys only, so per-key order still holds); returns how many changed."""
        results = await asyncio.gather(*(self.put(*item, mark=mark) for item in items))
        return sum(results)

    async def delete_many(self, items: list[tuple[str, str]]) -> None:
        await asyncio.gather(*(self.delete(kind, key) for kind, key in items))


class KvBucket:
    """The KV operations the inventory needs.

    `entries` replaces nats-py's KeyValue.watch for snapshots: that one hung in 3 of 200 tries while
    another writer kept updating a key under the pattern (the host document is rewritten every 5 s).
    This one ends at the first message sent with nothing pending behind it, or once it has seen as many
    messages as the consumer said were pending (nats-server 2.9 over-counts that for last-per-subject
    delivery, so the count alone is not enough), and gives up after `timeout`."""

    def __init__(self, js: Any, kv: KeyValue, bucket: str):
        self.js = js
        self.kv = kv
        self.bucket = bucket

    async def put(self, key: str, value: bytes) -> int:
        return await self.kv.put(key, value)

    async def delete(self, key: str) -> bool:
        return await self.kv.delete(key)

    async def entries(self, pattern: str, with_values: bool = False, timeout: float = 10.0) -> dict[str, bytes | None]:
        """Current keys matching `pattern` (deleted ones left out), with their values when asked."""
        prefix = f"$KV.{self.bucket}."
        found: dict[str, bytes | None] = {}
        state = {"seen": 0, "expected": None}
        done = asyncio.Event()

        async def on_msg(msg: Any) -> None:
            state["seen"] += 1
            try:
                last = msg.metadata.num_pending == 0  # nothing newer was pending when this one was sent
            except Exception:  # noqa: BLE001 - not a JetStream message: cannot tell
                last = False
            key = msg.subject[len(prefix) :]
            headers = msg.headers or {}
            if headers.get("KV-Operation") in ("DEL", "PURGE") or "Nats-Marker-Reason" in headers:
                found.pop(key, None)
            else:
                found[key] = msg.data if with_values else None
            if last or (state["expected"] is not None and state["seen"] >= state["expected"]):
                done.set()

        sub = await self.js.subscribe(
            prefix + pattern,
            stream=f"KV_{self.bucket}",
            cb=on_msg,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
            headers_only=not with_values,
        )
        try:
            info = await sub.consumer_info()
            # The server's count of what it sent (handled here or not yet) plus what is still pending:
            # counting what this client handled instead ends early on a busy client (flint/kvlist.py).
            state["expected"] = info.num_pending + info.delivered.consumer_seq
            if state["seen"] >= state["expected"]:
                done.set()
            await asyncio.wait_for(done.wait(), timeout)
        finally:
            await sub.unsubscribe()
        return found
