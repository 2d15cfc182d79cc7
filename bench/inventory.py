"""Inventory figures with 1,000 defined domains on the real libvirtd (qemu:///system).

1. `GET /api/v1/vms?limit=5000` p50/p99 against a direct libvirt-python walk (listAllDomains + XMLDesc +
   state() of every domain, what a naive manager does per request), same run. Target p50 <= 0.25 x walk.
2. Event latency: this process registers its own libvirt lifecycle callback (default event impl in a
   thread, on a connection of its own, like the inventory service's) and listens on /api/v1/events;
   define/undefine one domain at a time and compare t_ws - t_callback with t_callback - t_call_return.
   Target: p99 of t_ws - t_callback <= 20 ms.
3. Events per second without loss: a burst of define then undefine operations from BURST_THREADS threads
   (libvirtd defines about twice as fast from 8 connections as from 4, which alone stayed below 1,000/s
   here), every domain's events counted on the WebSocket, with when the inventory published the last one
   (the events' `ts`) to tell the inventory's lag from the gateway's; and, separately labelled, synthetic
   events published into FLINT_EVENTS (the gateway's fan-out alone). Target >= 1,000 events/s.

Starts `flint up` on free loopback ports with a temporary data dir, unless FLINT_URL and FLINT_TOKEN point
at a running stack (then FLINT_NATS_URL with FLINT_NATS_CREDS, a system-role credentials file, enable the
synthetic fan-out figure). Either way it
defines its own `bench-inv-NNNN` domains (64 MiB, 1 vCPU, no disks or NICs; never started) and undefines
them at the end, also on Ctrl-C or SIGTERM; leftovers of an earlier run are removed first.
Progress goes to stderr; the figures are the last lines on stdout.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import sys
import tempfile
import threading
import time
import uuid as uuidlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import libvirt
import msgspec
from lxml import etree
from websockets.sync.client import connect as ws_connect

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import Figure  # noqa: E402
from bench.stack import PASSWORD, start_stack, stop_stack  # noqa: E402

URI = "qemu:///system"
PREFIX = "bench-inv-"
N_DOMAINS = 1000
API_REQUESTS = 200
WALKS = 20
LATENCY_ROUNDS = 100  # define + undefine each: 200 samples
BURST = 1000  # domains defined, then undefined, in the burst: 2,000 events
BURST_THREADS = 8
SYNTHETIC = 5000
DEFINE_THREADS = 4

EV_DEFINED = libvirt.VIR_DOMAIN_EVENT_DEFINED
EV_UNDEFINED = libvirt.VIR_DOMAIN_EVENT_UNDEFINED


def say(*args: object) -> None:
    print("[inventory bench]", *args, file=sys.stderr, flush=True)


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(values)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def domain_xml(name: str, uuid: str) -> str:
    dom = etree.Element("domain", type="qemu")
    etree.SubElement(dom, "name").text = name
    etree.SubElement(dom, "uuid").text = uuid
    etree.SubElement(dom, "memory", unit="MiB").text = "64"
    etree.SubElement(dom, "vcpu").text = "1"
    os_ = etree.SubElement(dom, "os")
    etree.SubElement(os_, "type", arch="x86_64").text = "hvm"
    return etree.tostring(dom, encoding="unicode")


def bench_name(i: int) -> str:
    return f"{PREFIX}{i:04d}"


# ---- libvirt side ------------------------------------------------------------------------------------


class Recorder:
    """First arrival time per key, shared between a producer thread and waiters."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.first: dict[tuple[str, object], float] = {}
        self.count = 0

    def record(self, key: tuple[str, object], t: float) -> None:
        with self.cond:
            self.count += 1
            if key not in self.first:
                self.first[key] = t
            self.cond.notify_all()

    def wait_all(self, keys, timeout: float) -> set:
        deadline = time.monotonic() + timeout
        with self.cond:
            remaining = {k for k in keys if k not in self.first}
            while remaining:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(min(left, 0.5))
                remaining = {k for k in remaining if k not in self.first}
            return remaining

    def get(self, key) -> float | None:
        with self.cond:
            return self.first.get(key)


