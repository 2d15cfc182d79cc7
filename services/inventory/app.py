"""Wires the inventory's parts together on the service context and starts its background tasks."""

from __future__ import annotations

import libvirt
import structlog

from flint import bus, subjects
from flint.service import ServiceContext

from .debounce import StopDebouncer
from .handlers import InventoryHandlers
from .hostfacts import HostReporter
from .metrics import MetricsSampler, MetricsStore
from .reader import Reader
from .resync import Resyncer
from .store import InventoryWriter, KvBucket
from .watcher import Watcher

log = structlog.get_logger()


async def setup(ctx: ServiceContext) -> list[bus.Endpoint]:
    js = ctx.js
    bucket = KvBucket(js, await js.key_value(subjects.KV_INVENTORY), subjects.KV_INVENTORY)
    writer = InventoryWriter(bucket, ctx.events, ctx.host)
    loaded = await writer.load()
    reader = Reader(ctx.host, ctx.settings.libvirt_uri)
    watcher = Watcher(ctx, reader, writer, StopDebouncer())
    store = MetricsStore()
    resyncer = Resyncer(ctx, reader, writer, watcher, store)
    sampler = MetricsSampler(ctx, store)
    reporter = HostReporter(ctx, writer, await js.key_value(subjects.KV_HOSTS))

    async def on_connect(conn: libvirt.virConnect) -> None:
        # Callbacks belong to the connection: a new one needs them again, and whatever happened while
        # we were away is only found by a full resync.
        refused = await ctx.virt.call(watcher.register, conn)
        if refused:
            log.info("some libvirt events are not offered by this driver", refused=refused)
        reader.forget_addresses()
        resyncer.request()

    ctx.virt.on_connect(on_connect)
    ctx.spawn(watcher.run(), "inventory-watcher")
    ctx.spawn(resyncer.run(), "inventory-resync")
    ctx.spawn(resyncer.run_pools(), "inventory-pools")
    ctx.spawn(sampler.run(), "inventory-metrics")
    ctx.spawn(reporter.run(), "inventory-hostfacts")
    log.info("inventory ready", documents_in_kv=loaded)
    return InventoryHandlers(ctx, writer, resyncer, store).endpoints()
