"""libvirt events -> KV documents and NATS events.

Callbacks run inside libvirt's event dispatch on the asyncio loop (libvirtaio). They only note *what*
changed on a queue (and keep the virDomain handle they were given: no libvirt call, no I/O). One consumer
task takes a short window of changes (several events for one object become one read), re-reads each
object in a worker thread, and writes the result. Re-reading instead of trusting the event makes every
published document the truth at that moment. Objects are read concurrently, one read in flight per
object: a domain being destroyed blocks every call on it for 1-2 s, and must not hold back the others.

Domains are read in batches of at most BATCH_MAX (reader.read_domain_facts): in a thread of its own, one
call asks for the state and sizes of the whole batch, another which of them are transient; then each
domain's XMLDesc and autostart are read and its document written on its own. While a batch call is in flight, further changed domains
gather for the next batch, so batches grow with the event rate and a single change waits for nothing.
The batch call waits on any domain of the batch that libvirt holds, so a domain whose batch has not
answered within BATCH_WAIT_S is read on its own instead, as is every changed domain while a batch call is
that late: such a read only waits on its own domain. The virDomain handles the callbacks carry spare a
lookup by UUID per read (the lookups were most of the time a read took).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import libvirt
import structlog

from flint import subjects
from flint.contracts.common import ServiceError

from .debounce import EV_REBOOT, Decision, StopDebouncer
from .reader import BATCH_MAX

EV_SHUTDOWN = libvirt.VIR_DOMAIN_EVENT_SHUTDOWN
_KEYS = {"domain": subjects.kv_vm, "pool": subjects.kv_pool, "network": subjects.kv_network}

log = structlog.get_logger()

# Coalescing: libvirt dispatches the events of one operation (a create's RESUMED+STARTED) in one burst, so
# a short window catches them; under load, changes queue up while a batch is processed and the next batch
# takes them all (natural batching). A long window would only add latency to every single change.
WINDOW_S = 0.002
READ_THREADS = 16  # objects re-read at once; one blocked domain delays only itself
BATCH_WAIT_S = 0.25  # a batch call answers in about a millisecond; past this its domains are read alone
SLOW_READ_S = 5.0  # a read taking longer is logged (a destroy alone holds a domain for 1-2 s)
ADDRESS_POLL_S = 10.0  # how often a running VM without addresses is asked again ...
ADDRESS_POLL_FOR_S = 180.0  # ... for at most this long after it was first seen without any


def take(pending: dict[str, None], size: int) -> list[str]:
    """Remove and return the first `size` (at least one) members of an ordered set."""
    taken = list(itertools.islice(pending, max(1, size)))
    for key in taken:
        del pending[key]
    return taken


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
        # Batches: domains waiting for the next one, the batch call in flight (future -> start time; more
        # than one only while a late one is still blocked), and the handles the callbacks were given.
        self._pending: dict[str, None] = {}  # ordered set of domain UUIDs
        self._batches: dict[asyncio.Future, float] = {}
        self._retry: asyncio.TimerHandle | None = None
        self._handles: dict[str, Any] = {}
        self._batch_executor = ThreadPoolExecutor(2, thread_name_prefix="inventory-batch")

    # ---- registration (every (re)connect) -------------------------------------------------------------

    def register(self, conn: libvirt.virConnect) -> list[str]:
        """Register every callback on a fresh connection; returns what the driver refused."""
        self._handles.clear()  # they belong to the old connection
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
        self.queue.put_nowait(Change("domain", self._keep(dom), event, detail))

    def _on_reboot(self, _conn, dom, _opaque) -> None:
        self.queue.put_nowait(Change("domain", self._keep(dom), EV_REBOOT))

    def _on_domain_changed(self, _conn, dom, *_args) -> None:
        self.queue.put_nowait(Change("domain", self._keep(dom)))

    def _on_agent(self, _conn, dom, _state, _reason, _opaque) -> None:
        self.queue.put_nowait(Change("agent", self._keep(dom)))

    def _keep(self, dom: Any) -> str:
        """Remember the callback's virDomain (libvirt-python holds a reference of its own), so reading the
        domain needs no lookup; returns its UUID."""
        uuid = dom.UUIDString()
        self._handles[uuid] = dom
        return uuid

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
            if kind == "domain":
                if not self.debouncer.is_held(ident):
                    self._schedule_domain(ident)
            else:
                self._schedule(kind, ident)
        self._flush()

    def _schedule(self, kind: str, ident: str) -> None:
        """Read one object on its own (pools, networks, refresh requests)."""
        obj = (kind, ident)
        if obj in self._inflight:
            self._dirty.add(obj)  # read again as soon as the current read is written
            return
        self._inflight[obj] = asyncio.create_task(self._refresh(kind, ident), name=f"refresh {kind} {ident}")

    def _schedule_domain(self, uuid: str) -> None:
        """Put a domain in the next batch (call _flush after); one already pending needs nothing more."""
        if ("domain", uuid) in self._inflight:
            self._dirty.add(("domain", uuid))
        else:
            self._pending[uuid] = None

    def _flush(self) -> None:
        """Start reading pending domains: the next batch (at most BATCH_MAX) when no batch call is in
        flight, else they wait for it to answer and make the next one; while a call is stuck (a domain
        held by libvirt), each pending domain is read on its own."""
        if not self._pending:
            return
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        oldest = min(self._batches.values(), default=None)
        stuck = oldest is not None and now - oldest >= BATCH_WAIT_S
        if oldest is not None and not stuck:
            if self._retry is None:  # _batch_done flushes sooner if the call answers in time
                self._retry = loop.call_later(oldest + BATCH_WAIT_S - now, self._retry_flush)
            return
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        try:
            conn = self.ctx.virt.conn
        except ServiceError as exc:  # the resync after reconnect catches up
            log.info("changes dropped while libvirt is away", domains=len(self._pending), reason=exc.message)
            self._pending.clear()
            return
        if stuck:
            log.info("batch read late, changed domains are read alone", late_s=round(now - oldest, 2),
                     domains=len(self._pending))
            for uuid in take(self._pending, len(self._pending)):
                self._inflight[("domain", uuid)] = asyncio.create_task(
                    self._refresh("domain", uuid), name=f"refresh domain {uuid}"
                )
            return
        chunk = take(self._pending, BATCH_MAX)
        mark = self.writer.begin_read()
        handles = {uuid: self._handles.get(uuid) for uuid in chunk}
        batch = loop.run_in_executor(self._batch_executor, self.reader.read_domain_facts, conn, chunk, handles)
        self._batches[batch] = now
        batch.add_done_callback(self._batch_done)
        for uuid in chunk:
            self._inflight[("domain", uuid)] = asyncio.create_task(
                self._refresh("domain", uuid, batch, mark, now + BATCH_WAIT_S), name=f"refresh domain {uuid}"
            )

    def _batch_done(self, batch: asyncio.Future) -> None:
        started = self._batches.pop(batch, None)
        if not batch.cancelled() and batch.exception() is not None:  # its domains fell back to own reads
            log.info("batch read failed", error=str(batch.exception()))
        elif started is not None and time.monotonic() - started > SLOW_READ_S:
            log.info("slow libvirt batch read", seconds=round(time.monotonic() - started, 2))
        if not self._batches:
            self._flush()

    def _retry_flush(self) -> None:
        self._retry = None
        self._flush()

    async def refresh_now(self, kind: str, ident: str) -> None:
        """Re-read one object now and return once its document is written: for changes libvirt raises no
        event for (a network's or pool's autostart flag)."""
        if kind == "domain":
            self._pending.pop(ident, None)  # read now, on its own, rather than in the next batch
        self._schedule(kind, ident)
        task = self._inflight.get((kind, ident))
        if task is not None:
            await asyncio.shield(task)

    async def _refresh(self, kind: str, ident: str, batch: asyncio.Future | None = None, mark: int | None = None,
                       batch_deadline: float = 0.0) -> None:
        """Read one object and write the outcome; again (on its own) while events keep arriving for it.
        `batch`: the batch call this domain is part of, begun after `mark` was taken."""
        obj = (kind, ident)
        key = _KEYS[kind](self.ctx.host, ident)
        try:
            while True:
                self._dirty.discard(obj)
                if mark is None:
                    mark = self.writer.begin_read()
                started = time.monotonic()
                doc = await self._read(kind, ident, batch, batch_deadline)
                if time.monotonic() - started > SLOW_READ_S:
                    log.info("slow libvirt read", kind=kind, id=ident, seconds=round(time.monotonic() - started, 2))
                if kind == "domain" and self.debouncer.is_held(ident):
                    return  # stopped while we read: the hold decides when this domain is shown
                await self.writer.apply(kind, key, ident, doc, mark)
                if kind == "domain" and doc is not None:
                    self.note_addresses(doc)
                elif kind == "domain":
                    self.addressless.pop(ident, None)
                    self._handles.pop(ident, None)
                if obj not in self._dirty:
                    return
                batch, mark = None, None
        except ServiceError as exc:  # libvirt not connected: the resync after reconnect catches up
            log.info("change dropped while libvirt is away", kind=kind, id=ident, reason=exc.message)
        except libvirt.libvirtError as exc:
            log.warning("re-reading a changed object failed", kind=kind, id=ident, error=exc.get_error_message())
        finally:
            del self._inflight[obj]

    async def _read(self, kind: str, ident: str, batch: asyncio.Future | None, batch_deadline: float) -> Any:
        conn = self.ctx.virt.conn
        loop = asyncio.get_running_loop()
        # Own threads: reads of domains being destroyed block for seconds, and must not starve the
        # default pool the metrics, host facts and resync use.
        if kind != "domain":
            read = getattr(self.reader, f"read_{kind}")  # read_pool, read_network
            return await loop.run_in_executor(self._executor, read, conn, ident)
        facts = None
        if batch is not None:
            if not batch.done():
                await asyncio.wait({batch}, timeout=max(0.0, batch_deadline - time.monotonic()))
            if batch.done() and not batch.cancelled() and batch.exception() is None:
                facts = batch.result()
                if facts.gone(ident):  # undefined: nothing more to read, no thread needed
                    return self.reader.build_domain(conn, ident, facts)
            # else: too slow (another domain held by libvirt) or failed: this domain is read on its own
        handle = self._handles.get(ident)
        return await loop.run_in_executor(self._executor, self.reader.build_domain, conn, ident, facts, handle)

    async def idle(self) -> None:
        """Wait until every read started or pending so far has been written (tests, shutdown)."""
        while self._inflight or self._pending:
            if self._inflight:
                await asyncio.gather(*self._inflight.values(), return_exceptions=True)
            else:
                await asyncio.sleep(0.005)  # pending domains wait for a batch call to answer

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