class Listener:
    """This process's own lifecycle callback, dispatched by libvirt's default event loop in a thread."""

    def __init__(self) -> None:
        self.rec = Recorder()
        self.conn: libvirt.virConnect | None = None
        self.cb_id: int | None = None

    def start(self) -> None:
        self.conn = libvirt.open(URI)
        self.cb_id = self.conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._cb, None)

    def _cb(self, _conn, dom, event, _detail, _opaque) -> None:
        t = time.monotonic()
        if dom.name().startswith(PREFIX):
            self.rec.record((dom.UUIDString(), event), t)

    def stop(self) -> None:
        if self.conn is not None:
            try:
                if self.cb_id is not None:
                    self.conn.domainEventDeregisterAny(self.cb_id)
                self.conn.close()
            except libvirt.libvirtError:
                pass
            self.conn = None


def start_event_loop() -> None:
    libvirt.virEventRegisterDefaultImpl()  # before any connection is opened

    def run() -> None:
        while True:
            libvirt.virEventRunDefaultImpl()

    threading.Thread(target=run, name="libvirt-events", daemon=True).start()


_local = threading.local()


def thread_conn() -> libvirt.virConnect:
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = _local.conn = libvirt.open(URI)
    return conn


def define(name: str, uuid: str) -> float:
    """Define one domain; returns the monotonic time the call returned."""
    thread_conn().defineXML(domain_xml(name, uuid))
    return time.monotonic()


def undefine(uuid: str) -> float:
    thread_conn().lookupByUUIDString(uuid).undefine()
    return time.monotonic()


def open_retrying(timeout: float = 60.0) -> libvirt.virConnect:
    """A fresh connection; waits for libvirtd when it is restarting (cleanup must not give up early)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return libvirt.open(URI)
        except libvirt.libvirtError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def remove_bench_domains() -> int:
    """Undefine every bench-inv-* domain, on fresh connections (the run's own may be broken)."""
    conn = open_retrying()
    try:
        doms = [d.name() for d in conn.listAllDomains() if d.name().startswith(PREFIX)]
    finally:
        conn.close()
    local = threading.local()
    opened: list[libvirt.virConnect] = []

    def rm(name: str) -> None:
        if getattr(local, "conn", None) is None:
            local.conn = open_retrying()
            opened.append(local.conn)
        try:
            dom = local.conn.lookupByName(name)
            if dom.isActive():
                dom.destroy()
            dom.undefine()
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                say(f"could not remove {name}: {exc.get_error_message()}")

    try:
        with ThreadPoolExecutor(DEFINE_THREADS) as pool:
            list(pool.map(rm, doms))
    finally:
        for c in opened:
            try:
                c.close()
            except libvirt.libvirtError:
                pass
    return len(doms)


def naive_walk(conn: libvirt.virConnect) -> int:
    """What a manager without an inventory does per request: ask libvirt about every domain."""
    n = 0
    for dom in conn.listAllDomains(0):
        try:
            dom.XMLDesc(0)
            dom.state()
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:  # undefined meanwhile by someone else
                raise
            continue
        n += 1
    return n


# ---- Flint side ----------------------------------------------------------------------------------------


class _Msg(msgspec.Struct):
    kind: str = ""
    id: str = ""
    type: str = ""
    seq: int = 0
    ts: float = 0.0  # wall clock when the inventory published it


class WsClient:
    """One /api/v1/events connection; records when each (id, type) first arrives."""

    def __init__(self, base: str, token: str) -> None:
        self.url = base.replace("http://", "ws://").replace("https://", "wss://") + "/api/v1/events"
        self.token = token
        self.rec = Recorder()
        self.published = Recorder()  # (id, type) -> when the inventory published it, on this clock
        self.closed: str | None = None
        self.messages = 0
        self._dec = msgspec.json.Decoder(_Msg)

    def start(self) -> None:
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), name="ws-reader", daemon=True).start()
        if not ready.wait(30) or self.closed:
            raise SystemExit(f"no snapshot from {self.url}: {self.closed or 'timeout'}")

    def _run(self, ready: threading.Event) -> None:
        try:
            with ws_connect(self.url, additional_headers={"Authorization": f"Bearer {self.token}"},
                            open_timeout=15, max_size=None, max_queue=None) as ws:
                self.ws = ws
                first = self._dec.decode(ws.recv(timeout=30))
                if first.kind != "snapshot":
                    raise RuntimeError(f"expected a snapshot first, got {first.kind!r}")
                ready.set()
                offset = time.monotonic() - time.time()
                for raw in ws:
                    t = time.monotonic()
                    msg = self._dec.decode(raw)
                    self.messages += 1
                    self.rec.record((msg.id, msg.type), t)
                    self.published.record((msg.id, msg.type), msg.ts + offset)
                self.closed = f"closed ({ws.close_code} {ws.close_reason})"
        except Exception as exc:  # noqa: BLE001 - reported with the figures
            self.closed = repr(exc)
        finally:
            ready.set()

    def close(self) -> None:
        ws = getattr(self, "ws", None)
        if ws is not None:
            try:
                ws.close()
            except Exception:  # noqa: BLE001
                pass


