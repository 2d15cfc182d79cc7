"""Per-VM figures for graphs: getAllDomainStats every 5 s, rates from counter deltas, an hour in memory.

The pure parts (RawStats.from_stats, compute_sample, MetricsStore) are unit-tested; MetricsSampler is the
thin loop that calls libvirt in a thread and publishes each sample live (not into FLINT_EVENTS).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import libvirt
import structlog

from flint.contracts.inventory import MetricSample

log = structlog.get_logger()

INTERVAL_S = 5.0
HISTORY = 720  # one hour at 5 s
STATS_GROUPS = (
    libvirt.VIR_DOMAIN_STATS_STATE
    | libvirt.VIR_DOMAIN_STATS_CPU_TOTAL
    | libvirt.VIR_DOMAIN_STATS_BALLOON
    | libvirt.VIR_DOMAIN_STATS_BLOCK
    | libvirt.VIR_DOMAIN_STATS_INTERFACE
    | libvirt.VIR_DOMAIN_STATS_VCPU
)


@dataclass(frozen=True)
class RawStats:
    """Cumulative counters of one domain at one moment (t is monotonic seconds, wall is epoch)."""

    t: float
    wall: float
    cpu_time_ns: int = 0
    vcpus: int = 1
    memory_total_bytes: int = 0
    memory_used_bytes: int = 0
    disk_read_bytes: int = 0
    disk_write_bytes: int = 0
    net_rx_bytes: int = 0
    net_tx_bytes: int = 0

    @classmethod
    def from_stats(cls, stats: dict[str, Any], t: float, wall: float) -> RawStats:
        """Read one getAllDomainStats record. Balloon figures are KiB; block/net are per-device counters."""
        current = int(stats.get("balloon.current", 0)) * 1024
        total = current or int(stats.get("balloon.maximum", 0)) * 1024
        guest_free = stats.get("balloon.usable", stats.get("balloon.unused"))
        if guest_free is not None and "balloon.available" in stats:
            # The guest's own view (needs the balloon driver's stats period): what `free` shows inside;
            # "usable" counts reclaimable caches as free, "unused" (older guests) does not.
            used = (int(stats["balloon.available"]) - int(guest_free)) * 1024
        elif "balloon.rss" in stats:
            used = int(stats["balloon.rss"]) * 1024  # what the host pays for it
        else:
            used = current
        return cls(
            t=t,
            wall=wall,
            cpu_time_ns=int(stats.get("cpu.time", 0)),
            vcpus=max(1, int(stats.get("vcpu.current", 1))),
            memory_total_bytes=total,
            memory_used_bytes=max(0, min(used, total)) if total else max(0, used),
            disk_read_bytes=_sum_indexed(stats, "block", "rd.bytes"),
            disk_write_bytes=_sum_indexed(stats, "block", "wr.bytes"),
            net_rx_bytes=_sum_indexed(stats, "net", "rx.bytes"),
            net_tx_bytes=_sum_indexed(stats, "net", "tx.bytes"),
        )


def _sum_indexed(stats: dict[str, Any], group: str, field: str) -> int:
    count = int(stats.get(f"{group}.count", 0))
    return sum(int(stats.get(f"{group}.{i}.{field}", 0)) for i in range(count))


def _rate(prev: int, cur: int, dt: float) -> float:
    # A counter that went backwards means the domain restarted (or a device was replaced): no rate.
    return (cur - prev) / dt if cur >= prev else 0.0


def compute_sample(prev: RawStats | None, cur: RawStats) -> MetricSample:
    """Rates between two readings; the first reading of a domain has memory figures but no rates."""
    sample = MetricSample(
        t=cur.wall, memory_used_bytes=cur.memory_used_bytes, memory_total_bytes=cur.memory_total_bytes
    )
    if prev is None or cur.t <= prev.t:
        return sample
    dt = cur.t - prev.t
    cpu = _rate(prev.cpu_time_ns, cur.cpu_time_ns, dt) / 1e9 / cur.vcpus * 100.0
    sample.cpu_percent = round(min(max(cpu, 0.0), 100.0), 2)
    sample.disk_read_bps = round(_rate(prev.disk_read_bytes, cur.disk_read_bytes, dt), 1)
    sample.disk_write_bps = round(_rate(prev.disk_write_bytes, cur.disk_write_bytes, dt), 1)
    sample.net_rx_bps = round(_rate(prev.net_rx_bytes, cur.net_rx_bytes, dt), 1)
    sample.net_tx_bps = round(_rate(prev.net_tx_bytes, cur.net_tx_bytes, dt), 1)
    return sample


class MetricsStore:
    """The last `history` samples of each VM, plus its last raw reading for the next delta."""

    def __init__(self, history: int = HISTORY):
        self.history = history
        self._samples: dict[str, deque[MetricSample]] = {}
        self._last: dict[str, RawStats] = {}

    def add(self, uuid: str, raw: RawStats) -> MetricSample:
        sample = compute_sample(self._last.get(uuid), raw)
        self._last[uuid] = raw
        self._samples.setdefault(uuid, deque(maxlen=self.history)).append(sample)
        return sample

    def samples(self, uuid: str, since: float | None = None) -> list[MetricSample]:
        ring = self._samples.get(uuid, ())
        return [s for s in ring if since is None or s.t >= since]

    def forget_raw_except(self, running: set[str]) -> None:
        """A VM that stopped starts over from no previous reading (its counters reset when it restarts)."""
        for uuid in list(self._last):
            if uuid not in running:
                del self._last[uuid]

    def retain(self, existing: set[str]) -> None:
        """Drop the history of VMs that no longer exist."""
        for uuid in list(self._samples):
            if uuid not in existing:
                del self._samples[uuid]
                self._last.pop(uuid, None)

    def __len__(self) -> int:
        return len(self._samples)


def _read_running_stats(conn: libvirt.virConnect) -> list[tuple[str, dict[str, Any]]]:
    flags = libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_RUNNING | libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT
    try:
        records = conn.getAllDomainStats(STATS_GROUPS, flags)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() not in (libvirt.VIR_ERR_INVALID_ARG, libvirt.VIR_ERR_NO_SUPPORT):
            raise
        # Drivers without NOWAIT (the test driver): a busy domain may delay this one call, no more.
        records = conn.getAllDomainStats(STATS_GROUPS, libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_RUNNING)
    return [(dom.UUIDString(), stats) for dom, stats in records]


class MetricsSampler:
    """Every INTERVAL_S: one getAllDomainStats for all running VMs, store and publish each sample."""

    def __init__(self, ctx: Any, store: MetricsStore, interval: float = INTERVAL_S):
        self.ctx = ctx
        self.store = store
        self.interval = interval
        self.last_duration_s = 0.0

    async def run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self.ctx.virt.wait_connected(), self.interval)
            except TimeoutError:
                continue
            started = time.monotonic()
            try:
                await self.sample_once()
            except libvirt.libvirtError as exc:
                log.warning("domain stats failed", error=exc.get_error_message())
            self.last_duration_s = time.monotonic() - started
            await asyncio.sleep(max(0.5, self.interval - self.last_duration_s))

    async def sample_once(self) -> int:
        records = await self.ctx.virt.call(_read_running_stats, self.ctx.virt.conn)
        now, wall = time.monotonic(), time.time()
        running = set()
        for uuid, stats in records:
            running.add(uuid)
            sample = self.store.add(uuid, RawStats.from_stats(stats, now, wall))
            await self.ctx.events.publish_live("metrics", uuid, "sample", sample)
        self.store.forget_raw_except(running)
        return len(records)
