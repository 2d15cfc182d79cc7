"""Streamed volume uploads: the body goes to the provisioner's job while it arrives. An upload broken off
by the client, or whose provisioner dies mid-write, fails its job and leaves no volume; the client
uploads again. Progress is reported while the bytes arrive."""

from __future__ import annotations

import os
import shutil
import signal
import time

import httpx
import pytest

from bench.common import comm, descendants
from tests.e2e import virt
from tests.e2e.conftest import start_stack, stop_stack
from tests.e2e.storage_support import SCRATCH, remove_pool, token_client, vol_download, wait_job
from tests.helpers import eventually

pytestmark = pytest.mark.e2e
MIB = 2**20


def _vols(pool: str) -> list[str]:
    virt.virsh("pool-refresh", pool, check=False)
    return [line.split()[0] for line in virt.virsh("vol-list", pool).splitlines()[2:] if line.strip()]


def _job_for(api: httpx.Client, target: str) -> dict:
    jobs = [j for j in api.get("/jobs").json() if j["kind"] == "volume.upload" and j["target"] == target]
    assert jobs, f"no volume.upload job for {target}"
    return jobs[0]


def _slow_body(total: int, stop_after: int | None = None, pause_s: float = 0.0):
    """``total`` bytes in 1 MiB pieces; raises after ``stop_after`` bytes (the client breaks the upload off)."""
    sent = 0
    while sent < total:
        if stop_after is not None and sent >= stop_after:
            raise ConnectionAbortedError("the client gives up")
        piece = os.urandom(min(MIB, total - sent))
        sent += len(piece)
        if pause_s:
            time.sleep(pause_s)
        yield piece


@pytest.fixture
def pool(stack):
    name = virt.unique_name("e2e-stg-up")
    target = SCRATCH / name
    api = token_client(stack, "admin", name)
    assert api.post("/hosts/local/pools", json={"name": name, "type": "dir", "target": str(target)}).status_code == 201
    try:
        yield api, name
    finally:
        remove_pool(name)
        shutil.rmtree(target, ignore_errors=True)


def test_a_streamed_upload_lands_whole_and_reports_progress(pool, tmp_path):
    api, name = pool
    data = os.urandom(24 * MIB + 5)
    seen: list[str] = []
    resp = api.put(f"/hosts/local/pools/{name}/volumes/whole.raw/content", content=_chunks_watching(api, data, seen),
                   headers={"Content-Length": str(len(data))})
    assert resp.status_code == 202, resp.text
    job = wait_job(api, resp.json()["id"])
    assert job["state"] == "succeeded", job
    assert job["result"]["volume"]["capacity"] == len(data)
    assert vol_download(name, "whole.raw", tmp_path / "back") == data
    assert any("received and written" in m for m in seen), seen  # progress while the bytes were arriving


def _chunks_watching(api: httpx.Client, data: bytes, seen: list[str]):
    """Send ``data`` slowly and look at the running job's message between pieces."""
    token = api.headers["Authorization"]
    watcher = httpx.Client(base_url=str(api.base_url), headers={"Authorization": token}, timeout=10)
    for i in range(0, len(data), MIB):
        yield data[i:i + MIB]
        time.sleep(0.05)
        if i % (4 * MIB) == 0:
            seen.extend(j["message"] for j in watcher.get("/jobs", params={"state": "running"}).json()
                        if j["kind"] == "volume.upload")
    watcher.close()


def test_an_upload_broken_off_by_the_client_leaves_no_volume(pool):
    api, name = pool
    total = 32 * MIB
    with pytest.raises((httpx.HTTPError, ConnectionAbortedError)):
        api.put(f"/hosts/local/pools/{name}/volumes/broken.raw/content",
                content=_slow_body(total, stop_after=8 * MIB), headers={"Content-Length": str(total)})
    job = eventually(lambda: (j := _job_for(api, f"{name}/broken.raw"))["state"] in ("failed", "succeeded") and j,
                     timeout=60, what="the upload's job ended")
    assert job["state"] == "failed" and job["rolled_back"], job
    assert "cut off" in job["error"] or "stopped after" in job["error"], job
    assert "broken.raw" not in _vols(name)
    # the same name works again: the client retries
    data = os.urandom(3 * MIB)
    resp = api.put(f"/hosts/local/pools/{name}/volumes/broken.raw/content", content=data)
    assert resp.status_code == 202 and wait_job(api, resp.json()["id"])["state"] == "succeeded", resp.text


def test_the_nats_road_carries_an_upload_and_a_provisioner_dying_mid_write_leaves_nothing(tmp_path_factory,
                                                                                           tmp_path):
    """FLINT_UPLOAD_DIRECT=0: the bytes take the NATS channel, as they do when the provisioner runs elsewhere."""
    stack = start_stack(tmp_path_factory.mktemp("upload-kill"), FLINT_UPLOAD_DIRECT="0")
    name = virt.unique_name("e2e-stg-kill")
    target = SCRATCH / name
    try:
        api = token_client(stack, "admin", "upload-kill")
        assert api.post("/hosts/local/pools", json={"name": name, "type": "dir", "target": str(target)}
                        ).status_code == 201
        data = os.urandom(20 * MIB + 7)
        resp = api.put(f"/hosts/local/pools/{name}/volumes/via-nats.raw/content", content=data)
        assert resp.status_code == 202 and wait_job(api, resp.json()["id"])["state"] == "succeeded", resp.text
        assert vol_download(name, "via-nats.raw", tmp_path / "back") == data

        total = 64 * MIB
        killed: list[int] = []

        def body():
            for i, piece in enumerate(_slow_body(total, pause_s=0.05)):
                if i == 8:  # the provisioner is receiving: kill it like the OOM killer would
                    pids = [p for p in descendants(stack.proc.proc.pid) if "services.provisioner" in comm(p)]
                    assert len(pids) == 1, pids
                    os.kill(pids[0], signal.SIGKILL)
                    killed.append(pids[0])
                yield piece

        try:
            resp = api.put(f"/hosts/local/pools/{name}/volumes/cut.raw/content", content=body(),
                           headers={"Content-Length": str(total)})
        except httpx.HTTPError:
            resp = None  # the gateway answered early and closed: the client sees a broken connection
        assert killed
        if resp is not None:
            assert resp.status_code in (410, 503) and "upload" in resp.json()["detail"], resp.text
        job = eventually(lambda: (j := _job_for(api, f"{name}/cut.raw"))["state"] in ("failed", "succeeded") and j,
                         timeout=90, what="the redelivered upload job ended")
        assert job["state"] == "failed" and job["rolled_back"], job
        assert "upload the file again" in job["error"] or "stopped after" in job["error"], job
        assert "cut.raw" not in _vols(name)
        resp = api.put(f"/hosts/local/pools/{name}/volumes/cut.raw/content", content=b"again" * 1000)
        assert resp.status_code == 202 and wait_job(api, resp.json()["id"])["state"] == "succeeded", resp.text
    finally:
        remove_pool(name)
        shutil.rmtree(target, ignore_errors=True)
        stop_stack(stack)
