"""flint/kvlist.py against a real nats-server: every current entry, deletes left out, by key, with a
listing taken while the client is too busy to handle the entries as they arrive."""

from __future__ import annotations

import asyncio
import time

import nats
import pytest
from nats.js.api import KeyValueConfig

from flint.kvlist import kv_items

pytestmark = pytest.mark.integration


@pytest.fixture
async def kv(nats_server):
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    bucket = f"kvlist-{time.monotonic_ns()}"
    store = await js.create_key_value(KeyValueConfig(bucket=bucket))
    yield js, bucket, store
    await js.delete_key_value(bucket)
    await nc.close()


async def test_an_empty_bucket_lists_nothing(kv):
    js, bucket, _ = kv
    assert await kv_items(js, bucket) == []


async def test_current_entries_by_key_without_deleted_ones(kv):
    js, bucket, store = kv
    for i in range(50):
        await store.put(f"usage.h.{i:03d}", b"v%d" % i)
    await store.put("usage.h.007", b"newer")
    await store.delete("usage.h.010")
    await store.put("other.x", b"x")
    items = await kv_items(js, bucket, "usage.>")
    assert len(items) == 49 and [i.key for i in items] == sorted(i.key for i in items)
    by_key = {i.key: i for i in items}
    assert by_key["usage.h.007"].value == b"newer" and "usage.h.010" not in by_key and "other.x" not in by_key
    assert all(i.revision > 0 for i in items)
    keys_only = await kv_items(js, bucket, with_values=False)
    assert len(keys_only) == 50 and all(i.value is None for i in keys_only)


async def test_a_busy_client_still_gets_every_entry(kv):
    """The event loop blocked right after subscribing (a busy process): the server has sent every entry
    before any is handled, and the listing still waits for all of them."""
    js, bucket, store = kv
    for i in range(20):
        await store.put(f"k{i}", b"v")
    real_subscribe = js.subscribe

    async def subscribe_then_stall(*args, **kwargs):
        sub = await real_subscribe(*args, **kwargs)
        time.sleep(0.3)  # noqa: ASYNC251 - the point: nothing is handled while the server sends
        await asyncio.sleep(0)
        return sub

    js.subscribe = subscribe_then_stall
    assert len(await kv_items(js, bucket)) == 20
