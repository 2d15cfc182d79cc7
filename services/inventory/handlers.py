"""Thin endpoints: decode, call the domain code, reply."""

from __future__ import annotations

import time
from typing import Any

from flint import bus, subjects
from flint.contracts.common import Empty, ServiceError
from flint.contracts.inventory import InventoryRefresh, MetricsRequest, ResyncReply, VMMetrics

from .metrics import INTERVAL_S, MetricsStore

HOUR_S = 3600.0


class InventoryHandlers:
    def __init__(self, ctx: Any, writer: Any, resyncer: Any, store: MetricsStore):
        self.ctx = ctx
        self.writer = writer
        self.resyncer = resyncer
        self.store = store

    def endpoints(self) -> list[bus.Endpoint]:
        return [
            bus.Endpoint("metrics", MetricsRequest, self.metrics),
            bus.Endpoint("resync", Empty, self.resync),
            bus.Endpoint("refresh", InventoryRefresh, self.refresh),
        ]

    async def metrics(self, req: MetricsRequest) -> VMMetrics:
        """The last hour of one VM's samples (empty while it is shut off)."""
        samples = self.store.samples(req.id, since=time.time() - HOUR_S)
        if not samples and not self.writer.known(subjects.kv_vm(self.ctx.host, req.id)):
            raise ServiceError(404, f"no VM with id {req.id} on host {self.ctx.host}", field="id")
        return VMMetrics(interval_s=INTERVAL_S, samples=samples)

    async def resync(self, _: Empty) -> ResyncReply:
        if not self.ctx.virt.connected:
            raise ServiceError(503, f"libvirt at {self.ctx.virt.uri} is not connected; resync runs on reconnect")
        return await self.resyncer.resync()

    async def refresh(self, req: InventoryRefresh) -> Empty:
        """Re-read one object (a network, pool or domain) and answer once its document is written."""
        if req.kind not in ("network", "pool", "domain"):
            raise ServiceError(400, "kind must be network, pool or domain", field="kind")
        if not self.ctx.virt.connected:
            raise ServiceError(503, f"libvirt at {self.ctx.virt.uri} is not connected; resync runs on reconnect")
        await self.resyncer.watcher.refresh_now(req.kind, req.id)
        return Empty()
