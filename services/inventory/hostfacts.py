"""Host facts: what the machine is (CPU, memory, versions, virt type) and how busy it is.

Every 5 s: a heartbeat into KV flint-hosts (`<host>` = HostFacts; the gateway calls a host unreachable
when updated_at is older than 15 s), and KV flint-inventory `<host>.host` plus a "host" event only when
something changed meaningfully (not for every wobble of free memory or CPU load).
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import libvirt
import msgspec
import structlog

from flint import bus, subjects
from flint.contracts.inventory import HostFacts
from flint.sshhosts import display_uri
from flint.virt.version import format_version
from flint.xml.base import parse_xml

from .reader import is_remote

log = structlog.get_logger()

INTERVAL_S = 5.0
CPU_STEP = 5.0  # percentage points of host CPU worth announcing
MEMORY_STEP = 0.02  # fraction of total memory worth announcing


def host_cpu_percent(prev: dict[str, int] | None, cur: dict[str, int]) -> float:
    """Busy share of all CPUs between two getCPUStats(ALL_CPUS) readings (nanosecond counters)."""
    if not prev:
        return 0.0
    total = sum(cur.values()) - sum(prev.values())
    idle = (cur.get("idle", 0) + cur.get("iowait", 0)) - (prev.get("idle", 0) + prev.get("iowait", 0))
    if total <= 0:
        return 0.0
    return round(min(max((total - idle) / total * 100.0, 0.0), 100.0), 1)


def memory_figures(stats: dict[str, int]) -> tuple[int, int]:
    """(total, free) bytes from getMemoryStats (KiB): page cache and buffers count as free, as in `free`."""
    total = int(stats.get("total", 0)) * 1024
    free = sum(int(stats.get(k, 0)) for k in ("free", "buffers", "cached")) * 1024
    return total, min(free, total)


def _static_part(facts: HostFacts) -> HostFacts:
    return msgspec.structs.replace(facts, uptime_s=0.0, updated_at=0.0, cpu_percent=0.0, memory_free_bytes=0)


def changed_meaningfully(announced: HostFacts | None, cur: HostFacts) -> bool:
    """Worth a new host document: any fact other than load changed, or the load moved by a step
    since the last *announced* figures (not since the last reading, so slow drifts still show)."""
    if announced is None or _static_part(announced) != _static_part(cur):
        return True
    if abs(cur.cpu_percent - announced.cpu_percent) >= CPU_STEP:
        return True
    step = max(cur.memory_total_bytes * MEMORY_STEP, 1)
    return abs(cur.memory_free_bytes - announced.memory_free_bytes) >= step


def local_uptime(path: str = "/proc/uptime") -> float:
    try:
        with open(path) as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0


class HostFactsReader:
    """Blocking reads (run through VirtConnection.call). Static facts are read once per connection."""

    def __init__(self, name: str, uri: str, virt_type: str, virt_type_reason: str, agentless: bool = False):
        self.name = name
        self.agentless = agentless
        self.uri = display_uri(uri)  # never the key file paths of an agentless host
        self.remote = is_remote(uri)
        self.virt_type = virt_type
        self.virt_type_reason = virt_type_reason
        self._static: tuple[Any, dict[str, Any]] | None = None  # (connection, facts) read once per connection
        self._last_cpu: dict[str, int] | None = None

    def read(self, conn: libvirt.virConnect) -> HostFacts:
        static = self._static_facts(conn)
        total, free = self._memory(conn, static)
        try:
            cpu_now = conn.getCPUStats(libvirt.VIR_NODE_CPU_STATS_ALL_CPUS)
        except libvirt.libvirtError:
            cpu_now = {}
        cpu = host_cpu_percent(self._last_cpu, cpu_now) if cpu_now else 0.0
        self._last_cpu = cpu_now or None
        return HostFacts(
            name=self.name,
            uri=self.uri,
            state="up",
            agentless=self.agentless,
            memory_total_bytes=total,
            memory_free_bytes=free,
            virt_type=self.virt_type,
            virt_type_reason=self.virt_type_reason,
            uptime_s=0.0 if self.remote else local_uptime(),
            cpu_percent=cpu,
            remote=self.remote,
            updated_at=time.time(),
            **_without_private(static),
        )

    def _static_facts(self, conn: libvirt.virConnect) -> dict[str, Any]:
        if self._static is not None and self._static[0] is conn:
            return self._static[1]
        try:
            hostname = conn.getHostname()
        except libvirt.libvirtError:
            hostname = "" if self.remote else socket.gethostname()
        caps = parse_xml(conn.getCapabilities())
        info = conn.getInfo()  # [model, memory MiB, cpus, mhz, nodes, sockets, cores, threads]
        facts = {
            "hostname": hostname,
            "cpu_model": caps.findtext("host/cpu/model") or caps.findtext("host/cpu/arch") or info[0],
            "cpus": int(info[2]),
            "libvirt_version": format_version(conn.getLibVersion()),
            "qemu_version": format_version(conn.getVersion()),
            "_info_memory": int(info[1]) * 1024 * 1024,
        }
        self._static = (conn, facts)
        self._last_cpu = None
        return facts

    @staticmethod
    def _memory(conn: libvirt.virConnect, static: dict[str, Any]) -> tuple[int, int]:
        try:
            return memory_figures(conn.getMemoryStats(libvirt.VIR_NODE_MEMORY_STATS_ALL_CELLS))
        except libvirt.libvirtError:
            # Drivers without nodememstats (the test driver): getInfo's figure, wrong in containers.
            total = static["_info_memory"]
            try:
                return total, min(int(conn.getFreeMemory()), total)
            except libvirt.libvirtError:
                return total, 0


def _without_private(facts: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in facts.items() if not k.startswith("_")}


class HostReporter:
    def __init__(self, ctx: Any, writer: Any, hosts_kv: Any, interval: float = INTERVAL_S):
        self.ctx = ctx
        self.writer = writer
        self.hosts_kv = hosts_kv
        self.interval = interval
        self.reader = HostFactsReader(ctx.host, ctx.settings.libvirt_uri, ctx.virt_type, ctx.virt_type_reason,
                                      ctx.settings.agentless)
        self.last: HostFacts | None = None
        self.announced: HostFacts | None = None

    async def run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self.ctx.virt.wait_connected(), self.interval)
            except TimeoutError:
                continue
            try:
                await self.report_once()
            except libvirt.libvirtError as exc:
                log.warning("host facts failed", error=exc.get_error_message())
            await asyncio.sleep(self.interval)

    async def report_once(self) -> HostFacts | None:
        if not self.ctx.virt.connected:
            # No heartbeat while libvirt is away: after 15 s the gateway shows the host unreachable,
            # which is the truth for anyone who wants to use it.
            return None
        facts = await self.ctx.virt.call(self.reader.read, self.ctx.virt.conn)
        self.last = facts
        await self.hosts_kv.put(self.ctx.host, bus.encode(facts))
        if changed_meaningfully(self.announced, facts):
            self.announced = facts
            await self.writer.put("host", subjects.kv_host(self.ctx.host), self.ctx.host, facts, force=True)
        return facts
