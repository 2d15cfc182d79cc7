"""Provisioning figures on the real libvirtd (qemu:///system), TCG guests, no network.

1. `create_cloud_image_to_running_s`: `POST /api/v1/vms` of a cloud-image VM (qcow2 overlay on a small local
   image, a cloud-init seed with hostname, user and SSH key, no NIC, 128 MiB, 1 vCPU, `start: true`) until
   its job succeeded (the domain runs). Baseline: `virt-install --import` of the same image in the same run
   (an overlay on it in the same pool through `--disk backing_store=…`, `--network none`, VNC on
   127.0.0.1, `--virt-type qemu`, `--noautoconsole`), until virt-install returns with the domain running;
   no cloud-init for virt-install, so Flint does more work. Median of ROUNDS, interleaved; each guest is
   removed right after it was timed (running TCG guests would slow the rest). Target <= 1.0 x.
2. `overlay_create_20g_vs_1g_s`: a qcow2 overlay made through Flint on a 20 GiB and on a 1 GiB backing
   image (both qcow2 with preallocated metadata, so the larger one really has 20 times the tables):
   `POST /api/v1/vms` with `start: false` and no cloud-init, until the job succeeded (the overlay is the only
   size-dependent step), median of ROUNDS each, interleaved. Target ratio <= 1.2.
3. `vms_created_per_minute_10_parallel`: 10 `POST /api/v1/vms` sent at once (cloud image, cloud-init,
   `start: false`: creation, not TCG boot), from the first request to the last job's success. Baseline: the
   same through Flint one at a time (SEQUENTIAL VMs), same run.

Everything lives in a temporary dir pool under /var/tmp (`bench-prov-<run>`) and VMs named
`bench-prov-<run>-…`; all of it is removed at the end, also on failure, Ctrl-C or SIGTERM, and leftovers of
an earlier run (`bench-prov-*` domains and pools) are removed first. No image is downloaded: the images
are empty qcow2 files made with qemu-img (the guests only reach SeaBIOS, which is all "running" needs).
Starts its own `flint up` unless FLINT_URL and FLINT_TOKEN (operator or admin; admin to create the pool)
point at a running stack that serves this machine's qemu:///system.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import secrets
import shutil
import signal
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

URI = "qemu:///system"
PREFIX = "bench-prov-"
ROUNDS = int(os.environ.get("FLINT_BENCH_PROVISION_ROUNDS", "3"))
PARALLEL = 10
SEQUENTIAL = 3
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl bench@flint"


def say(*args: object) -> None:
    print(*args, file=sys.stderr, flush=True)


def virsh(*args: str, check: bool = True) -> str:
    proc = subprocess.run(["virsh", "-c", URI, *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"virsh {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def remove_domain(name: str) -> None:
    virsh("destroy", name, check=False)
    virsh("undefine", name, "--nvram", check=False)


def remove_leftovers() -> None:
    """Domains and pools of an earlier run that did not get to clean up."""
    for name in virsh("list", "--all", "--name", check=False).split():
        if name.startswith(PREFIX):
            remove_domain(name)
    for name in virsh("pool-list", "--all", "--name", check=False).split():
        if name.startswith(PREFIX):
            path = virsh("pool-dumpxml", name, check=False).partition("<path>")[2].partition("</path>")[0]
            virsh("pool-destroy", name, check=False)
            virsh("pool-undefine", name, check=False)
            if path.startswith("/var/tmp/" + PREFIX):
                shutil.rmtree(path, ignore_errors=True)


def wait_job(api: httpx.Client, job_id: str, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = api.get(f"/jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed"):
            if job["state"] == "failed":
                raise RuntimeError(f"job {job_id} ({job['target']}) failed: {job['error']}")
            return job
        time.sleep(0.05)
    raise RuntimeError(f"job {job_id} did not end within {timeout:.0f} s")


def create(api: httpx.Client, body: dict) -> dict:
    resp = api.post("/vms", json=body)
    if resp.status_code != 202:
        raise RuntimeError(f"POST /vms {body['name']}: {resp.status_code} {resp.text}")
    return wait_job(api, resp.json()["id"])


def vm_body(name: str, pool: str, image: str, cloud_init: bool, start: bool) -> dict:
    source: dict = {"kind": "cloud_image", "volume": f"{pool}/{image}"}
    if cloud_init:
        source["cloud_init"] = {"hostname": name, "user": "bench", "ssh_authorized_keys": [SSH_KEY]}
    return {"name": name, "vcpus": 1, "memory_mib": 128, "source": source, "disks": [], "nics": [],
            "start": start}


def virt_install(name: str, pool: str, image_path: Path) -> None:
    cmd = ["virt-install", "--connect", URI, "--name", name, "--memory", "128", "--vcpus", "1", "--import",
           "--disk", f"pool={pool},size=1,format=qcow2,backing_store={image_path},backing_format=qcow2,bus=virtio",
           "--network", "none", "--graphics", "vnc,listen=127.0.0.1", "--virt-type", "qemu",
           "--osinfo", "detect=on,require=off", "--noautoconsole"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"virt-install failed: {proc.stderr.strip()[-2000:]}")
    state = virsh("domstate", name).strip()
    if state != "running":
        raise RuntimeError(f"virt-install's {name} is {state}, not running")


def qcow2(path: Path, size: str, metadata: bool = False) -> None:
    opts = ["-o", "preallocation=metadata"] if metadata else []
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", *opts, str(path), size], check=True)


def main() -> None:
    def on_term(_sig, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    load = os.getloadavg()[0]
    remove_leftovers()
    run = secrets.token_hex(3)
    pool = f"{PREFIX}{run}"
    work = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{run}-", dir="/var/tmp"))
    figures: list[Figure] = []
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, work, True)
        base, token, up_s = stack_or_env(cleanup, work / "data", "bench-provision")
        if up_s is not None:
            say(f"flint up healthy in {up_s:.1f} s at {base}")
        api = httpx.Client(base_url=f"{base}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=120)

        def cleanup_all() -> None:
            for sig in (signal.SIGINT, signal.SIGTERM):  # the cleanup is the promise: let it finish
                signal.signal(sig, signal.SIG_IGN)
            remove_leftovers()

        cleanup.callback(cleanup_all)
        target = work / "pool"
        resp = api.post("/hosts/local/pools", json={"name": pool, "type": "dir", "target": str(target),
                                                   "autostart": False})
        if resp.status_code != 201:
            raise SystemExit(f"creating pool {pool}: {resp.status_code} {resp.text}")
        qcow2(target / "small.qcow2", "1G")
        qcow2(target / "base-1g.qcow2", "1G", metadata=True)
        qcow2(target / "base-20g.qcow2", "20G", metadata=True)
        virsh("pool-refresh", pool)
        say(f"pool {pool} at {target} with small.qcow2 (1 GiB, empty), base-1g.qcow2 and base-20g.qcow2")
        # the first VM start after a while probes QEMU's capabilities: take it out of the figures
        create(api, vm_body(f"{pool}-warm", pool, "small.qcow2", True, True))
        remove_domain(f"{pool}-warm")

        # 1. create from a cloud image to running, against virt-install --import
        flint_s, vi_s = [], []
        for i in range(ROUNDS):
            name = f"{pool}-fl{i}"
            t = time.monotonic()
            create(api, vm_body(name, pool, "small.qcow2", True, True))
            flint_s.append(time.monotonic() - t)
            remove_domain(name)
            name = f"{pool}-vi{i}"
            t = time.monotonic()
            virt_install(name, pool, target / "small.qcow2")
            vi_s.append(time.monotonic() - t)
            remove_domain(name)
            say(f"round {i + 1}: flint {flint_s[-1]:.2f} s, virt-install {vi_s[-1]:.2f} s")
        f, v = statistics.median(flint_s), statistics.median(vi_s)
        figures.append(Figure(
            "create_cloud_image_to_running_s", round(f, 2), "s", round(v, 2), round(f / v, 2), "<= 1.0 x virt-install",
            f / v <= 1.0, f"median of {ROUNDS} (flint {min(flint_s):.2f}-{max(flint_s):.2f} s, virt-install "
            f"{min(vi_s):.2f}-{max(vi_s):.2f} s); POST /vms with a cloud-init seed until the job succeeded (running) "
            "vs virt-install --import --disk backing_store=… --network none (no seed) until it returned"))

        # 2. overlay on a 20 GiB against a 1 GiB backing image
        small, big = [], []
        for i in range(ROUNDS):
            for image, out in (("base-1g.qcow2", small), ("base-20g.qcow2", big)):
                name = f"{pool}-ov{image[5:-6]}{i}"
                t = time.monotonic()
                create(api, vm_body(name, pool, image, False, False))
                out.append(time.monotonic() - t)
                remove_domain(name)
            say(f"round {i + 1}: overlay on 1 GiB {small[-1]:.3f} s, on 20 GiB {big[-1]:.3f} s")
        s, b = statistics.median(small), statistics.median(big)
        figures.append(Figure(
            "overlay_create_20g_vs_1g_s", round(b, 3), "s", round(s, 3), round(b / s, 2), "ratio <= 1.2",
            b / s <= 1.2, f"create job with the overlay (start false, no seed) on a 20 GiB backing image "
            f"({min(big):.3f}-{max(big):.3f} s) vs the same on a 1 GiB one ({min(small):.3f}-{max(small):.3f} s), "
            f"median of {ROUNDS}; both qcow2 with preallocated metadata"))

        # 3. VMs created per minute, 10 requests at once, against one at a time
        t = time.monotonic()
        for i in range(SEQUENTIAL):
            create(api, vm_body(f"{pool}-seq{i}", pool, "small.qcow2", True, False))
        seq_per_min = SEQUENTIAL * 60 / (time.monotonic() - t)
        say(f"{SEQUENTIAL} one at a time: {seq_per_min:.1f} per minute")
        t = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(PARALLEL) as threads:
            list(threads.map(lambda i: create(api, vm_body(f"{pool}-par{i}", pool, "small.qcow2", True, False)),
                             range(PARALLEL)))
        par_s = time.monotonic() - t
        par_per_min = PARALLEL * 60 / par_s
        say(f"{PARALLEL} at once: {par_s:.2f} s, {par_per_min:.1f} per minute")
        figures.append(Figure(
            "vms_created_per_minute_10_parallel", round(par_per_min, 1), "VMs/min", round(seq_per_min, 1),
            round(par_per_min / seq_per_min, 2), None, None,
            f"{PARALLEL} POST /vms at once (cloud image, cloud-init seed, start false) until the last job "
            f"succeeded: {par_s:.2f} s; baseline {SEQUENTIAL} one at a time through Flint"))
    load = max(load, os.getloadavg()[0])
    for fig in figures:
        fig.note = f"{fig.note}; machine load (1-min average, {os.cpu_count()} cores): up to {load:.1f}"
        fig.emit()


if __name__ == "__main__":
    main()
