"""The create-VM wizard's network-install and PXE sources in the browser: a PXE VM on an isolated network
without an address (the wizard warns that nobody serves PXE there), and a network install from a loopback
install tree whose running definition carries the kernel arguments."""

from __future__ import annotations

import re

import pytest
from lxml import etree
from playwright.sync_api import Page, expect

from tests.e2e import virt
from tests.e2e.conftest import ADMIN_PASSWORD
from tests.e2e.netinstall_support import serve_tree
from tests.e2e.test_ui_accounts import sign_in
from tests.e2e.vm_create_support import destroy_lab, make_lab

pytestmark = pytest.mark.e2e
TIMEOUT = 20_000


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = make_lab(tmp_path_factory.mktemp("lab"))
    yield lab
    destroy_lab(lab)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    server = serve_tree(tmp_path_factory.mktemp("tree"))
    yield server
    server.stop()


def created(page: Page) -> None:
    """The job succeeded: the wizard opens the new VM's page."""
    page.wait_for_url(re.compile(r"/vms/[0-9a-f-]{36}$"), timeout=TIMEOUT)


def _through_the_wizard(page: Page, lab, start: bool) -> None:
    """From the source step (filled in) to the created VM: memory, one small disk in the lab pool."""
    page.get_by_test_id("create-next").click()
    page.get_by_test_id("create-memory").fill("128")
    page.get_by_test_id("create-next").click()
    page.get_by_test_id("disk-0-size").fill("0.05")
    page.get_by_test_id("disk-0-pool").select_option(lab.pool)
    for _ in ("disks", "network", "cloudinit"):
        page.get_by_test_id("create-next").click()
    if not start:
        page.get_by_test_id("create-start").uncheck()
    page.get_by_test_id("create-next").click()
    expect(page.get_by_test_id("create-review")).to_be_visible()
    page.get_by_test_id("create-submit").click()
    created(page)


def test_wizard_pxe_on_an_isolated_network_warns_and_boots_the_nic_first(stack, browser, lab):
    name = lab.track(virt.unique_name("e2e-uipxe"))
    page = sign_in(browser, stack.base, "admin", ADMIN_PASSWORD)
    try:
        page.goto(stack.base + "/vms/new")
        page.get_by_test_id("create-name").fill(name)
        page.get_by_test_id("source-pxe").check()
        page.get_by_test_id("pxe-kind").select_option("network")
        page.get_by_test_id("pxe-name").select_option(lab.network)
        warning = page.get_by_test_id("pxe-warning")
        expect(warning).to_have_attribute("data-ready", "no", timeout=TIMEOUT)
        expect(warning).to_contain_text("no IPv4 address")
        _through_the_wizard(page, lab, start=False)
    finally:
        page.close()
    final = etree.fromstring(virt.virsh("dumpxml", "--inactive", name).encode())
    nic = final.find("devices/interface")
    assert nic.find("source").get("network") == lab.network and nic.find("boot").get("order") == "1"
    assert final.find("os/boot") is None


def test_wizard_network_install_carries_the_kernel_arguments(stack, browser, lab, tree):
    name = lab.track(virt.unique_name("e2e-uini"))
    args = f"inst.ks={tree.url}/ks.cfg"
    page = sign_in(browser, stack.base, "admin", ADMIN_PASSWORD)
    try:
        page.goto(stack.base + "/vms/new")
        page.get_by_test_id("create-name").fill(name)
        page.get_by_test_id("source-netinstall").check()
        page.get_by_test_id("netinstall-location").fill(f"{tree.url}/nothing/")
        page.get_by_test_id("netinstall-kernel-args").fill(args)
        page.get_by_test_id("create-next").click()
        # The tree is checked by the host only at submission: go through, be refused, fix it.
        page.get_by_test_id("create-memory").fill("128")
        page.get_by_test_id("create-next").click()
        page.get_by_test_id("disk-0-size").fill("0.05")
        page.get_by_test_id("disk-0-pool").select_option(lab.pool)
        for _ in ("disks", "network", "cloudinit", "advanced"):
            page.get_by_test_id("create-next").click()
        page.get_by_test_id("create-submit").click()
        expect(page.get_by_test_id("netinstall-source")).to_contain_text("no install tree there", timeout=TIMEOUT)
        page.get_by_test_id("error-banner").get_by_role("button", name="Dismiss").click()  # read, put away
        page.get_by_test_id("netinstall-location").fill(f"{tree.url}/tree/")
        for _ in ("source", "resources", "disks", "network", "cloudinit", "advanced"):
            page.get_by_test_id("create-next").click()
        page.get_by_test_id("create-submit").click()
        created(page)
    finally:
        page.close()
    live = etree.fromstring(virt.virsh("dumpxml", name).encode())
    assert live.findtext("os/cmdline") == args and live.findtext("on_reboot") == "destroy"
    assert etree.fromstring(virt.virsh("dumpxml", "--inactive", name).encode()).find("os/kernel") is None
