"""The create wizard in Chromium: checks as you type, a refusal from the host shown on its field, and a
created VM whose job progress runs to the end and opens the VM's page."""

from __future__ import annotations

import pytest

from tests.e2e import virt
from tests.e2e.conftest import ADMIN_PASSWORD
from tests.e2e.vm_create_support import destroy_lab, make_lab

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = make_lab(tmp_path_factory.mktemp("lab"))
    yield lab
    destroy_lab(lab)


def _login(page, stack):
    page.goto(stack.base + "/login")
    page.get_by_test_id("login-username").fill("admin")
    page.get_by_test_id("login-password").fill(ADMIN_PASSWORD)
    page.get_by_test_id("login-submit").click()
    page.get_by_test_id("current-user").wait_for()


def _choose_volume(page, testid: str, ref: str) -> None:
    """Pick pool then volume where the gateway lists volumes; type pool/volume where it cannot."""
    pool, vol = ref.split("/")
    text = page.get_by_test_id(f"{testid}-text")
    if not text.is_visible():
        page.get_by_test_id(f"{testid}-pool").select_option(pool)
        volume = page.get_by_test_id(f"{testid}-volume")
        page.wait_for_function(
            f"() => [...document.querySelectorAll('[data-testid={testid}-volume] option')]"
            f".some(o => o.value === '{vol}') || document.querySelector('[data-testid={testid}-text]')",
            timeout=10_000)
        if volume.is_visible():
            volume.select_option(vol)
            return
    text.fill(ref)


def test_wizard_checks_as_you_type_then_creates_a_vm(stack, browser, lab, tmp_path):
    name = lab.track(virt.unique_name("e2e-ui"))
    page = browser.new_page()
    try:
        _login(page, stack)
        page.get_by_test_id("nav-vms").click()
        page.get_by_test_id("vm-create").click()
        page.wait_for_url("**/vms/new")

        page.get_by_test_id("create-name").fill("bad name")
        error = page.locator(".wiz .field-error").first
        error.wait_for()
        assert "Letters, digits" in error.inner_text()
        page.get_by_test_id("create-name").fill(name)
        assert page.locator("label:has([data-testid=create-name]) .field-error").count() == 0
        assert "Choose the ISO volume" in page.locator(".wiz .field-error").first.inner_text()
        page.get_by_test_id("source-cloud").check()
        _choose_volume(page, "source-volume", f"{lab.pool}/tiny.qcow2")
        page.get_by_test_id("create-next").click()

        page.get_by_test_id("create-memory").fill("32")
        assert "At least 64 MiB" in page.locator(".wiz .field-error").first.inner_text()
        page.get_by_test_id("create-memory").fill("128")
        page.get_by_test_id("create-next").click()

        page.get_by_test_id("disk-0-size").fill("1")
        page.get_by_test_id("disk-0-pool").select_option(lab.pool)
        page.get_by_test_id("create-next").click()

        page.get_by_test_id("nic-add").click()
        page.wait_for_function(
            f"() => [...document.querySelectorAll('[data-testid=nic-0-name] option')].some(o => o.value === '{lab.network}')",
            timeout=10_000)
        page.get_by_test_id("nic-0-name").select_option(lab.network)
        page.get_by_test_id("create-next").click()

        page.get_by_test_id("ci-enabled").check()
        page.get_by_test_id("ci-hostname").fill("-web")
        assert "RFC 1123" in page.locator(".wiz .field-error").first.inner_text()
        page.get_by_test_id("ci-hostname").fill("web-ui")
        page.get_by_test_id("ci-user").fill("dora")
        page.get_by_test_id("ci-keys").fill("ssh-rsa not-a-key")
        assert "Key 1" in page.locator(".wiz .field-error").first.inner_text()
        page.get_by_test_id("ci-keys").fill("")
        page.get_by_test_id("ci-static").check()
        page.get_by_test_id("ci-address").fill("10.8.0.9/24")
        page.get_by_test_id("ci-gateway").fill("10.9.0.1")
        assert "not inside" in page.locator(".wiz .field-error").first.inner_text()
        page.screenshot(path=str(tmp_path / "cloud-init.png"), full_page=True)
        page.get_by_test_id("ci-gateway").fill("10.8.0.1")
        assert page.locator(".wiz .field-error").count() == 0
        page.get_by_test_id("create-next").click()
        page.get_by_test_id("create-start").uncheck()
        page.get_by_test_id("create-next").click()

        # A refusal from the host lands on its field: a disk far larger than the pool.
        page.get_by_test_id("step-disks").click()
        page.get_by_test_id("disk-0-size").fill("60000")
        page.get_by_test_id("step-review").click()
        page.get_by_test_id("create-submit").click()
        page.get_by_test_id("error-banner").wait_for()
        assert "free" in page.get_by_test_id("error-banner").inner_text()
        disk_error = page.locator("[data-testid=disk-0] .field-error")
        disk_error.wait_for()
        assert "GiB free" in disk_error.inner_text()
        assert not any(v.startswith(name) for v in lab.new_volumes())
        page.screenshot(path=str(tmp_path / "refused.png"), full_page=True)
        page.get_by_test_id("error-banner").get_by_role("button", name="Dismiss").first.click()

        page.get_by_test_id("disk-0-size").fill("1")
        page.get_by_test_id("step-review").click()
        page.get_by_test_id("create-submit").click()
        page.get_by_test_id("job-progress").wait_for()
        page.wait_for_url("**/vms/*-*-*-*-*", timeout=60_000)
        page.get_by_test_id("vm-name").wait_for()
        assert name in page.get_by_test_id("vm-name").inner_text()
        page.screenshot(path=str(tmp_path / "vm-page.png"))
        assert virt.virsh("domstate", name).strip() == "shut off"
        assert {f"{name}-disk0.qcow2", f"{name}-cidata.iso"} <= lab.new_volumes()
    finally:
        page.close()


