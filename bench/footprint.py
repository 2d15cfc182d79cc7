"""Idle memory of all Flint processes together and the time from `flint up` to healthy.

Runs `flint up` against the real libvirtd on free loopback ports with a temporary data dir (or, with
FLINT_URL set, only reports on nothing: this benchmark needs to start the stack itself).
Baseline: nats-server's own figures in the same run, for scale. Targets: <= 250 MB, <= 5 s."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import Figure, comm, descendants, memory_of  # noqa: E402
from bench.stack import PASSWORD, REPO, free_port  # noqa: E402


def start_stack(data: Path) -> tuple[subprocess.Popen, str, float, Path]:
    port, nats_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLINT_")}
    env.update(FLINT_DATA_DIR=str(data), FLINT_BIND=f"127.0.0.1:{port}", FLINT_NATS_PORT=str(nats_port),
               FLINT_ADMIN_PASSWORD=PASSWORD, FLINT_LOG_FORMAT="json")
    log = data / "up.log"
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "flint.cli.main", "up"], env=env, cwd=REPO,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=base, timeout=5)
    deadline = t0 + 120
    healthy_at = None
    logged_in = False
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"flint up exited:\n{log.read_text()[-3000:]}")
        try:
            if not logged_in:
                r = client.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})
                logged_in = r.status_code == 200
            if logged_in and client.get("/api/v1/health/details").json().get("status") == "ok":
                healthy_at = time.monotonic()
                break
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.05)
    if healthy_at is None:
        raise SystemExit(f"not healthy within 120 s:\n{log.read_text()[-3000:]}")
    return proc, base, healthy_at - t0, log


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(30)


def main() -> list[Figure]:
    figures = []
    with tempfile.TemporaryDirectory(prefix="flint-bench-") as tmp:
        data = Path(tmp)
        # First start: sets up JetStream storage and the admin user. Then the figure that counts:
        # a start "once set up", as a user restarts Flint.
        proc, _, first, _ = start_stack(data)
        stop(proc)
        proc, _, ready_s, _ = start_stack(data)
        time.sleep(10)  # idle
        flint_rss = flint_pss = 0
        nats_rss = 0
        parts = []
        for pid in [proc.pid, *descendants(proc.pid)]:
            cmd = comm(pid)
            try:
                rss, pss = memory_of(pid)
            except OSError:
                continue
            if "nats-server" in cmd:
                nats_rss += rss
                continue
            flint_rss += rss
            flint_pss += pss
            parts.append(f"{re.sub(r'^.*?-m ', '', cmd)} {rss / 2**20:.0f} MB")
        stop(proc)
    figures.append(Figure("flint_up_to_healthy", round(ready_s, 2), "s", target="<= 5 s", ok=ready_s <= 5,
                          note=f"first start (creates storage): {first:.2f} s").emit())
    figures.append(Figure("idle_memory_rss_all_flint_processes", round(flint_rss / 2**20, 1), "MB",
                          baseline=round(nats_rss / 2**20, 1), ratio=round(flint_rss / max(nats_rss, 1), 1),
                          target="<= 250 MB", ok=flint_rss <= 250 * 2**20,
                          note="baseline: nats-server RSS; " + ", ".join(parts)).emit())
    figures.append(Figure("idle_memory_pss_all_flint_processes", round(flint_pss / 2**20, 1), "MB",
                          target="<= 250 MB", ok=flint_pss <= 250 * 2**20,
                          note="PSS counts pages shared between the processes once").emit())
    return figures


if __name__ == "__main__":
    main()