def make_token(base: str) -> str:
    client = httpx.Client(base_url=base, timeout=30)
    r = client.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})
    r.raise_for_status()
    client.headers["X-CSRF-Token"] = client.cookies["flint_csrf"]
    r = client.post("/api/v1/auth/tokens", json={"name": "bench-inventory", "role": "viewer", "expires_in_days": 1})
    r.raise_for_status()
    return r.json()["token"]


def listed(api: httpx.Client) -> int:
    r = api.get("/api/v1/vms", params={"limit": 5000, "q": PREFIX})
    r.raise_for_status()
    return sum(1 for v in r.json()["items"] if v["name"].startswith(PREFIX))


# ---- the figures -----------------------------------------------------------------------------------------


def figure_list(api: httpx.Client, walk_conn: libvirt.virConnect, catch_up_s: float, define_s: float) -> list[Figure]:
    api_times: list[float] = []
    walk_times: list[float] = []
    sizes = set()
    for _ in range(5):  # warm up both sides
        api.get("/api/v1/vms", params={"limit": 5000}).raise_for_status()
    naive_walk(walk_conn)
    per_round_api, rounds = API_REQUESTS // 10, 10
    for _ in range(rounds):  # interleaved, so both see the same background load
        for _ in range(per_round_api):
            t0 = time.perf_counter()
            r = api.get("/api/v1/vms", params={"limit": 5000})
            api_times.append(time.perf_counter() - t0)
            r.raise_for_status()
            sizes.add(len(r.content))
        for _ in range(WALKS // rounds):
            t0 = time.perf_counter()
            n = naive_walk(walk_conn)
            walk_times.append(time.perf_counter() - t0)
    total = r.json()["total"]
    a50, a99, w50, w99 = pct(api_times, 50), pct(api_times, 99), pct(walk_times, 50), pct(walk_times, 99)
    return [
        Figure("vms_list_p50_1000_domains", ms(a50), "ms", baseline=ms(w50), ratio=round(a50 / w50, 3),
               target="<= 0.25 x the libvirt walk", ok=a50 <= 0.25 * w50,
               note=f"GET /api/v1/vms?limit=5000, {API_REQUESTS} requests, bearer token, keep-alive, "
                    f"{total} VMs, {max(sizes) // 1024} KiB; baseline: listAllDomains + XMLDesc + state() "
                    f"of all {n} domains, {WALKS} walks, same run"),
        Figure("vms_list_p99_1000_domains", ms(a99), "ms", baseline=ms(w99), ratio=round(a99 / w99, 3),
               note="same requests as the p50 figure"),
        Figure("inventory_lists_all_after_define", round(catch_up_s, 2), "s", baseline=round(define_s, 2),
               note=f"time from the last of {N_DOMAINS} defines returning until GET /api/v1/vms listed all "
                    f"of them; baseline: defining them ({DEFINE_THREADS} threads)"),
    ]


def figure_latency(listener: Listener, ws: WsClient) -> list[Figure]:
    cb_lat: list[float] = []  # t_callback - t_call_return
    ws_lat: list[float] = []  # t_ws - t_callback
    e2e: list[float] = []  # t_ws - t_call_return
    lost = 0
    for i in range(LATENCY_ROUNDS):
        uuid = str(uuidlib.uuid4())
        for op, ev, typ in (("define", EV_DEFINED, "updated"), ("undefine", EV_UNDEFINED, "deleted")):
            t_call = define(bench_name(5000 + i), uuid) if op == "define" else undefine(uuid)
            missing = listener.rec.wait_all([(uuid, ev)], 5) | ws.rec.wait_all([(uuid, typ)], 5)
            if missing:
                lost += 1
                continue
            t_cb, t_ws = listener.rec.get((uuid, ev)), ws.rec.get((uuid, typ))
            cb_lat.append(t_cb - t_call)
            ws_lat.append(t_ws - t_cb)
            e2e.append(t_ws - t_call)
    if not ws_lat:
        return [Figure("event_latency_ws_p99", -1, "ms", ok=False, note=f"no event arrived ({lost} lost)")]
    w50, w99, c50, c99 = pct(ws_lat, 50), pct(ws_lat, 99), pct(cb_lat, 50), pct(cb_lat, 99)
    n = len(ws_lat)
    return [
        Figure("event_latency_callback_to_ws_p50", ms(w50), "ms", baseline=ms(c50),
               note=f"{n} define/undefine events one at a time; value: t_ws - t_callback (this process's own "
                    f"libvirt callback); baseline: the callback's own latency, t_callback - t_call_return"),
        Figure("event_latency_callback_to_ws_p99", ms(w99), "ms", baseline=ms(c99),
               target="<= 20 ms beyond the callback's own p99", ok=w99 <= 0.020 and lost == 0,
               note=f"end to end (t_ws - t_call_return) p50 {ms(pct(e2e, 50))} ms, p99 {ms(pct(e2e, 99))} ms, "
                    f"i.e. {ms(pct(e2e, 99) - c99)} ms beyond the callback's p99; max {ms(max(ws_lat))} ms; "
                    f"events that never arrived: {lost}"),
    ]


def _parallel(fn, items: list, threads: int) -> None:
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda chunk: [fn(*it) for it in chunk], [items[k::threads] for k in range(threads)]))


