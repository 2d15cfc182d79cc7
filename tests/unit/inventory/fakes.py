"""Fakes for the inventory's adapters: KV bucket, event publisher, libvirt connection wrapper."""

from __future__ import annotations

import asyncio


class FakeKV:
    """store.KvBucket's surface: put, delete and a snapshot of entries."""

    def __init__(self):
        self.data: dict[str, bytes] = {}
        self.ops: list[tuple[str, str]] = []

    async def put(self, key, value):
        self.data[key] = value
        self.ops.append(("put", key))

    async def delete(self, key):
        self.data.pop(key, None)
        self.ops.append(("delete", key))

    async def entries(self, pattern, with_values=False):
        prefix = pattern.rstrip(">")
        return {k: v if with_values else None for k, v in self.data.items() if k.startswith(prefix)}


class FakeEvents:
    def __init__(self):
        self.sent: list[tuple[str, str, str]] = []

    async def publish(self, kind, ident, type_, data=None):
        self.sent.append((kind, ident, type_))


class FakeVirt:
    """VirtConnection's surface: `call` runs the function inline, after an optional hook."""

    connected = True
    conn = object()
    uri = "fake:///"

    def __init__(self, hook=None):
        self.hook = hook

    async def call(self, fn, *args):
        if self.hook:
            await self.hook()
        await asyncio.sleep(0)
        return fn(*args)
