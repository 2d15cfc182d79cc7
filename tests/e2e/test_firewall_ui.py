"""The Firewall page and a VM's Firewall tab in the browser: create a ruleset and see it listed, a concurrent
edit answered with a clear conflict message, and a VM given a ruleset from its tab."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e import virt
from tests.e2e.conftest import ADMIN_PASSWORD
from tests.helpers import eventually, token_client

pytestmark = pytest.mark.e2e
RS = "/api/v1/firewall/rulesets"


@pytest.fixture(scope="module")
def api(stack):
    return token_client(stack.base, ADMIN_PASSWORD, "e2e-fw-ui", "admin", timeout=60)


@pytest.fixture
def page(browser, stack):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(stack.base + "/login")
    page.get_by_test_id("login-username").fill("admin")
    page.get_by_test_id("login-password").fill(ADMIN_PASSWORD)
    page.get_by_test_id("login-submit").click()
    page.wait_for_url(lambda url: "/login" not in url, timeout=15000)
    yield page
    page.close()


@pytest.fixture
def names(api):
    made: list[str] = []
    yield made
    for name in made:
        api.delete(f"{RS}/{name}")


def test_create_a_ruleset_on_the_firewall_page(page, stack, api, names):
    name = virt.unique_name("ui-web")
    names.append(name)
    page.goto(stack.base + "/firewall")
    page.get_by_test_id("fw-new-ruleset").click()
    page.get_by_test_id("fw-name").fill(name)
    page.get_by_test_id("fw-description").fill("made in the browser")
    page.get_by_test_id("fw-rule-0-macro").select_option("SSH")
    page.get_by_test_id("fw-add-rule").click()
    page.get_by_test_id("fw-rule-1-protocol").select_option("tcp")
    page.get_by_test_id("fw-rule-1-ports").fill("0")  # refused first, with the reason next to the rule
    page.get_by_test_id("fw-save").click()
    error = page.get_by_test_id("fw-rule-1-error")
    error.wait_for()
    assert "port 0 is out of range" in error.inner_text()
    page.get_by_test_id("fw-rule-1-ports").fill("80,443")
    page.get_by_test_id("fw-add-rule").click()
    page.get_by_test_id("fw-rule-2-action").select_option("drop")
    page.get_by_test_id("fw-rule-2-protocol").select_option("all")
    page.get_by_test_id("fw-rule-2-up").click()  # reorder: the drop moves above tcp 80,443 ...
    page.get_by_test_id("fw-rule-1-up").click()  # ... and above SSH
    expect(page.get_by_test_id("fw-rule-0-action")).to_have_value("drop")
    page.get_by_test_id("fw-rule-0-down").click()  # then back below SSH
    page.get_by_test_id("fw-rule-1-enabled").uncheck()  # and disabled
    page.get_by_test_id("fw-save").click()

    row = page.get_by_test_id(f"fw-ruleset-row-{name}")
    row.wait_for()
    assert "made in the browser" in row.inner_text()
    stored = api.get(f"{RS}/{name}").json()
    assert [(r["macro"] or r["protocol"], r["action"], r["ports"], r["enabled"]) for r in stored["rules"]] == [
        ("SSH", "accept", None, True), ("all", "drop", None, False), ("tcp", "accept", "80,443", True)]
    page.reload()
    page.get_by_test_id(f"fw-ruleset-row-{name}").wait_for()  # listed from the API, not from memory


def test_a_concurrent_edit_is_a_clear_conflict(page, stack, api, names):
    name = virt.unique_name("ui-conflict")
    names.append(name)
    created = api.post(RS, json={"name": name, "description": "v1", "rules": [{"macro": "HTTP"}]}).json()
    page.goto(stack.base + "/firewall")
    page.get_by_test_id(f"fw-edit-{name}").click()
    page.get_by_test_id("fw-description").fill("mine")
    # somebody else saves first
    theirs = api.put(f"{RS}/{name}", json={"description": "theirs", "rules": [{"macro": "HTTPS"}]},
                     headers={"If-Match": str(created["revision"])})
    assert theirs.status_code == 200
    page.get_by_test_id("fw-save").click()
    conflict = page.get_by_test_id("fw-conflict")
    conflict.wait_for()
    assert "Someone else saved this ruleset" in conflict.inner_text()
    assert f"revision {theirs.json()['revision']}" in conflict.inner_text()
    assert api.get(f"{RS}/{name}").json()["description"] == "theirs"  # nothing of mine was written
    page.get_by_test_id("fw-conflict-reload").click()
    expect(page.get_by_test_id("fw-description")).to_have_value("theirs")
    expect(page.get_by_test_id("fw-rule-0-macro")).to_have_value("HTTPS")
    expect(page.get_by_test_id("fw-conflict")).to_have_count(0)


def test_give_a_vm_a_ruleset_from_its_firewall_tab(page, stack, api, names, tmp_path):
    rs = virt.unique_name("ui-vm")
    names.append(rs)
    assert api.post(RS, json={"name": rs, "rules": [{"macro": "SSH"}]}).status_code == 201
    vm_name = virt.unique_name("e2e-fwui")
    uuid = virt.define(vm_name, tmp_path)
    try:
        eventually(lambda: api.get(f"/api/v1/vms/{uuid}").status_code == 200, timeout=10, what="VM listed")
        page.goto(f"{stack.base}/vms/{uuid}?tab=firewall")
        page.get_by_test_id("vm-firewall").wait_for()
        page.get_by_test_id("vmfw-add-select").select_option(rs)
        page.get_by_test_id("vmfw-add").click()
        page.get_by_test_id("vmfw-policy-drop").check()
        page.get_by_test_id("vmfw-save").click()
        eventually(lambda: api.get(f"/api/v1/vms/{uuid}/firewall").json()["settings"]["rulesets"] == [rs],
                   timeout=10, what="the VM's rulesets saved")
        assert api.get(f"/api/v1/vms/{uuid}/firewall").json()["settings"]["default_policy"] == "drop"
        assert "flint:firewall" in virt.virsh("dumpxml", vm_name, "--inactive")
        # in use: the Firewall page will not offer to delete it
        page.goto(stack.base + "/firewall")
        expect(page.get_by_test_id(f"fw-delete-{rs}")).to_be_disabled()
        assert vm_name in page.get_by_test_id(f"fw-ruleset-row-{rs}").inner_text()
    finally:
        virt.remove(vm_name)
    eventually(lambda: api.delete(f"{RS}/{rs}").status_code == 204, timeout=15,
               what="the ruleset freed once the VM is gone")
