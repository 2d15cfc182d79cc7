"""Many hosts: 50 test-driver hosts x 200 VMs (10,000 VMs) in one gateway.

Each host is libvirt's test driver loaded from a generated XML file (`test:///<dir>/scale-NN.xml`: 200
domains, two thirds running, one dir pool, one network), served by its own inventory service
(`python -m services.inventory` with FLINT_HOST=scale-NN, as `flint agent` or the supervisor would run it).
Only the inventory runs per host: it is what feeds the figures below; provisioner, console and firewall
add memory but nothing to these reads. One nats-server (JetStream, temporary store) and one gateway.

Figures (targets from issue #8):
- `scale_inventory_complete_s`: from spawning the 50 inventory processes until `GET /api/v1/vms` counts
  all 10,000 VMs and `/api/v1/hosts` all 50 hosts. Target <= 10 s. The note splits it: when the last
  process answered its health request (Python start-up and libvirt connect on this machine's cores) and
  how long after that the list was complete.
- `scale_vms_page_p50_ms` (+ p99): `GET /api/v1/vms?limit=100&offset=<random>` (one page of the VM list),
  200 requests; baseline: `GET /api/v1/auth/me` (auth + routing + JSON, no inventory) in the same loop.
  Target p50 <= 50 ms. `scale_vms_all_p50_ms`: `?limit=5000` (the most a page may hold), no target.
- `scale_dashboard_p50_ms` (+ p99): what the dashboard asks for besides the VM list: `GET /api/v1/hosts`
  then `GET /api/v1/storage/summary`, both timed together. Target p50 <= 50 ms.
- `scale_events_snapshot_p50_ms`: the event WebSocket's first message (a snapshot of all VMs, hosts, pools
  and networks, which the UI's lists and dashboard are filled from), from connecting to parsed; no target.
- `scale_gateway_rss_mb`: the gateway's RSS with all 10,000 VMs in its view; baseline: its RSS before the
  first host started. The note gives the inventory processes' RSS and PSS in total and nats-server's RSS.

Progress goes to stderr; the figures are the last lines on stdout. `FLINT_BENCH_SCALE_HOSTS` and
`FLINT_BENCH_SCALE_VMS` change the size. Everything runs on loopback; no real libvirt object is made.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid as uuidlib
from pathlib import Path

import httpx
import nats
import websockets
from lxml import etree

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import Figure, memory_of  # noqa: E402
from bench.stack import PASSWORD, free_port  # noqa: E402
from flint import bus, subjects  # noqa: E402
from flint.contracts.common import Empty, ServiceError  # noqa: E402
from flint.contracts.health import HealthReply  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
N_HOSTS = int(os.environ.get("FLINT_BENCH_SCALE_HOSTS", "50"))
N_VMS = int(os.environ.get("FLINT_BENCH_SCALE_VMS", "200"))
REQUESTS = 200
NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
TEST_NS = "http://libvirt.org/schemas/domain/test/1.0"


def say(*args: object) -> None:
    print("[scale bench]", *args, file=sys.stderr, flush=True)


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def host_name(i: int) -> str:
    return f"scale-{i:02d}"


def host_xml(i: int, vms: int) -> bytes:
    """A test-driver node: `vms` domains (one in three shut off), a dir pool, a network without IP."""
    node = etree.Element("node", nsmap={"test": TEST_NS})
    cpu = etree.SubElement(node, "cpu")
    for tag, text in (("mhz", "2400"), ("model", "x86_64"), ("active", "32"), ("nodes", "1"), ("sockets", "2"),
                      ("cores", "16"), ("threads", "1")):
        etree.SubElement(cpu, tag).text = text
    etree.SubElement(node, "memory").text = str(256 * 1024 * 1024)  # KiB: 256 GiB
    rng = random.Random(i)
    for j in range(vms):
        name = f"vm-{i:02d}-{j:03d}"
        dom = etree.SubElement(node, "domain", type="test")
        etree.SubElement(dom, "name").text = name
        etree.SubElement(dom, "uuid").text = str(uuidlib.UUID(int=rng.getrandbits(128), version=4))
        etree.SubElement(dom, "memory", unit="MiB").text = "1024"
        etree.SubElement(dom, "currentMemory", unit="MiB").text = "1024"
        etree.SubElement(dom, "vcpu").text = "1"
        os_ = etree.SubElement(dom, "os")
        etree.SubElement(os_, "type", arch="x86_64").text = "hvm"
        devices = etree.SubElement(dom, "devices")
        disk = etree.SubElement(devices, "disk", type="file", device="disk")
        etree.SubElement(disk, "source", file=f"/scale/{name}.qcow2")
        etree.SubElement(disk, "target", dev="vda", bus="virtio")
        nic = etree.SubElement(devices, "interface", type="network")
        etree.SubElement(nic, "mac", address=f"52:54:00:{i:02x}:{j >> 8:02x}:{j & 0xff:02x}")
        etree.SubElement(nic, "source", network="isolated")
        etree.SubElement(nic, "model", type="virtio")
        etree.SubElement(dom, f"{{{TEST_NS}}}runstate").text = "5" if j % 3 == 0 else "1"
    pool = etree.SubElement(node, "pool", type="dir")
    etree.SubElement(pool, "name").text = "images"
    etree.SubElement(pool, "uuid").text = str(uuidlib.UUID(int=rng.getrandbits(128), version=4))
    for tag, gib in (("capacity", 1000), ("allocation", 200), ("available", 800)):
        etree.SubElement(pool, tag, unit="GiB").text = str(gib)
    etree.SubElement(etree.SubElement(pool, "target"), "path").text = "/scale"
    net = etree.SubElement(node, "network")
    etree.SubElement(net, "name").text = "isolated"
    etree.SubElement(net, "uuid").text = str(uuidlib.UUID(int=rng.getrandbits(128), version=4))
    etree.SubElement(net, "bridge", name=f"scalebr{i}", stp="on", delay="0")
    return etree.tostring(node, xml_declaration=True, encoding="utf-8")


class Procs:
    """Every process this bench starts, each in a session of its own, stopped on exit or signal."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
        proc = subprocess.Popen(argv, env=env, cwd=REPO, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 20
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLINT_")}
    env.update(FLINT_LOG_FORMAT="json", PYTHONUNBUFFERED="1", **extra)
    return env


async def wait_listed(api: httpx.AsyncClient, vms: int, hosts: int, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    last = (0, 0)
    while time.monotonic() < deadline:
        try:
            total = (await api.get("/api/v1/vms", params={"limit": 1})).json()["total"]
            n_hosts = len((await api.get("/api/v1/hosts")).json())
            last = (total, n_hosts)
            if total >= vms and n_hosts >= hosts:
                return time.monotonic()
        except (httpx.HTTPError, KeyError, ValueError):
            pass
        await asyncio.sleep(0.05)
    raise SystemExit(f"after {timeout} s the gateway lists {last[0]} of {vms} VMs and {last[1]} of {hosts} hosts")


async def wait_services(nats_url: str, hosts: list[str], timeout: float) -> float:
    """When the last inventory service answered its health request."""
    nc = await nats.connect(nats_url)
    waiting = set(hosts)
    deadline = time.monotonic() + timeout
    try:
        while waiting and time.monotonic() < deadline:
            async def ask(h: str) -> str | None:
                try:
                    await bus.request(nc, subjects.health(h, "inventory"), Empty(), HealthReply, 0.5)
                    return h
                except ServiceError:
                    return None

            for h in await asyncio.gather(*(ask(h) for h in waiting)):
                waiting.discard(h)
            if waiting:
                await asyncio.sleep(0.05)
        return time.monotonic()
    finally:
        await nc.close()


async def timed(api: httpx.AsyncClient, path: str, **params) -> float:
    t = time.perf_counter()
    resp = await api.get(path, params=params or None)
    elapsed = time.perf_counter() - t
    resp.raise_for_status()
    return elapsed


async def measure_reads(api: httpx.AsyncClient, total: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"page": [], "all": [], "dashboard": [], "floor": []}
    rng = random.Random(1)
    for i in range(REQUESTS):
        out["floor"].append(await timed(api, "/api/v1/auth/me"))
        out["page"].append(await timed(api, "/api/v1/vms", limit=100, offset=rng.randrange(0, max(1, total - 100))))
        t_hosts = await timed(api, "/api/v1/hosts")
        out["dashboard"].append(t_hosts + await timed(api, "/api/v1/storage/summary"))
        if i % 4 == 0:  # 50 of the big ones: each moves ~10 MB of JSON
            out["all"].append(await timed(api, "/api/v1/vms", limit=5000, offset=rng.choice((0, 5000))))
    return out


async def measure_snapshots(api: httpx.AsyncClient, rounds: int = 20) -> tuple[list[float], list[float], int]:
    """What the UI waits for before its lists and dashboard fill: the event WebSocket's first message, a
    snapshot of every VM, host, pool and network."""
    base = str(api.base_url).rstrip("/")
    cookie = "; ".join(f"{k}={v}" for k, v in api.cookies.items())
    times, closes, size = [], [], 0
    for _ in range(rounds):
        t = time.perf_counter()
        async with websockets.connect(base.replace("http://", "ws://") + "/api/v1/events", origin=base,
                                      additional_headers={"Cookie": cookie}, max_size=None,
                                      close_timeout=1) as ws:
            raw = await ws.recv()
            snapshot = json.loads(raw)
            times.append(time.perf_counter() - t)
            t_close = time.perf_counter()
        closes.append(time.perf_counter() - t_close)
        size = len(raw)
        assert snapshot["kind"] == "snapshot"
    return times, closes, size


def rss_pss(procs: list[subprocess.Popen]) -> tuple[int, int]:
    rss = pss = 0
    for p in procs:
        try:
            r, s = memory_of(p.pid)
        except OSError:
            continue
        rss, pss = rss + r, pss + s
    return rss, pss


async def run(tmp: Path, procs: Procs) -> list[Figure]:
    t = time.monotonic()
    hosts = [host_name(i) for i in range(N_HOSTS)]
    for i, h in enumerate(hosts):
        (tmp / f"{h}.xml").write_bytes(host_xml(i, N_VMS))
    say(f"{N_HOSTS} host files x {N_VMS} domains written in {time.monotonic() - t:.1f} s")

    nats_port, port = free_port(), free_port()
    nats_url = f"nats://127.0.0.1:{nats_port}"
    (tmp / "nats").mkdir()
    nats_proc = procs.start([NATS_SERVER, "-a", "127.0.0.1", "-p", str(nats_port), "-js", "-sd", str(tmp / "nats")],
                            os.environ.copy(), tmp / "nats.log")
    data = tmp / "data"
    data.mkdir()
    env = base_env(FLINT_NATS_URL=nats_url, FLINT_DATA_DIR=str(data), FLINT_ADMIN_PASSWORD=PASSWORD,
                   FLINT_BIND=f"127.0.0.1:{port}", FLINT_HOST=hosts[0], FLINT_LIBVIRT_URI=f"test://{tmp / hosts[0]}.xml")
    gateway = procs.start([sys.executable, "-m", "gateway"], env, tmp / "gateway.log")
    api = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30)
    deadline = time.monotonic() + 60
    while True:
        if gateway.poll() is not None:
            raise SystemExit(f"gateway exited:\n{(tmp / 'gateway.log').read_text()[-3000:]}")
        try:
            if (await api.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("gateway did not answer within 60 s")
        await asyncio.sleep(0.1)
    await asyncio.sleep(1)
    gw_rss_empty, _ = memory_of(gateway.pid)

    say(f"starting {N_HOSTS} inventory services")
    t0 = time.monotonic()
    inventories = [
        procs.start([sys.executable, "-m", "services.inventory"],
                    base_env(FLINT_NATS_URL=nats_url, FLINT_HOST=h, FLINT_LIBVIRT_URI=f"test://{tmp / h}.xml",
                             FLINT_VIRT_TYPE="qemu"),
                    tmp / f"inventory-{h}.log")
        for h in hosts
    ]
    services = asyncio.create_task(wait_services(nats_url, hosts, 180))
    t_listed = await wait_listed(api, N_HOSTS * N_VMS, N_HOSTS, 240)
    t_services = await services
    complete = t_listed - t0
    say(f"listed all after {complete:.1f} s; last service answered health after {t_services - t0:.1f} s")

    figures = [Figure(
        "scale_inventory_complete_s", round(complete, 2), "s", target="<= 10 s", ok=complete <= 10,
        note=(f"{N_HOSTS} hosts x {N_VMS} VMs, one inventory process per host, spawned together: the last "
              f"answered health {t_services - t0:.1f} s after the spawn, the list was complete "
              f"{t_listed - t_services:+.1f} s after that"),
    ).emit()]

    say("timing reads")
    total = (await api.get("/api/v1/vms", params={"limit": 1})).json()["total"]
    reads = await measure_reads(api, total)
    floor = pct(reads["floor"], 50) * 1000
    for key, name, target in (("page", "scale_vms_page", 50.0), ("dashboard", "scale_dashboard", 50.0),
                              ("all", "scale_vms_all", None)):
        p50, p99 = pct(reads[key], 50) * 1000, pct(reads[key], 99) * 1000
        what = {"page": "GET /api/v1/vms?limit=100&offset=random", "dashboard": "GET /api/v1/hosts + GET /api/v1/storage/summary",
                "all": "GET /api/v1/vms?limit=5000"}[key]
        figures.append(Figure(f"{name}_p50_ms", round(p50, 2), "ms", baseline=round(floor, 2), ratio=round(p50 / floor, 1),
                              target=f"<= {target:g} ms" if target else None, ok=(p50 <= target) if target else None,
                              note=f"{what}, {len(reads[key])} requests, {total} VMs; baseline GET /api/v1/auth/me p50").emit())
        figures.append(Figure(f"{name}_p99_ms", round(p99, 2), "ms").emit())

    snaps, closes, size = await measure_snapshots(api)
    p50 = pct(snaps, 50) * 1000
    figures.append(Figure("scale_events_snapshot_p50_ms", round(p50, 2), "ms", baseline=round(floor, 2),
                          ratio=round(p50 / floor, 1),
                          note=(f"WebSocket /api/v1/events from connect to its first message parsed: the snapshot the "
                                f"UI's lists and dashboard start from, {size / 2**20:.1f} MB of JSON, {len(snaps)} times; "
                                f"p99 {pct(snaps, 99) * 1000:.0f} ms; the client's close handshake then took "
                                f"p50 {pct(closes, 50) * 1000:.0f} ms (1 s = the gateway did not answer it)")).emit())

    gw_rss, gw_pss = memory_of(gateway.pid)
    inv_rss, inv_pss = rss_pss(inventories)
    nats_rss, _ = memory_of(nats_proc.pid)
    figures.append(Figure(
        "scale_gateway_rss_mb", round(gw_rss / 2**20, 1), "MB", baseline=round(gw_rss_empty / 2**20, 1),
        ratio=round(gw_rss / gw_rss_empty, 1),
        note=(f"with {total} VMs in its view; baseline: its RSS before any host; gateway PSS {gw_pss / 2**20:.0f} MB; "
              f"{N_HOSTS} inventory processes together RSS {inv_rss / 2**20:.0f} MB, PSS {inv_pss / 2**20:.0f} MB "
              f"({inv_pss / N_HOSTS / 2**20:.0f} MB PSS each); nats-server RSS {nats_rss / 2**20:.0f} MB"),
    ).emit())
    await api.aclose()
    return figures


def main() -> list[Figure]:
    procs = Procs()

    def on_signal(signum, _frame):
        procs.stop()
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    with tempfile.TemporaryDirectory(prefix="flint-bench-scale-") as tmp:
        try:
            return asyncio.run(run(Path(tmp), procs))
        finally:
            procs.stop()


if __name__ == "__main__":
    main()
