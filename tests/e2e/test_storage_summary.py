"""Storage counted once per filesystem: two dir pools on one filesystem, one on another (a tmpfs)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e import virt
from tests.e2e.conftest import ADMIN_PASSWORD
from tests.helpers import eventually, login

pytestmark = pytest.mark.e2e
TMPFS_BYTES = 64 * 2**20


@pytest.fixture
def three_pools(tmp_path):
    base = Path("/var/tmp") / virt.unique_name("flint-e2e-pools")
    same_a, same_b, other = base / "a", base / "b", base / "tmpfs"
    for d in (same_a, same_b, other):
        d.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES}", "tmpfs", str(other)], check=True)
    names = {p: virt.unique_name(f"e2e-{p.name}") for p in (same_a, same_b, other)}
    try:
        for path, name in names.items():
            virt.virsh("pool-define-as", name, "dir", "--target", str(path))
            virt.virsh("pool-start", name)
        # something in one pool, so allocations differ
        virt.virsh("vol-create-as", names[same_a], "blob.raw", "8M", "--format", "raw")
        yield {"same": (names[same_a], names[same_b]), "other": names[other], "same_path": same_a}
    finally:
        for name in names.values():
            virt.virsh("pool-destroy", name, check=False)
            virt.virsh("pool-delete", name, check=False)
            virt.virsh("pool-undefine", name, check=False)
        subprocess.run(["umount", str(other)], check=False)
        shutil.rmtree(base, ignore_errors=True)


def _group_of(host: dict, pool: str) -> dict | None:
    return next((g for g in host["groups"] if any(p["name"] == pool for p in g["pools"])), None)


def test_each_filesystem_counted_once_and_the_same_on_every_page(stack, browser, three_pools):
    client = login(stack.base, password=ADMIN_PASSWORD)
    a, b = three_pools["same"]
    other = three_pools["other"]

    def summary_with_pools():
        s = client.get("/api/v1/storage/summary").json()
        host = next((h for h in s["hosts"] if h["host"] == "local"), None)
        if host and all(_group_of(host, p) for p in (a, b, other)):
            return s, host
        return None

    summary, host = eventually(summary_with_pools, timeout=15, what="pools in the summary")
    group_ab = _group_of(host, a)
    assert _group_of(host, b) is group_ab, "two pools on one filesystem must share one group"
    group_other = _group_of(host, other)
    assert group_other is not group_ab
    st = os.statvfs(three_pools["same_path"])
    assert group_ab["capacity"] == st.f_blocks * st.f_frsize
    assert group_other["capacity"] == TMPFS_BYTES
    # counted once: the host's capacity is the sum over groups, not over pools
    assert host["capacity"] == sum(g["capacity"] for g in host["groups"])
    pools_sum = sum(p["capacity"] for g in host["groups"] for p in g["pools"])
    assert host["capacity"] < pools_sum  # what the old tool showed (and got 109% from)
    for g in host["groups"]:
        assert 0 <= g["used"] <= g["capacity"]
        assert g["used"] + g["free"] == g["capacity"]
    pool_a = next(p for p in group_ab["pools"] if p["name"] == a)
    pool_b = next(p for p in group_ab["pools"] if p["name"] == b)
    # each pool is listed with its own allocation beside the group's figures
    assert pool_a["allocation"] >= pool_b["allocation"]
    assert summary["overall"]["capacity"] == sum(h["capacity"] for h in summary["hosts"])

    page = browser.new_page()
    try:
        page.goto(stack.base + "/login")
        page.get_by_test_id("login-username").fill("admin")
        page.get_by_test_id("login-password").fill(ADMIN_PASSWORD)
        page.get_by_test_id("login-submit").click()
        page.get_by_test_id("current-user").wait_for()
        page.get_by_test_id("nav-dashboard").click()
        dashboard = page.get_by_test_id("dashboard-storage-used")
        dashboard.wait_for()
        page.wait_for_function(
            "([el]) => el.innerText.trim().length > 0", arg=[dashboard.element_handle()], timeout=10_000
        )
        dashboard_text = dashboard.inner_text()
        page.get_by_test_id("nav-storage").click()
        storage = page.get_by_test_id("storage-overall-used")
        storage.wait_for()
        assert storage.inner_text() == dashboard_text
        page.get_by_test_id(f"storage-pool-local-{a}").wait_for(timeout=10_000)
    finally:
        page.close()
