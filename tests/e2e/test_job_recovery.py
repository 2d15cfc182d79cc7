"""A provisioner killed in the middle of a job: the job finishes after redelivery, nothing is left over."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e import virt
from tests.e2e.conftest import ADMIN_PASSWORD, start_stack, stop_stack
from tests.e2e.test_vm_delete import _listed, _vm_with_disk, _wait_job, pool  # noqa: F401 - fixture
from tests.helpers import eventually, login

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.mark.parametrize("crash_after", ["power off", "undefine"])
def test_delete_job_finishes_after_the_provisioner_dies(tmp_path_factory, tmp_path, pool, crash_after):  # noqa: F811
    stack = start_stack(tmp_path_factory.mktemp("crash"), FLINT_TEST_CRASH_AFTER_STEP=f"vm.delete:{crash_after}")
    try:
        client = login(stack.base, password=ADMIN_PASSWORD)
        token = client.post("/api/v1/auth/tokens", json={"name": "crash", "role": "operator"}).json()["token"]
        api = httpx.Client(base_url=stack.base, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        name, uuid, disk = _vm_with_disk(tmp_path, *pool)
        try:
            virt.virsh("start", name)
            eventually(lambda: _listed(api, uuid), timeout=10, what="listed")
            resp = api.delete(f"/api/v1/vms/{uuid}", params={"delete_disks": "true"})
            assert resp.status_code == 202, resp.text
            job_id = resp.json()["id"]
            job = _wait_job(api, job_id, timeout=60)
            assert job["state"] == "succeeded", job
            assert name not in virt.virsh("list", "--all", "--name")
            assert disk in job["result"]["deleted_disks"]
            assert "[" not in virt.virsh("vol-list", pool[0])  # no orphan volume
            assert "flint.cli.main up" and "restarting" in stack.proc.output()  # it really died
        finally:
            virt.remove(name)
    finally:
        stop_stack(stack)
