"""VNC console relay figures against websockify alone, in the same run, on the same VMs' VNC ports.

Paths measured (the same RFB client code for each, all on loopback):
- websockify: the `websockify` CLI with a token file pointing at the bench VMs' VNC ports (the baseline);
- flint: a ticket from POST /api/v1/vms/{id}/console, then the gateway's /api/v1/console WebSocket, which
  proxies to the console service's websockify (the same-machine "direct" relay);
- flint over NATS (informational; only when this script starts the stack): a second gateway on the same
  NATS with FLINT_CONSOLE_RELAY=nats, as for a host whose websockify the gateway cannot reach.

Figures:
1. Throughput with twenty consoles open at once (5 TCG guests booted from ipxe.iso, 4 shared VNC clients
   each): every client asks for the whole screen in raw encoding again as soon as the last one arrived;
   bytes per second over all clients. Target >= 0.8 x websockify. Also one console alone.
2. Added latency: an RFB round trip that QEMU answers at once (SetEncodings with the QEMU extended key
   event pseudo-encoding: QEMU acknowledges it with a one-rectangle FramebufferUpdate, no refresh timer
   involved), p50 and p99 on one console; target: added p50 <= 2 ms. Also with the other nineteen
   consoles streaming.
3. Time to open a console: POST + WebSocket + RFB banner, against websockify's connect + banner.
Rounds alternate between the paths so a busy machine weighs on both alike.

Starts `flint up` on free loopback ports with a temporary data dir, unless FLINT_URL and FLINT_TOKEN (an
operator token) point at a running stack. Either way it starts its own `bench-cons-NN` guests and removes
them at the end (also on Ctrl-C or SIGTERM); leftovers of runs that died are removed first, and runs at
the same time leave each other's guests alone (the names carry the pid: bench-cons-<pid>-NN).
Progress goes to stderr; the figures are the last lines on stdout.
"""

from __future__ import annotations

import asyncio
import faulthandler
import math
import multiprocessing
import os
import queue
import re
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import Figure, comm, descendants  # noqa: E402
from bench.stack import PASSWORD, free_port, start_stack, stop_stack  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
URI = "qemu:///system"
PREFIX = "bench-cons-"
IPXE_ISO = "/usr/lib/ipxe/ipxe.iso"
N_VMS = 5
PER_VM = 4  # 20 consoles
ROUNDS = 5
THROUGHPUT_S = 5.0
PROBES = 100  # per round and path
PROBE = struct.pack(">BxHi", 2, 1, -258)  # SetEncodings [QEMU extended key event]