def figure_burst(listener: Listener, ws: WsClient) -> tuple[Figure, float]:
    doms = [(bench_name(2000 + i), str(uuidlib.uuid4())) for i in range(BURST)]
    uuids = [u for _, u in doms]
    phases = []
    for label, fn, items, ev, typ in (
        ("define", define, doms, EV_DEFINED, "updated"),
        ("undefine", undefine, [(u,) for u in uuids], EV_UNDEFINED, "deleted"),
    ):
        t0 = time.monotonic()
        _parallel(fn, items, BURST_THREADS)
        t_ops = time.monotonic()
        cb_missing = listener.rec.wait_all([(u, ev) for u in uuids], 30)
        ws_missing = ws.rec.wait_all([(u, typ) for u in uuids], 60)
        t_cb = max((listener.rec.get((u, ev)) or t0) for u in uuids)
        t_ws = max((ws.rec.get((u, typ)) or t0) for u in uuids)
        t_pub = max((ws.published.get((u, typ)) or t0) for u in uuids)
        phases.append((label, t_ops - t0, t_cb - t0, t_ws - t0, len(cb_missing), len(ws_missing), t_pub - t0))
        say(f"burst {label}: ops {t_ops - t0:.2f} s, last callback {t_cb - t0:.2f} s, last published by the "
            f"inventory {t_pub - t0:.2f} s, last WS event {t_ws - t0:.2f} s, missing callbacks {len(cb_missing)}, "
            f"missing on WS {len(ws_missing)}")
    events = 2 * BURST
    ws_time = sum(p[3] for p in phases)
    cb_time = sum(p[2] for p in phases)
    lost = sum(p[5] for p in phases)
    rate, libvirt_rate = events / ws_time, events / cb_time
    detail = "; ".join(f"{p[0]}: ops done {p[1]:.2f} s, last callback {p[2]:.2f} s, last published by the "
                       f"inventory {p[6]:.2f} s, last WS {p[3]:.2f} s" for p in phases)
    source_note = ("libvirt itself produced fewer than 1,000 events/s here, so this figure is bounded by the "
                   "source; see the synthetic figure for the gateway's own capacity; "
                   if libvirt_rate < 1000 else "")
    return Figure("events_per_s_libvirt_to_ws", round(rate), "events/s", baseline=round(libvirt_rate),
                  ratio=round(rate / libvirt_rate, 3), target=">= 1000 events/s, none lost",
                  ok=rate >= 1000 and lost == 0,
                  note=f"{BURST} domains defined then undefined from {BURST_THREADS} threads on real libvirtd "
                       f"({events} lifecycle events); lost on the WebSocket: {lost}; baseline: the rate this "
                       f"process's own libvirt callback saw them; {source_note}{detail}"), libvirt_rate


