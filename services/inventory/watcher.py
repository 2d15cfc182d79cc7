"""libvirt events -> KV documents and NATS events.

Callbacks run inside libvirt's event dispatch on the asyncio loop (libvirtaio). They only note *what*
changed on a queue: no libvirt call, no I/O. One consumer task takes a short window of changes (several
events for one object become one read), re-reads each object in a worker thread, and writes the result.
Re-reading instead of trusting the event makes every published document the truth at that moment.
Objects are read concurrently, one read in flight per object: a domain being destroyed blocks every call
on it for 1-2 s, and must not hold back the others.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import libvirt
import structlog

from flint import subjects
from flint.contracts.common import ServiceError

from .debounce import EV_REBOOT, Decision, StopDebouncer

EV_SHUTDOWN = libvirt.VIR_DOMAIN_EVENT_SHUTDOWN
_KEYS = {"domain": subjects.kv_vm, "pool": subjects.kv_pool, "network": subjects.kv_network}

log = structlog.get_logger()

# Coalescing: libvirt dispatches the events of one operation (a create's RESUMED+STARTED) in one burst, so
# a short window catches them; under load, changes queue up while a batch is processed and the next batch
# takes them all (natural batching). A long window would only add latency to every single change.
WINDOW_S = 0.002
READ_THREADS = 16  # objects re-read at once; one blocked domain delays only itself
SLOW_READ_S = 5.0  # a read taking longer is logged (a destroy alone holds a domain for 1-2 s)
ADDRESS_POLL_S = 10.0  # how often a running VM without addresses is asked again ...
ADDRESS_POLL_FOR_S = 180.0  # ... for at most this long after it was first seen without any


class Change(NamedTuple):
    kind: str  # domain | pool | network
    ident: str  # domain UUID, pool or network name
    event: int | None = None  # lifecycle event (or EV_REBOOT) for the debouncer; None: "something changed"
    detail: int = 0


class Watcher:
    def __init__(self, ctx: Any, reader: Any, writer: Any, debouncer: StopDebouncer | None = None):
        self.ctx = ctx
        self.reader = reader
        self.writer = writer
        self.debouncer = debouncer or StopDebouncer()
        self.queue: asyncio.Queue[Change] = asyncio.Queue()
        self.addressless: dict[str, float] = {}  # running VMs with NICs but no address yet -> first seen
        self._last_poll = 0.0
        self._inflight: dict[tuple[str, str], asyncio.Task] = {}
        self._dirty: set[tuple[str, str]] = set()
        self._executor = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="inventory-read")

    # ---- registration (every (re)connect) -------------------------------------------------------------

    def register(self, conn: libvirt.virConnect) -> list[str]:
        """Register every callback on a fresh connection; returns what the driver refused."""
        dom_cb = {
            libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE: self._on_lifecycle,
            libvirt.VIR_DOMAIN_EVENT_ID_REBOOT: self._on_reboot,
            libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_ADDED: self._on_domain_changed,
            libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED: self._on_domain_changed,
            libvirt.VIR_DOMAIN_EVENT_ID_METADATA_CHANGE: self._on_domain_changed,
            libvirt.VIR_DOMAIN_EVENT_ID_AGENT_LIFECYCLE: self._on_agent,
        }
        refused = []
        for event_id, callback in dom_cb.items():
            try:
                conn.domainEventRegisterAny(None, event_id, callback, None)
            except libvirt.libvirtError as exc:
                refused.append(f"domain event {event_id}: {exc.get_error_message()}")
        for event_id in (libvirt.VIR_STORAGE_POOL_EVENT_ID_LIFECYCLE, libvirt.VIR_STORAGE_POOL_EVENT_ID_REFRESH):
            try:
                conn.storagePoolEventRegisterAny(None, event_id, self._on_pool, None)
            except libvirt.libvirtError as exc:
                refused.append(f"pool event {event_id}: {exc.get_error_message()}")
        try:
            conn.networkEventRegisterAny(None, libvirt.VIR_NETWORK_EVENT_ID_LIFECYCLE, self._on_network, None)
        except libvirt.libvirtError as exc:
            refused.append(f"network event: {exc.get_error_message()}")
        return refused

    # ---- callbacks: enqueue only (UUIDString and name() read the local object, no RPC) ----------------

    def _on_lifecycle(self, _conn, dom, event, detail, _opaque) -> None:
        self.queue.put_nowait(Change("domain", dom.UUIDString(), event, detail))

    def _on_reboot(self, _conn, dom, _opaque) -> None:
        self.queue.put_nowait(Change("domain", dom.UUIDString(), EV_REBOOT))

    def _on_domain_changed(self, _conn, dom, *_args) -> None:
        self.queue.put_nowait(Change("domain", dom.UUIDString()))

    def _on_agent(self, _conn, dom, _state, _reason, _opaque) -> None:
        self.queue.put_nowait(Change("agent", dom.UUIDString()))

    def _on_pool(self, _conn, pool, *_args) -> None:
        self.queue.put_nowait(Change("pool", pool.name()))

    def _on_network(self, _conn, net, *_args) -> None:
        self.queue.put_nowait(Change("network", net.name()))

    # ---- consumer ------------------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            batch = await self._next_batch()
            self.process(batch, time.monotonic())

    async def _next_batch(self) -> list[Change]:
        deadline = self.debouncer.next_deadline()
        timeout = ADDRESS_POLL_S if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            first = await asyncio.wait_for(self.queue.get(), min(timeout, ADDRESS_POLL_S))
        except TimeoutError:
            return []
        await asyncio.sleep(WINDOW_S)
        batch = [first]
        while not self.queue.empty():
            batch.append(self.queue.get_nowait())
        return batch

    def process(self, batch: list[Change], now: float) -> None:
        """Decide what to re-read (coalesced per object, held STOPPEDs left out) and start the reads."""
        objects: dict[tuple[str, str], None] = {}  # ordered set
        for change in batch:
            if change.kind == "domain":
                if change.event == EV_SHUTDOWN:
                    # Shutdown under way: libvirt holds the domain until it has stopped (1-2 s for a
                    # destroy), so a read now would only wait; STOPPED follows and is read then.
                    continue
                if change.event is not None:
                    if self.debouncer.feed(change.ident, change.event, change.detail, now) is not Decision.REFRESH:
                        continue
                    self.reader.forget_addresses(change.ident)  # new boot, new leases
                objects[("domain", change.ident)] = None
            elif change.kind == "agent":
                self.reader.forget_addresses(change.ident)  # the agent can now (or no longer) answer
                objects[("domain", change.ident)] = None
            else:
                objects[(change.kind, change.ident)] = None
        for uuid in [*self.debouncer.due(now), *self._addresses_to_poll(now)]:
            objects[("domain", uuid)] = None
        for kind, ident in objects:
            if kind == "domain" and self.debouncer.is_held(ident):
                continue
            self._schedule(kind, ident)

    def _schedule(self, kind: str, ident: str) -> None:
        obj = (kind, ident)
        if obj in self._inflight:
            self._dirty.add(obj)  # read again as soon as the current read is written
            return
        self._inflight[obj] = asyncio.create_task(self._refresh(kind, ident), name=f"refresh {kind} {ident}")

    async def refresh_now(self, kind: str, ident: str) -> None:
        """Re-read one object now and return once its document is written: for changes libvirt raises no
        event for (a network's or pool's autostart flag)."""
        self._schedule(kind, ident)
        task = self._inflight.get((kind, ident))
        if task is not None:
            await asyncio.shield(task)

    async def _refresh(self, kind: str, ident: str) -> None:
        """Read one object and write the outcome; again while events keep arriving for it."""
        obj = (kind, ident)
        key = _KEYS[kind](self.ctx.host, ident)
        try:
            while True:
                self._dirty.discard(obj)
                mark = self.writer.begin_read()
                started = time.monotonic()
                doc = await self._read(kind, ident)
                if time.monotonic() - started > SLOW_READ_S:
                    log.info("slow libvirt read", kind=kind, id=ident, seconds=round(time.monotonic() - started, 2))
                if kind == "domain" and self.debouncer.is_held(ident):
                    return  # stopped while we read: the hold decides when this domain is shown
                await self.writer.apply(kind, key, ident, doc, mark)
                if kind == "domain" and doc is not None:
                    self.note_addresses(doc)
                elif kind == "domain":
                    self.addressless.pop(ident, None)
                if obj not in self._dirty:
                    return
        except ServiceError as exc:  # libvirt not connected: the resync after reconnect catches up
            log.info("change dropped while libvirt is away", kind=kind, id=ident, reason=exc.message)
        except libvirt.libvirtError as exc:
            log.warning("re-reading a changed object failed", kind=kind, id=ident, error=exc.get_error_message())
        finally:
            del self._inflight[obj]

    async def _read(self, kind: str, ident: str) -> Any:
        conn = self.ctx.virt.conn
        read = getattr(self.reader, f"read_{kind}")  # read_domain, read_pool, read_network
        # Own threads: reads of domains being destroyed block for seconds, and must not starve the
        # default pool the metrics, host facts and resync use.
        return await asyncio.get_running_loop().run_in_executor(self._executor, read, conn, ident)

    async def idle(self) -> None:
        """Wait until every read started so far has been written (tests, shutdown)."""
        while self._inflight:
            await asyncio.gather(*self._inflight.values(), return_exceptions=True)

    # ---- addresses arrive after boot (DHCP): ask again for a while -------------------------------------

    def note_addresses(self, doc: Any) -> None:
        if not self.reader.addresses_supported:
            return
        waiting = doc.state == "running" and any(not nic.addresses for nic in doc.nics)
        if waiting:
            self.addressless.setdefault(doc.id, time.monotonic())
        else:
            self.addressless.pop(doc.id, None)

    def _addresses_to_poll(self, now: float) -> set[str]:
        if now - self._last_poll < ADDRESS_POLL_S or not self.addressless:
            return set()
        self._last_poll = now
        due = set()
        for uuid, since in list(self.addressless.items()):
            if now - since > ADDRESS_POLL_FOR_S:
                del self.addressless[uuid]  # an isolated NIC may never get one; the resync keeps looking
            else:
                self.reader.forget_addresses(uuid)
                due.add(uuid)
        return due