def test_a_failed_job_shows_its_error_and_missing_fields_stop_the_submit(stack, browser, lab):
    """A job that fails when the VM starts (its "kernel" is an empty volume QEMU cannot load) shows the
    reason QEMU gave; before that, submitting with nothing chosen is stopped with what is missing."""
    name = lab.track(virt.unique_name("e2e-ui-fail"))
    page = browser.new_page()
    try:
        _login(page, stack)
        page.goto(stack.base + "/vms/new")
        page.get_by_test_id("create-name").fill(name)
        page.get_by_test_id("step-review").click()
        page.get_by_test_id("create-submit").click()
        page.get_by_test_id("source-volume").wait_for()  # sent back to the step with the problem
        assert "Choose the ISO volume" in page.locator(".wiz .field-error").first.inner_text()

        _choose_volume(page, "source-volume", f"{lab.pool}/ipxe.iso")
        page.get_by_test_id("step-resources").click()
        page.get_by_test_id("create-memory").fill("128")
        page.get_by_test_id("step-disks").click()
        page.get_by_test_id("disk-0-size").fill("0.25")
        page.get_by_test_id("disk-0-pool").select_option(lab.pool)
        page.get_by_test_id("step-advanced").click()
        page.get_by_test_id("create-direct-boot").check()
        _choose_volume(page, "boot-kernel", f"{lab.pool}/empty.img")
        page.get_by_test_id("step-review").click()
        page.get_by_test_id("create-submit").click()
        error = page.get_by_test_id("job-error")
        error.wait_for(timeout=60_000)
        text = error.inner_text()
        assert f"start VM '{name}'" in text and "could not load kernel" in text, text
        assert "Everything it had made was removed" in text
        assert page.get_by_test_id("job-progress").get_attribute("data-state") == "failed"
        assert name not in virt.virsh("list", "--all", "--name").split()
        assert not any(v.startswith(name) for v in lab.new_volumes())
        page.get_by_test_id("create-edit-again").click()
        page.get_by_test_id("create-review").wait_for()
    finally:
        page.close()