async def _publish_synthetic(nats_url: str, creds: str | None, run: str) -> tuple[list[str], float, float]:
    import nats

    from flint import bus, subjects
    from flint.contracts.events import Event

    nc = await nats.connect(nats_url, name="bench-inventory", **bus.credential_options(creds))
    js = nc.jetstream()
    ids = [f"synth-{run}-{i}" for i in range(SYNTHETIC)]
    enc = msgspec.json.Encoder()
    t0 = time.monotonic()
    window = 256
    for k in range(0, len(ids), window):
        await asyncio.gather(*(
            js.publish(subjects.event("bench", "domain", i),
                       enc.encode(Event(host="bench", kind="domain", id=i, type="deleted", ts=time.time(),
                                        data={"id": i})))
            for i in ids[k : k + window]
        ))
    t_pub = time.monotonic()
    await nc.close()
    return ids, t0, t_pub


def figure_synthetic(ws: WsClient, nats_url: str | None, creds: str | None) -> Figure:
    if not nats_url:
        return Figure("events_per_s_gateway_fanout_synthetic", -1, "events/s", target=">= 1000 events/s",
                      note="skipped: set FLINT_NATS_URL (and FLINT_NATS_CREDS, system role) to measure the "
                           "gateway's fan-out with synthetic events")
    run = uuidlib.uuid4().hex[:8]
    ids, t0, t_pub = asyncio.run(_publish_synthetic(nats_url, creds, run))
    missing = ws.rec.wait_all([(i, "deleted") for i in ids], 60)
    t_last = max((ws.rec.get((i, "deleted")) or t0) for i in ids)
    rate, pub_rate = SYNTHETIC / (t_last - t0), SYNTHETIC / (t_pub - t0)
    return Figure("events_per_s_gateway_fanout_synthetic", round(rate), "events/s", baseline=round(pub_rate),
                  ratio=round(rate / pub_rate, 3), target=">= 1000 events/s, none lost",
                  ok=rate >= 1000 and not missing,
                  note=f"SYNTHETIC: {SYNTHETIC} events (host 'bench', type deleted) published into FLINT_EVENTS "
                       f"with nats-py (acknowledged, 256 in flight), counted on the WebSocket; no libvirt "
                       f"involved; lost: {len(missing)}; baseline: the publish rate itself"
                       + (f"; WebSocket closed: {ws.closed}" if ws.closed else ""))


