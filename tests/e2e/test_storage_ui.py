"""The Storage page in Chromium: a dir pool made from its form appears in the list; a file uploaded from the
page shows its progress bar reach 100 % and becomes a volume with the same bytes."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.e2e import virt
from tests.e2e.conftest import ADMIN_PASSWORD
from tests.e2e.storage_support import SCRATCH, remove_pool, vol_download

pytestmark = pytest.mark.e2e


def test_create_a_dir_pool_and_upload_a_file_from_the_storage_page(stack, browser, tmp_path):
    name = virt.unique_name("e2e-ui-pool")
    target = SCRATCH / name
    upload = tmp_path / "small-disk.img"
    data = os.urandom(3 * 2**20 + 17)
    upload.write_bytes(data)
    page = browser.new_page()
    try:
        page.goto(stack.base + "/login")
        page.get_by_test_id("login-username").fill("admin")
        page.get_by_test_id("login-password").fill(ADMIN_PASSWORD)
        page.get_by_test_id("login-submit").click()
        page.get_by_test_id("current-user").wait_for()
        page.get_by_test_id("nav-storage").click()

        page.get_by_test_id("pool-create-open").click()
        page.get_by_test_id("pool-form-name").fill(name)
        page.get_by_test_id("pool-form-type").select_option("dir")
        page.get_by_test_id("pool-form-target").fill("relative/path")
        page.get_by_test_id("pool-form-submit").click()
        error = page.locator("[data-testid=pool-form] .field-error").first
        error.wait_for()
        assert "not an absolute path" in error.inner_text()  # the provisioner's words, under the field
        page.get_by_test_id("pool-form-target").fill(str(target))
        page.get_by_test_id("pool-form-submit").click()
        row = page.get_by_test_id(f"pool-row-{name}")
        row.wait_for(timeout=15_000)
        assert "dir" in row.inner_text() and "running" in row.inner_text()
        assert name in virt.virsh("pool-list", "--name").split()

        page.get_by_test_id(f"pool-select-{name}").click()
        page.get_by_test_id("tab-upload").click()
        page.get_by_test_id("upload-file").set_input_files(str(upload))
        assert page.get_by_test_id("upload-name").input_value() == "small-disk.img"
        page.get_by_test_id("upload-submit").click()
        bar = page.get_by_test_id("upload-progress")
        bar.wait_for()
        page.wait_for_function(
            "() => document.querySelector('[data-testid=upload-progress]')?.dataset.value === '100'",
            timeout=30_000)
        assert bar.is_visible()
        assert "100%" in bar.inner_text()
        job = page.get_by_test_id("upload-job")
        page.wait_for_function(
            "() => document.querySelector('[data-testid=upload-job]')?.dataset.state === 'succeeded'",
            timeout=60_000)
        assert job.get_attribute("data-value") == "100"
        page.get_by_test_id("volume-row-small-disk.img").wait_for(timeout=10_000)
        assert vol_download(name, "small-disk.img", tmp_path / "back") == data
    finally:
        page.close()
        remove_pool(name)
        shutil.rmtree(target, ignore_errors=True)