def say(*args: object) -> None:
    print("[console bench]", *args, file=sys.stderr, flush=True)


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def virsh(*args: str, check: bool = True) -> str:
    proc = subprocess.run(["virsh", "-c", URI, *args], capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise RuntimeError(f"virsh {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


# ---- guests ------------------------------------------------------------------------------------------


def domain_xml(name: str) -> str:
    return (
        f"<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>"
        "<os><type arch='x86_64'>hvm</type><boot dev='cdrom'/></os><devices>"
        f"<disk type='file' device='cdrom'><source file='{IPXE_ISO}'/><target dev='hdc' bus='ide'/><readonly/></disk>"
        "<graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'/></devices></domain>"
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def remove_guests(only_ours: bool = False) -> int:
    """Our guests (bench-cons-<our pid>-NN), or with only_ours=False also those of runs that died; never
    those of another run still going (two runs at once must not destroy each other's guests)."""
    names = []
    for n in virsh("list", "--all", "--name").split():
        m = re.fullmatch(re.escape(PREFIX) + r"(\d+)-\d+", n)
        if m and (int(m.group(1)) == os.getpid() or (not only_ours and not _alive(int(m.group(1))))):
            names.append(n)
    procs = [subprocess.Popen(["virsh", "-c", URI, "destroy", n], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for n in names]
    for p in procs:
        p.wait(120)
    for n in names:
        virsh("undefine", n, check=False)
    return len(names)


def start_guests(tmp: Path) -> list[tuple[str, str, int]]:
    guests = []
    for i in range(N_VMS):
        name = f"{PREFIX}{os.getpid()}-{i:02d}"
        path = tmp / f"{name}.xml"
        path.write_text(domain_xml(name))
        virsh("define", str(path))
        virsh("start", name)
        uuid = virsh("domuuid", name).strip()
        port = int(re.search(r"<graphics type='vnc' port='(\d+)'", virsh("dumpxml", name)).group(1))
        guests.append((name, uuid, port))
    return guests


# ---- an RFB client over a WebSocket --------------------------------------------------------------------


class Rfb:
    def __init__(self, ws):
        self.ws = ws
        self.buf = bytearray()
        self.received = 0

    async def read(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = await self.ws.recv()
            self.received += len(chunk)
            self.buf += chunk
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    async def skip(self, n: int) -> None:
        while n:
            if not self.buf:
                chunk = await self.ws.recv()
                self.received += len(chunk)
                self.buf += chunk
            take = min(n, len(self.buf))
            del self.buf[:take]
            n -= take

    async def handshake(self) -> tuple[int, int]:
        assert (await self.read(12)).startswith(b"RFB 003.")
        await self.ws.send(b"RFB 003.008\n")
        await self.read((await self.read(1))[0])
        await self.ws.send(b"\x01")
        assert await self.read(4) == b"\0\0\0\0"
        await self.ws.send(b"\x01")  # shared
        width, height = struct.unpack(">HH", await self.read(4))
        await self.read(16)
        await self.read(struct.unpack(">I", await self.read(4))[0])
        await self.ws.send(struct.pack(">BxxxBBBBHHHBBBxxx", 0, 32, 24, 0, 1, 255, 255, 255, 16, 8, 0))
        await self.ws.send(struct.pack(">BxHi", 2, 1, 0))  # raw only
        return width, height

    async def update(self) -> None:
        """Read one server message (a FramebufferUpdate; others are skipped by their known sizes)."""
        kind = (await self.read(1))[0]
        if kind == 2:  # bell
            return
        if kind == 3:  # cut text
            await self.read(3)
            await self.skip(struct.unpack(">I", await self.read(4))[0])
            return
        if kind != 0:
            raise RuntimeError(f"unexpected RFB message {kind}")
        await self.read(1)
        (rects,) = struct.unpack(">H", await self.read(2))
        for _ in range(rects):
            _, _, w, h, enc = struct.unpack(">HHHHi", await self.read(12))
            if enc == 0:
                await self.skip(w * h * 4)

    async def full_frame(self, width: int, height: int) -> None:
        await self.ws.send(struct.pack(">BBHHHH", 3, 0, 0, 0, width, height))
        await self.update()

    async def probe(self) -> float:
        t = time.perf_counter()
        await self.ws.send(PROBE)
        await self.update()
        return time.perf_counter() - t


class Path_:
    """How a client reaches console number i: (url, headers) made fresh for each connection."""

    def __init__(self, name: str, base: str, token: str | None, guests, ws_port: int | None = None):
        self.name, self.base, self.token, self.guests, self.ws_port = name, base, token, guests, ws_port

    def connect_args(self, i: int) -> tuple[str, dict]:
        name, uuid, _ = self.guests[i % len(self.guests)]
        if self.ws_port is not None:
            return f"ws://127.0.0.1:{self.ws_port}/?token={name}", {}
        headers = {"Authorization": f"Bearer {self.token}"}
        deadline = time.monotonic() + 60
        while True:  # 503 while the console service reconnects to a restarted libvirtd: ask again
            r = httpx.post(f"{self.base}/api/v1/vms/{uuid}/console", json={"type": "vnc"}, headers=headers, timeout=30)
            if r.status_code != 503 or time.monotonic() > deadline:
                break
            time.sleep(1)
        r.raise_for_status()
        return self.base.replace("http://", "ws://") + r.json()["url"], headers


async def _open(path: Path_, i: int) -> Rfb:
    url, headers = await asyncio.to_thread(path.connect_args, i)
    ws = await websockets.connect(url, additional_headers=headers, subprotocols=["binary"], max_size=None,
                                  compression=None, ping_interval=None, open_timeout=30, proxy=None)
    return Rfb(ws)


def _worker(path: Path_, indexes: list[int], seconds: float, start_at: float, results) -> None:
    """A client process: open its consoles, then stream full frames on each until the time is up."""

    async def go() -> int:
        rfbs = await asyncio.gather(*(_open(path, i) for i in indexes))
        sizes = await asyncio.wait_for(asyncio.gather(*(r.handshake() for r in rfbs)), 60)
        await asyncio.sleep(max(0.0, start_at - time.time()))
        stop = time.monotonic() + seconds
        counted = [0] * len(rfbs)

        async def stream(k: int) -> None:
            r, (w, h) = rfbs[k], sizes[k]
            while time.monotonic() < stop:
                before = r.received
                await asyncio.wait_for(r.full_frame(w, h), 30)
                counted[k] += r.received - before

        await asyncio.gather(*(stream(k) for k in range(len(rfbs))))
        for r in rfbs:
            await r.ws.close()
        return sum(counted)

    faulthandler.enable()  # a crash, or a hang past two minutes, leaves its stack on stderr
    faulthandler.dump_traceback_later(120, exit=True)
    try:
        results.put(asyncio.run(go()))
    except BaseException as exc:  # noqa: BLE001 - reported by the parent
        results.put(f"{path.name} client failed: {exc!r}")


def throughput(path: Path_, consoles: int, seconds: float) -> float:
    """Bytes per second over `consoles` clients in two processes (one client process would be the limit)."""
    # spawn, not fork: a child forked while a thread of ours held an OpenSSL lock hangs in httpx forever.
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    groups = [list(range(consoles))[k::2] for k in range(2)] if consoles > 1 else [[0]]
    start_at = time.time() + 3 + consoles * 0.3
    procs = [ctx.Process(target=_worker, args=(path, g, seconds, start_at, results), daemon=True)
             for g in groups if g]
    for p in procs:
        p.start()
    try:
        got = []
        for _ in procs:
            try:
                got.append(results.get(timeout=180))
            except queue.Empty:
                codes = [p.exitcode for p in procs]
                raise SystemExit(f"{path.name}: a client process gave no result (exit codes {codes})") from None
    finally:
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
    errors = [g for g in got if isinstance(g, str)]
    if errors:
        raise SystemExit("; ".join(errors))
    return sum(got) / seconds


async def latency(path: Path_, probes: int, background: int = 0) -> tuple[list[float], float]:
    """Probe round trips on console 0, with `background` other consoles streaming meanwhile; and the time
    from asking for the console to the RFB banner."""
    t = time.perf_counter()
    r = await _open(path, 0)
    await r.read(12)
    r.buf = bytearray(b"RFB 003.008\n") + r.buf
    opened = time.perf_counter() - t
    await r.handshake()
    others: list[asyncio.Task] = []
    streams: list[Rfb] = []
    stop = asyncio.Event()
    if background:
        streams = await asyncio.gather(*(_open(path, i) for i in range(1, background + 1)))

        async def stream(s: Rfb) -> None:
            w, h = await s.handshake()
            while not stop.is_set():
                await s.full_frame(w, h)

        others = [asyncio.create_task(stream(s)) for s in streams]
        await asyncio.sleep(1.0)
    for _ in range(10):
        await r.probe()  # warm up
    samples = [await r.probe() for _ in range(probes)]
    stop.set()
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)
    # Close every console: QEMU takes 32 VNC clients per VM by default, and leaks add up over the rounds.
    await asyncio.gather(*(s.ws.close() for s in [r, *streams]), return_exceptions=True)
    return samples, opened


# ---- main ----------------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system time of a process and of its children it has waited for (websockify's forks)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def gateway_pid(stack: subprocess.Popen | None) -> int | None:
    if stack is None:
        return None
    return next((p for p in descendants(stack.pid) if comm(p).endswith("-m gateway")), None)


def start_websockify(guests, tmp: Path) -> tuple[subprocess.Popen, int]:
    tokens = tmp / "tokens"
    tokens.write_text("".join(f"{name}: 127.0.0.1:{port}\n" for name, _, port in guests))
    port = free_port()
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "websockify"), f"127.0.0.1:{port}", "--token-plugin", "TokenFile",
         "--token-source", str(tokens)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with __import__("socket").create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, port
        except OSError:
            time.sleep(0.1)
    raise SystemExit("websockify did not start")


def start_nats_gateway(data: Path, nats_url: str) -> tuple[subprocess.Popen, str]:
    """A second gateway on the same NATS that relays every console over NATS."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLINT_")}
    creds = next(data.rglob("system.creds"), None)
    env.update(FLINT_NATS_URL=nats_url, FLINT_BIND=f"127.0.0.1:{port}", FLINT_DATA_DIR=str(data / "gw2"),
               FLINT_CONSOLE_RELAY="nats", FLINT_LOG_FORMAT="json", **({"FLINT_NATS_CREDS": str(creds)} if creds else {}))
    proc = subprocess.Popen([sys.executable, "-m", "gateway"], env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/api/v1/health", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("the NATS-relay gateway did not start")


def make_token(base: str) -> str:
    client = httpx.Client(base_url=base, timeout=30)
    client.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}).raise_for_status()
    client.headers["X-CSRF-Token"] = client.cookies["flint_csrf"]
    r = client.post("/api/v1/auth/tokens", json={"name": "bench-console", "role": "operator", "expires_in_days": 1})
    r.raise_for_status()
    return r.json()["token"]


def wait_screens(guests, api: httpx.Client) -> None:
    """Until every guest runs in the API and has been up long enough to show iPXE."""
    deadline = time.monotonic() + 120
    for _, uuid, _ in guests:
        while True:
            r = api.get(f"/api/v1/vms/{uuid}")
            if r.status_code == 200 and r.json()["state"] == "running":
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"guest {uuid} not running in the API")
            time.sleep(0.2)
    time.sleep(8)  # TCG: SeaBIOS and iPXE draw their screens, then the guests sit idle


def main() -> list[Figure]:
    def on_term(_sig, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    load = os.getloadavg()[0]
    left = remove_guests()
    if left:
        say(f"removed {left} leftover {PREFIX}* guests")
    tmp = tempfile.TemporaryDirectory(prefix="flint-bench-cons-")
    procs: list[subprocess.Popen] = []
    stack = None
    figures: list[Figure] = []
    try:
        if os.environ.get("FLINT_URL") and os.environ.get("FLINT_TOKEN"):
            base, token = os.environ["FLINT_URL"].rstrip("/"), os.environ["FLINT_TOKEN"]
            nats_url = None
            say(f"using the running stack at {base}")
        else:
            (Path(tmp.name) / "stack").mkdir()
            stack, base, nats_url, up_s = start_stack(Path(tmp.name) / "stack")
            token = make_token(base)
            say(f"flint up healthy in {up_s:.1f} s at {base}")
        guests = start_guests(Path(tmp.name))
        api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        wait_screens(guests, api)
        ws_proc, ws_port = start_websockify(guests, Path(tmp.name))
        procs.append(ws_proc)
        paths = [Path_("websockify", "", None, guests, ws_port), Path_("flint", base, token, guests)]
        if nats_url is not None:
            gw2, base2 = start_nats_gateway(Path(tmp.name) / "stack", nats_url)
            procs.append(gw2)
            paths.append(Path_("flint-nats", base2, token, guests))
        say(f"{N_VMS} guests, {N_VMS * PER_VM} consoles; paths: {', '.join(p.name for p in paths)}")

        consoles = N_VMS * PER_VM
        tput20 = {p.name: [] for p in paths}
        tput1 = {p.name: [] for p in paths}
        lat = {p.name: [] for p in paths}
        lat_busy = {p.name: [] for p in paths}
        opened = {p.name: [] for p in paths}
        gw_pid = gateway_pid(stack)
        gw_cpu = gw_bytes = 0.0
        for rnd in range(ROUNDS):
            order = paths if rnd % 2 == 0 else list(reversed(paths))
            for p in order:
                cpu0 = cpu_seconds(gw_pid) if gw_pid and p.name == "flint" else 0.0
                tput20[p.name].append(throughput(p, consoles, THROUGHPUT_S))
                if gw_pid and p.name == "flint":
                    gw_cpu += cpu_seconds(gw_pid) - cpu0
                    gw_bytes += tput20[p.name][-1] * THROUGHPUT_S
                tput1[p.name].append(throughput(p, 1, THROUGHPUT_S / 2))
                samples, t_open = asyncio.run(asyncio.wait_for(latency(p, PROBES), 120))
                lat[p.name] += samples
                opened[p.name].append(t_open)
                samples, _ = asyncio.run(asyncio.wait_for(latency(p, PROBES // 3, background=consoles - 1), 180))
                lat_busy[p.name] += samples
                say(f"round {rnd + 1} {p.name}: {tput20[p.name][-1] / 1e6:.1f} MB/s with {consoles} consoles, "
                    f"{tput1[p.name][-1] / 1e6:.1f} MB/s alone, p50 {pct(lat[p.name], 50) * 1e3:.3f} ms")

        def mean(xs):
            return sum(xs) / len(xs)

        def ratio(name: str, series: dict) -> float:
            """The median of the per-round ratios: each round's paths ran back to back, so a burst of
            load from elsewhere on a shared machine spoils one ratio, not the figure."""
            return round(pct([a / b for a, b in zip(series[name], series["websockify"], strict=True)], 50), 2)

        base_t20, base_t1 = mean(tput20["websockify"]), mean(tput1["websockify"])
        base_p50, base_p99 = pct(lat["websockify"], 50), pct(lat["websockify"], 99)
        base_busy = pct(lat_busy["websockify"], 50)
        for name, informational in (("flint", False), ("flint-nats", True)):
            if name not in tput20:
                continue
            label = "" if name == "flint" else " over NATS"
            note = "informational: the relay for hosts whose websockify the gateway cannot reach" if informational else ""
            t20, t1 = mean(tput20[name]), mean(tput1[name])
            p50, p99, busy = pct(lat[name], 50), pct(lat[name], 99), pct(lat_busy[name], 50)
            ratio20, ratio1 = ratio(name, tput20), ratio(name, tput1)
            added = round((p50 - base_p50) * 1e3, 3)
            figures += [
                Figure(f"console throughput{label}, {consoles} consoles at once", round(t20 / 1e6, 1), "MB/s",
                       round(base_t20 / 1e6, 1), ratio20, None if informational else ">= 0.8 x websockify",
                       None if informational else ratio20 >= 0.8,
                       note or "raw full frames, all clients together; ratio: median of the rounds' ratios"),
                Figure(f"console throughput{label}, one console", round(t1 / 1e6, 1), "MB/s", round(base_t1 / 1e6, 1),
                       ratio1, None if informational else ">= 0.8 x websockify",
                       None if informational else ratio1 >= 0.8, note or "QEMU's refresh timer sets the pace"),
                Figure(f"console added latency p50{label}", added, "ms", round(base_p50 * 1e3, 3), None,
                       None if informational else "<= 2 ms", None if informational else added <= 2.0,
                       note or f"RFB round trip QEMU answers at once; flint p50 {p50 * 1e3:.3f} ms"),
                Figure(f"console added latency p99{label}", round((p99 - base_p99) * 1e3, 3), "ms",
                       round(base_p99 * 1e3, 3), None, None, None, note or f"flint p99 {p99 * 1e3:.3f} ms"),
                Figure(f"console added latency p50{label}, {consoles - 1} other consoles streaming",
                       round((busy - base_busy) * 1e3, 3), "ms", round(base_busy * 1e3, 3), None, None, None,
                       note or f"flint p50 {busy * 1e3:.3f} ms"),
                Figure(f"console open{label} (ticket + WebSocket + RFB banner)",
                       round(pct(opened[name], 50) * 1e3, 1), "ms", round(pct(opened["websockify"], 50) * 1e3, 1),
                       None, None, None, note or "median; websockify: connect + banner with a token file"),
            ]
        if gw_pid and gw_bytes:
            figures.append(Figure("gateway CPU per GB relayed (20 consoles)", round(gw_cpu / (gw_bytes / 1e9), 2),
                                  "CPU s/GB", None, None, None, None,
                                  "the gateway's own user+system time while relaying (the added hop)"))
    except BaseException:
        log = Path(tmp.name) / "stack" / "up.log"
        if log.exists():  # what the stack said about consoles, before the temporary directory goes
            lines = [ln for ln in log.read_text(errors="replace").splitlines() if "console" in ln or "error" in ln]
            say("stack log (console lines):\n" + "\n".join(lines[-40:]))
        raise
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        n = remove_guests(only_ours=True)
        say(f"removed our {n} guests")
        if stack is not None:
            stop_stack(stack)
        tmp.cleanup()
    load = max(load, os.getloadavg()[0])
    for f in figures:
        f.note = f"{f.note}; " if f.note else ""
        f.note += f"machine load (1-min average, {os.cpu_count()} cores): up to {load:.1f}"
        f.emit()
    return figures


if __name__ == "__main__":
    main()
