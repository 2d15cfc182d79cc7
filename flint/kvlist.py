"""Listing a KV bucket's current entries, counting on the server's numbers.

nats-py's KeyValue.watch (and keys(), built on it) decides "that was all" from the consumer's pending
count and what this client has processed so far. Two CI runs on a loaded machine saw listings come back
short right after a write (a token "not found" just after it was used; a ruleset in use deleted because
its usage index read empty); it did not reproduce here. This listing waits for as many entries as the
server says it delivered plus those still pending, and says so (503) if they do not come, rather than
answering with a partial list."""

from __future__ import annotations

import asyncio
from typing import Any, NamedTuple

from nats.js.api import DeliverPolicy

from flint.contracts.common import ServiceError


class KvItem(NamedTuple):
    key: str
    value: bytes | None  # None when listed without values
    revision: int


async def kv_items(js: Any, bucket: str, pattern: str = ">", with_values: bool = True,
                   timeout: float = 10.0) -> list[KvItem]:
    """The current entries of `bucket` whose keys match `pattern` (deleted ones left out), by key."""
    prefix = f"$KV.{bucket}."
    found: dict[str, KvItem] = {}
    state: dict[str, int | None] = {"seen": 0, "target": None}
    done = asyncio.Event()

    async def on_msg(msg: Any) -> None:
        state["seen"] += 1
        key = msg.subject[len(prefix):]
        headers = msg.headers or {}
        if headers.get("KV-Operation") in ("DEL", "PURGE") or "Nats-Marker-Reason" in headers:
            found.pop(key, None)
        else:
            found[key] = KvItem(key, msg.data if with_values else None, msg.metadata.sequence.stream)
        if state["target"] is not None and state["seen"] >= state["target"]:
            done.set()

    sub = await js.subscribe(prefix + pattern, stream=f"KV_{bucket}", cb=on_msg, ordered_consumer=True,
                             deliver_policy=DeliverPolicy.LAST_PER_SUBJECT, headers_only=not with_values)
    try:
        info = await sub.consumer_info()
        # Sent already (whether or not handled here yet) plus still to send: what this listing holds.
        state["target"] = info.num_pending + info.delivered.consumer_seq
        if state["seen"] >= state["target"]:
            done.set()
        try:
            await asyncio.wait_for(done.wait(), timeout)
        except TimeoutError:
            raise ServiceError(503, f"listing KV {bucket} took longer than {timeout:.0f} s; try again") from None
    finally:
        await sub.unsubscribe()
    return [found[k] for k in sorted(found)]