# ---- main ------------------------------------------------------------------------------------------------


def main() -> list[Figure]:
    def on_term(_sig, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)  # also when started with SIGINT ignored (a background job)
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    load = os.getloadavg()[0]  # shared build machines: say how busy this one was
    start_event_loop()
    left = remove_bench_domains()
    if left:
        say(f"removed {left} leftover {PREFIX}* domains")

    tmp = proc = None
    figures: list[Figure] = []
    listener = Listener()
    ws: WsClient | None = None
    try:
        if os.environ.get("FLINT_URL") and os.environ.get("FLINT_TOKEN"):
            base, token = os.environ["FLINT_URL"].rstrip("/"), os.environ["FLINT_TOKEN"]
            nats_url, creds = os.environ.get("FLINT_NATS_URL"), os.environ.get("FLINT_NATS_CREDS")
            say(f"using the running stack at {base}")
        else:
            tmp = tempfile.TemporaryDirectory(prefix="flint-bench-inv-")
            proc, base, nats_url, up_s = start_stack(Path(tmp.name))
            # flint up's NATS refuses anonymous clients: the synthetic publisher uses the system credentials
            creds = str(next(Path(tmp.name).rglob("system.creds"), "")) or None
            token = make_token(base)
            say(f"flint up healthy in {up_s:.1f} s at {base}")
        api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        listener.start()
        ws = WsClient(base, token)
        ws.start()

        # 1,000 domains
        doms = [(bench_name(i), str(uuidlib.uuid4())) for i in range(N_DOMAINS)]
        t0 = time.monotonic()
        _parallel(define, doms, DEFINE_THREADS)
        t_defined = time.monotonic()
        say(f"defined {N_DOMAINS} domains in {t_defined - t0:.2f} s")
        missing = ws.rec.wait_all([(u, "updated") for _, u in doms], 120)
        t_ws_all = time.monotonic()
        deadline = time.monotonic() + 60
        while (count := listed(api)) < N_DOMAINS and time.monotonic() < deadline:
            time.sleep(0.05)
        t_listed = time.monotonic()
        if count < N_DOMAINS:
            raise SystemExit(f"the API lists only {count} of {N_DOMAINS} bench domains after 3 minutes")
        say(f"WebSocket had all {N_DOMAINS} after {t_ws_all - t_defined:.2f} s (missing {len(missing)}), "
            f"the API listed all after {t_listed - t_defined:.2f} s")

        walk_conn = libvirt.open(URI)
        figures += figure_list(api, walk_conn, t_listed - t_defined, t_defined - t0)
        walk_conn.close()
        say("figure 1 done")
        figures += figure_latency(listener, ws)
        say("figure 2 done")
        burst, _ = figure_burst(listener, ws)
        figures.append(burst)
        figures.append(figure_synthetic(ws, nats_url, creds))
        say("figure 3 done")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):  # cleanup is the promise: let it finish
            signal.signal(sig, signal.SIG_IGN)
        if ws is not None:
            ws.close()
        listener.stop()
        t = time.monotonic()
        n = remove_bench_domains()
        say(f"undefined {n} {PREFIX}* domains in {time.monotonic() - t:.1f} s")
        if proc is not None:
            stop_stack(proc)
        if tmp is not None:
            tmp.cleanup()
    load = max(load, os.getloadavg()[0])
    for f in figures:
        f.note = f"{f.note}; " if f.note else ""
        f.note += f"machine load (1-min average, {os.cpu_count()} cores): up to {load:.1f}"
        f.emit()
    return figures


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        say("interrupted; the bench domains were removed")
        sys.exit(130)
