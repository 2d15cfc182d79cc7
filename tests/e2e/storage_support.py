"""Helpers for the storage e2e tests: API clients by role, jobs, loop devices, a loopback HTTP server."""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import http.server
import shutil
import subprocess
import threading
from pathlib import Path

import httpx
import pytest

from tests.e2e import virt
from tests.e2e.conftest import ADMIN_PASSWORD
from tests.helpers import eventually, login

SCRATCH = Path("/var/tmp")


def token_client(stack, role: str, name: str) -> httpx.Client:
    admin = login(stack.base, password=ADMIN_PASSWORD)
    token = admin.post("/api/v1/auth/tokens", json={"name": name, "role": role}).json()["token"]
    return httpx.Client(base_url=f"{stack.base}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=180)


def wait_job(api: httpx.Client, job_id: str, timeout: float = 120) -> dict:
    return eventually(
        lambda: (j := api.get(f"/jobs/{job_id}").json()) and j.get("state") in ("succeeded", "failed") and j,
        timeout=timeout, interval=0.2, what=f"job {job_id} finished",
    )


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def remove_pool(name: str) -> None:
    """Leave libvirt as it was, whatever the test managed to do."""
    virt.virsh("pool-destroy", name, check=False)
    virt.virsh("pool-undefine", name, check=False)


@contextlib.contextmanager
def loop_device(tmp: Path, size_mib: int = 64):
    """A loop device over a sparse file in /var/tmp (partitions scanned: /dev/loopNpM appear)."""
    if not shutil.which("losetup"):
        pytest.skip("losetup is not installed (util-linux)")
    image = tmp / f"{virt.unique_name('flint-loop')}.img"
    with image.open("wb") as f:
        f.truncate(size_mib * 2**20)
    proc = run("losetup", "--find", "--show", "--partscan", str(image), check=False)
    if proc.returncode != 0:
        image.unlink()
        pytest.skip(f"this machine cannot attach loop devices: {proc.stderr.strip()}")
    dev = proc.stdout.strip()
    try:
        yield dev
    finally:
        run("losetup", "-d", dev, check=False)
        image.unlink(missing_ok=True)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def http_server(directory: Path):
    """python's http.server on 127.0.0.1 in a thread, serving `directory`; yields its base URL."""
    handler = functools.partial(_Quiet, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def vol_download(pool: str, vol: str, dest: Path) -> bytes:
    """The volume's bytes as libvirt hands them out (`virsh vol-download`), not by reading its file."""
    virt.virsh("vol-download", "--pool", pool, vol, str(dest))
    return dest.read_bytes()


def upload_objects(stack) -> list[str]:
    """Names of the objects in the flint-uploads bucket of the stack's NATS (system credentials)."""
    import asyncio

    from flint import bus, objects

    async def names() -> list[str]:
        creds = stack.data_dir / "nats-auth" / "system.creds"
        nc = await bus.connect(stack.nats_url, "e2e-storage", creds=str(creds) if creds.exists() else None)
        try:
            store = await objects.open_bucket(nc.jetstream())
            try:
                return [o.name for o in await store.list(ignore_deletes=True) if not o.deleted]
            except Exception as exc:  # nats-py raises NotFoundError for an empty bucket
                if "no objects" in str(exc).lower() or exc.__class__.__name__ == "NotFoundError":
                    return []
                raise
        finally:
            await nc.close()

    # asyncio.run in a thread of its own: in this thread it would unset the loop pytest-asyncio keeps.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, names()).result()
