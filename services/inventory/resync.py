"""Full resync: make KV match libvirt exactly, on start, after every reconnect and every 60 s.

Events can be missed (libvirtd restarted, the connection dropped, this service was down): the resync
rewrites what drifted, removes keys of things that are gone, and says nothing about what did not change.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
import structlog

from flint import subjects
from flint.contracts.common import ServiceError
from flint.contracts.inventory import ResyncReply

from .reader import Snapshot

log = structlog.get_logger()

INTERVAL_S = 60.0
# Creating or deleting a volume through the API raises no pool event in libvirt, and free space moves
# with every write: pools (a handful of cheap calls each) are re-read more often than the full resync.
POOLS_INTERVAL_S = 10.0


class Resyncer:
    def __init__(self, ctx: Any, reader: Any, writer: Any, watcher: Any, metrics_store: Any = None):
        self.ctx = ctx
        self.reader = reader
        self.writer = writer
        self.watcher = watcher
        self.metrics_store = metrics_store
        self.requested = asyncio.Event()
        self._one_at_a_time = asyncio.Lock()  # the loop and the resync request must not interleave
        self.last: ResyncReply | None = None

    def request(self) -> None:
        """Ask the loop for a resync as soon as possible (called on every libvirt (re)connect)."""
        self.requested.set()

    async def run(self, interval: float = INTERVAL_S) -> None:
        while True:
            try:
                await asyncio.wait_for(self.requested.wait(), interval)
            except TimeoutError:
                pass
            self.requested.clear()
            if not self.ctx.virt.connected:
                continue
            try:
                await self.resync()
            except ServiceError as exc:
                log.info("resync skipped", reason=exc.message)
            except Exception:  # noqa: BLE001 - the safety net must survive a bad moment; next round retries
                log.exception("resync failed")

    async def run_pools(self, interval: float = POOLS_INTERVAL_S) -> None:
        while True:
            await asyncio.sleep(interval)
            if not self.ctx.virt.connected:
                continue
            try:
                await self.refresh_pools()
            except ServiceError:
                pass  # disconnected meanwhile: the resync after reconnect catches up
            except Exception:  # noqa: BLE001 - logged; the next round retries
                log.exception("pool refresh failed")

    async def refresh_pools(self) -> int:
        """Re-read every pool; only changed ones are written and announced. Returns how many changed."""
        async with self._one_at_a_time:
            mark = self.writer.begin_read()
            pools = await self.ctx.virt.call(self.reader.read_pools, self.ctx.virt.conn)
            return await self.writer.put_many(
                [("pool", subjects.kv_pool(self.ctx.host, p.name), p.name, p) for p in pools], mark=mark
            )

    async def resync(self) -> ResyncReply:
        async with self._one_at_a_time:
            return await self._resync()

    async def _resync(self) -> ResyncReply:
        started = time.monotonic()
        host, writer = self.ctx.host, self.writer
        # Events keep flowing meanwhile; whatever event handling reads after this mark is newer than this
        # snapshot and wins (see store.py).
        mark = writer.begin_read()
        snap: Snapshot = await self.ctx.virt.call(self.reader.read_all, self.ctx.virt.conn)
        present = await writer.kv.entries(f"{host}.>", with_values=True)
        writer.adopt(present, mark)
        held = self.watcher.debouncer.held()  # a STOPPED on hold stays unpublished until it resolves

        items: list[tuple[str, str, str, Any]] = []
        docs = [("domain", subjects.kv_vm(host, vm.id), vm.id, vm) for vm in snap.vms]
        docs += [("pool", subjects.kv_pool(host, p.name), p.name, p) for p in snap.pools]
        docs += [("network", subjects.kv_network(host, n.name), n.name, n) for n in snap.networks]
        wanted = {key for _, key, _, _ in docs}
        for kind, key, ident, doc in docs:
            if kind == "domain" and ident in held:
                continue
            items.append((kind, key, ident, doc))
            if kind == "domain" and not writer.is_stale(key, mark):
                self.watcher.note_addresses(doc)
        updated = await writer.put_many(items, mark=mark)

        prefixes = {f"{host}.vm.": "domain", f"{host}.pool.": "pool", f"{host}.net.": "network"}
        gone: list[tuple[str, str, str]] = []
        for key in present:
            kind = next((k for p, k in prefixes.items() if key.startswith(p)), None)
            ident = key.rsplit(".", 1)[-1]
            if kind is None or key in wanted or (kind == "domain" and ident in held):
                continue
            gone.append((kind, key, ident))
        results = await asyncio.gather(*(writer.apply(k, key, i, None, mark) for k, key, i in gone))
        deleted = sum(results)
        for _, _, ident in gone:
            self.watcher.addressless.pop(ident, None)
        writer.forget_marks_before(mark)

        if self.metrics_store is not None:
            self.metrics_store.retain({vm.id for vm in snap.vms})
        result = ResyncReply(
            domains=len(snap.vms),
            pools=len(snap.pools),
            networks=len(snap.networks),
            updated=updated,
            deleted=deleted,
            duration_ms=round((time.monotonic() - started) * 1000, 1),
        )
        self.last = result
        log.info("resync done", **msgspec.structs.asdict(result))
        return result
