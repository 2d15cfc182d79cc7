"""Idle memory of all Flint processes together and the time from `flint up` to healthy.

Runs `flint up` against the real libvirtd on free loopback ports with a temporary data dir (or, with
FLINT_URL set, only reports on nothing: this benchmark needs to start the stack itself).
Baseline: nats-server's own figures in the same run, for scale. Targets: <= 250 MB, <= 5 s."""

from __future__ import annotations

import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import Figure, comm, descendants, memory_of  # noqa: E402
from bench.stack import start_stack, stop_stack  # noqa: E402


def main() -> list[Figure]:
    figures = []
    with tempfile.TemporaryDirectory(prefix="flint-bench-") as tmp:
        data = Path(tmp)
        # First start: sets up JetStream storage and the admin user. Then the figure that counts:
        # a start "once set up", as a user restarts Flint.
        proc, _, _, first = start_stack(data, poll_s=0.05)
        stop_stack(proc)
        proc, _, _, ready_s = start_stack(data, poll_s=0.05)
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
        stop_stack(proc)
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
