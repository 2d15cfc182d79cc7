"""volume.import from a loopback HTTP server: the right checksum gives the volume with the server's bytes, a
wrong one a failed job naming both sums and no volume; the image library pool is made on first use."""

from __future__ import annotations

import hashlib
import os
import shutil

import pytest

from tests.e2e import virt
from tests.e2e.storage_support import (
    SCRATCH,
    http_server,
    remove_pool,
    token_client,
    vol_download,
    wait_job,
)

pytestmark = pytest.mark.e2e
HOST = "local"


@pytest.fixture(scope="module")
def operator(stack):
    return token_client(stack, "operator", "e2e-import-operator")


@pytest.fixture(scope="module")
def pool(stack):
    admin = token_client(stack, "admin", "e2e-import-admin")
    name = virt.unique_name("e2e-imp")
    base = SCRATCH / name
    resp = admin.post(f"/hosts/{HOST}/pools", json={"name": name, "type": "dir", "target": str(base)})
    assert resp.status_code == 201, resp.text
    yield name
    remove_pool(name)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    www = tmp_path_factory.mktemp("www")
    data = os.urandom(9 * 2**20 + 4321)  # several MiB: progress has something to report
    (www / "disk.img").write_bytes(data)
    with http_server(www) as base:
        yield base, data, hashlib.sha256(data).hexdigest()


def _vols(pool: str) -> list[str]:
    return [line.split()[0] for line in virt.virsh("vol-list", pool).splitlines()[2:] if line.strip()]


def test_import_with_the_right_sha256(operator, pool, served, tmp_path):
    base, data, digest = served
    resp = operator.post(f"/hosts/{HOST}/pools/{pool}/volumes/import",
                         json={"url": f"{base}/disk.img", "sha256": digest.upper(), "format": "raw"})
    assert resp.status_code == 202, resp.text
    assert resp.headers["location"] == f"/api/v1/jobs/{resp.json()['id']}"
    job = wait_job(operator, resp.json()["id"])
    assert job["state"] == "succeeded", job
    assert job["kind"] == "volume.import" and job["target"] == f"{pool}/disk.img"
    assert (job["result"]["sha256"], job["result"]["bytes"]) == (digest, len(data))
    assert job["result"]["volume"]["capacity"] == len(data)
    assert vol_download(pool, "disk.img", tmp_path / "back") == data
    resp = operator.post(f"/hosts/{HOST}/pools/{pool}/volumes/import", json={"url": f"{base}/disk.img"})
    assert resp.status_code == 409 and resp.json()["errors"][0]["field"] == "name", "the name is taken now"
    assert operator.delete(f"/hosts/{HOST}/pools/{pool}/volumes/disk.img").status_code == 200


def test_a_wrong_sha256_fails_naming_both_sums_and_leaves_no_volume(operator, pool, served):
    base, _, digest = served
    wrong = "0" * 64
    resp = operator.post(f"/hosts/{HOST}/pools/{pool}/volumes/import",
                         json={"url": f"{base}/disk.img", "name": "bad.img", "sha256": wrong})
    assert resp.status_code == 202, resp.text
    job = wait_job(operator, resp.json()["id"])
    assert job["state"] == "failed" and job["rolled_back"], job
    assert wrong in job["error"] and digest in job["error"] and "sha256" in job["error"]
    assert "bad.img" not in _vols(pool)
    assert all(v["name"] != "bad.img" for v in operator.get(f"/hosts/{HOST}/pools/{pool}/volumes").json())


def test_a_missing_file_or_a_wrong_format_fails_with_the_reason(operator, pool, served):
    base, _, _ = served
    job = wait_job(operator, operator.post(f"/hosts/{HOST}/pools/{pool}/volumes/import",
                                           json={"url": f"{base}/nothere.img"}).json()["id"])
    assert job["state"] == "failed" and "404" in job["error"], job
    job = wait_job(operator, operator.post(f"/hosts/{HOST}/pools/{pool}/volumes/import",
                                           json={"url": f"{base}/disk.img", "name": "q.qcow2",
                                                 "format": "qcow2"}).json()["id"])
    assert job["state"] == "failed" and "not qcow2" in job["error"], job
    assert not {"nothere.img", "q.qcow2"} & set(_vols(pool))


def test_the_image_library_is_made_on_first_import(stack, operator, served, tmp_path):
    base, data, digest = served
    existed = "flint-images" in virt.virsh("pool-list", "--all", "--name").split()
    name = virt.unique_name("e2e-lib") + ".img"
    try:
        resp = operator.post(f"/hosts/{HOST}/pools/flint-images/volumes/import",
                             json={"url": f"{base}/disk.img", "name": name, "sha256": digest})
        assert resp.status_code == 202, resp.text
        job = wait_job(operator, resp.json()["id"])
        assert job["state"] == "succeeded", job
        info = virt.virsh("pool-info", "flint-images")
        assert "running" in info and "Autostart:      yes" in info
        if not existed:
            assert job["result"]["volume"]["path"] == str(stack.data_dir / "images" / name)
        assert vol_download("flint-images", name, tmp_path / "lib") == data
    finally:
        virt.virsh("vol-delete", "--pool", "flint-images", name, check=False)
        if not existed:
            virt.virsh("pool-destroy", "flint-images", check=False)
            virt.virsh("pool-delete", "flint-images", check=False)
            virt.virsh("pool-undefine", "flint-images", check=False)
