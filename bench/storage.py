"""Volume upload and import throughput against `virsh vol-upload` of the same file, in the same run.

- `volume_upload_mb_s`: `PUT /hosts/local/pools/<pool>/volumes/<vol>/content` of a random file, from the
  first byte sent to the `volume.upload` job's success (gateway → provisioner while the body arrives, by
  TCP on the loopback they share, else a NATS channel → libvirt stream). `volume_upload_http_mb_s`: the
  HTTP part alone (until the 202, which comes once every byte is in the volume).
- `volume_import_mb_s`: `POST …/volumes/import` with its sha256 from python's ThreadingHTTPServer on
  127.0.0.1, until the `volume.import` job's success (download, hash and libvirt stream write).
- Baseline for both: `virsh vol-upload` of the same file into a raw volume of the same size.

Median of 3 rounds, interleaved. A temporary dir pool under /var/tmp; everything removed at the end.
Starts its own `flint up` unless FLINT_URL and FLINT_TOKEN (admin) point at a running one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import Figure  # noqa: E402
from bench.stack import stack_or_env  # noqa: E402
from tests.e2e.storage_support import http_server  # noqa: E402

SIZE = int(os.environ.get("FLINT_BENCH_STORAGE_MIB", "256")) * 2**20
ROUNDS = 3
URI = "qemu:///system"


def say(*args: object) -> None:
    print(*args, file=sys.stderr, flush=True)


def virsh(*args: str) -> str:
    return subprocess.run(["virsh", "-c", URI, *args], check=True, capture_output=True, text=True).stdout


def wait_job(api: httpx.Client, job_id: str) -> dict:
    while True:
        job = api.get(f"/jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed"):
            if job["state"] == "failed":
                raise SystemExit(f"job {job_id} failed: {job['error']}")
            return job
        time.sleep(0.05)


def file_chunks(path: Path):
    with path.open("rb") as f:
        while chunk := f.read(1024 * 1024):
            yield chunk


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="flint-bench-storage-", dir="/var/tmp"))
    pool = f"bench-stg-{secrets.token_hex(3)}"
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, work, True)
        base, token, _ = stack_or_env(cleanup, work / "data", "bench-storage")
        api = httpx.Client(base_url=f"{base}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=600)
        www = work / "www"
        www.mkdir()
        src = www / "disk.img"
        say(f"writing a {SIZE >> 20} MiB random file")
        with src.open("wb") as f:
            for _ in range(SIZE // 2**20):
                f.write(os.urandom(2**20))
        digest = hashlib.sha256(src.read_bytes()).hexdigest()
        resp = api.post("/hosts/local/pools", json={"name": pool, "type": "dir", "target": str(work / "pool"),
                                                   "autostart": False})
        resp.raise_for_status()

        def drop_pool() -> None:
            subprocess.run(["virsh", "-c", URI, "pool-destroy", pool], capture_output=True)
            subprocess.run(["virsh", "-c", URI, "pool-undefine", pool], capture_output=True)

        cleanup.callback(drop_pool)
        results: dict[str, list[float]] = {"virsh": [], "upload": [], "upload_http": [], "import": []}
        mb = SIZE / 1e6
        with http_server(www) as served:
            for i in range(ROUNDS):
                vol = f"virsh-{i}.raw"
                virsh("vol-create-as", pool, vol, str(SIZE), "--format", "raw")
                t = time.monotonic()
                virsh("vol-upload", "--pool", pool, vol, str(src))
                results["virsh"].append(mb / (time.monotonic() - t))
                virsh("vol-delete", "--pool", pool, vol)

                t = time.monotonic()
                resp = api.put(f"/hosts/local/pools/{pool}/volumes/up-{i}.raw/content", content=file_chunks(src),
                               headers={"Content-Length": str(SIZE)})
                resp.raise_for_status()
                t_http = time.monotonic() - t
                wait_job(api, resp.json()["id"])
                results["upload"].append(mb / (time.monotonic() - t))
                results["upload_http"].append(mb / t_http)
                api.delete(f"/hosts/local/pools/{pool}/volumes/up-{i}.raw").raise_for_status()

                t = time.monotonic()
                resp = api.post(f"/hosts/local/pools/{pool}/volumes/import",
                                json={"url": f"{served}/disk.img", "name": f"imp-{i}.raw", "sha256": digest})
                resp.raise_for_status()
                wait_job(api, resp.json()["id"])
                results["import"].append(mb / (time.monotonic() - t))
                api.delete(f"/hosts/local/pools/{pool}/volumes/imp-{i}.raw").raise_for_status()
                say(f"round {i + 1}: " + ", ".join(f"{k} {v[-1]:.0f} MB/s" for k, v in results.items()))
        med = {k: statistics.median(v) for k, v in results.items()}
        note = f"{SIZE >> 20} MiB random file, median of {ROUNDS}; baseline virsh vol-upload of the same file"
        Figure("volume_upload_mb_s", round(med["upload"], 1), "MB/s", round(med["virsh"], 1),
               round(med["upload"] / med["virsh"], 2), ">= 0.5 x virsh", med["upload"] >= 0.5 * med["virsh"],
               note + "; PUT until the job succeeded; body streamed gateway -> provisioner -> libvirt stream").emit()
        Figure("volume_upload_http_mb_s", round(med["upload_http"], 1), "MB/s", round(med["virsh"], 1),
               round(med["upload_http"] / med["virsh"], 2), None, None,
               "the PUT alone: the 202 comes once the provisioner wrote the last byte").emit()
        Figure("volume_import_mb_s", round(med["import"], 1), "MB/s", round(med["virsh"], 1),
               round(med["import"] / med["virsh"], 2), ">= 0.5 x virsh", med["import"] >= 0.5 * med["virsh"],
               note + "; import from 127.0.0.1 with sha256 until the job succeeded").emit()


if __name__ == "__main__":
    main()
