"""vm.create with the provisioner killed between steps: the job finishes after redelivery with exactly one
domain and no orphan volume; and a job whose define fails (the name taken meanwhile) rolls back, leaving
nothing of its own and nothing of the other VM touched."""

from __future__ import annotations

import httpx
import pytest
from lxml import etree

from tests.e2e import virt
from tests.e2e.conftest import ADMIN_PASSWORD, start_stack, stop_stack
from tests.e2e.test_vm_create import SSH_KEY
from tests.e2e.vm_create_support import cloud_request, destroy_lab, domains, make_lab, wait_job
from tests.helpers import eventually, login

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = make_lab(tmp_path_factory.mktemp("lab"))
    yield lab
    destroy_lab(lab)


def _api(stack) -> httpx.Client:
    client = login(stack.base, password=ADMIN_PASSWORD)
    token = client.post("/api/v1/auth/tokens", json={"name": "crash", "role": "operator"}).json()["token"]
    return httpx.Client(base_url=stack.base, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def _provisioner_died(stack) -> bool:
    return any("child exited; restarting" in line and "provisioner" in line
               for line in stack.proc.output().splitlines())


@pytest.mark.parametrize("crash_after", ["create disks", "define"])
def test_create_job_finishes_after_the_provisioner_dies(tmp_path_factory, lab, crash_after):
    stack = start_stack(tmp_path_factory.mktemp("crash"), FLINT_TEST_CRASH_AFTER_STEP=f"vm.create:{crash_after}")
    try:
        api = _api(stack)
        name = lab.track(virt.unique_name("e2e-crash"))
        body = cloud_request(lab, name, {"user": "alice", "ssh_authorized_keys": [SSH_KEY]})
        resp = api.post("/api/v1/vms", json=body)
        assert resp.status_code == 202, resp.text
        job = wait_job(api, resp.json()["id"], timeout=90)
        assert job["state"] == "succeeded", job
        assert _provisioner_died(stack), "the provisioner was meant to die after " + crash_after
        assert [d for d in domains() if d == name] == [name]  # exactly one, no duplicate
        assert virt.virsh("domstate", name).strip() == "running"
        assert lab.new_volumes() - _others(lab, name) == {f"{name}-disk0.qcow2", f"{name}-cidata.iso"}
        xml = etree.fromstring(virt.virsh("dumpxml", name).encode())
        assert {d.find("source").get("volume") for d in xml.findall("devices/disk")} == {
            f"{name}-disk0.qcow2", f"{name}-cidata.iso"}
    finally:
        stop_stack(stack)


def _others(lab, name: str) -> set[str]:
    """Volumes of the lab's other VMs (made by the other tests of this module)."""
    return {v for v in lab.new_volumes() if not v.startswith(f"{name}-")}


def test_define_failure_rolls_back_every_volume(tmp_path_factory, tmp_path, lab):
    """The name is free when the request is checked; while the provisioner is down after making the disks
    and the seed, another tool defines a VM of that name. The job fails at define and removes its own
    volumes; the other VM is left alone."""
    stack = start_stack(tmp_path_factory.mktemp("rollback"), FLINT_TEST_CRASH_AFTER_STEP="vm.create:cloud-init seed")
    try:
        api = _api(stack)
        name = lab.track(virt.unique_name("e2e-clash"))
        before = lab.new_volumes()
        body = cloud_request(lab, name, {"user": "alice", "password": "pw-never-stored"})
        resp = api.post("/api/v1/vms", json=body)
        assert resp.status_code == 202, resp.text
        job_id = resp.json()["id"]
        eventually(lambda: _provisioner_died(stack), timeout=30, what="the provisioner died after the seed step")
        assert lab.new_volumes() - before == {f"{name}-disk0.qcow2", f"{name}-cidata.iso"}
        other_uuid = virt.define(name, tmp_path)  # the clash, made behind Flint's back
        job = wait_job(api, job_id, timeout=90)
        assert job["state"] == "failed" and job["rolled_back"], job
        assert "already exists" in job["error"] and name in job["error"], job["error"]
        assert lab.new_volumes() == before  # neither the disk nor the seed is left
        assert virt.virsh("domuuid", name).strip() == other_uuid  # the other VM untouched
        assert job["result"] == {}
    finally:
        stop_stack(stack)
