"""The Networks page in the browser: it lists the host's networks live, creates an isolated one (a refused
address shown at its field first), and deletes it. Nothing here starts a network that has an address."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree
from playwright.sync_api import expect

from tests.e2e import virt
from tests.e2e.conftest import ADMIN_PASSWORD
from tests.e2e.test_ui_accounts import sign_in

pytestmark = pytest.mark.e2e
TIMEOUT = 15_000
SCREENS = Path("/tmp/flint-e2e-screens")


@pytest.fixture
def names():
    made: list[str] = []
    yield made
    for name in made:
        virt.virsh("net-destroy", name, check=False)
        virt.virsh("net-undefine", name, check=False)


def test_networks_page_lists_and_creates_an_isolated_network(stack, browser, names, tmp_path):
    # One made behind Flint's back (virsh), isolated L2 without an address: the page shows it live.
    outside = virt.unique_name("e2e-uin")
    names.append(outside)
    xml = tmp_path / "net.xml"
    xml.write_text(f"<network><name>{outside}</name></network>")
    page = sign_in(browser, stack.base, "admin", ADMIN_PASSWORD)
    try:
        page.get_by_test_id("nav-networks").click()
        expect(page.get_by_test_id("networks-table")).to_be_visible(timeout=TIMEOUT)
        virt.virsh("net-define", str(xml))
        virt.virsh("net-start", outside)
        row = page.get_by_test_id(f"network-row-{outside}")
        expect(row).to_have_attribute("data-active", "yes", timeout=TIMEOUT)
        expect(row).to_have_attribute("data-mode", "isolated")
        expect(page.get_by_test_id("interface-row-lo")).to_be_visible(timeout=TIMEOUT)

        name = virt.unique_name("e2e-uinet")
        names.append(name)
        page.get_by_test_id("networks-create").click()
        form = page.get_by_test_id("network-form")
        expect(form).to_be_visible()
        form.get_by_test_id("network-form-name").fill(name)
        form.get_by_test_id("network-form-mode").select_option("isolated")
        form.get_by_test_id("network-form-autostart").uncheck()
        # An address the gateway refuses: its reason appears at the field, nothing is made.
        form.get_by_test_id("network-form-address").fill("10.213.90.300/24")
        form.get_by_test_id("network-form-submit").click()
        expect(form.get_by_test_id("network-form-address-error")).to_contain_text("not a valid IPv4 address",
                                                                                  timeout=TIMEOUT)
        assert name not in virt.virsh("net-list", "--all", "--name").split()
        SCREENS.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENS / "network-form-refused.png"))
        # Plain L2: no address at all, started at once.
        form.get_by_test_id("network-form-with-ip").uncheck()
        form.get_by_test_id("network-form-submit").click()
        expect(form).to_be_hidden(timeout=TIMEOUT)
        row = page.get_by_test_id(f"network-row-{name}")
        expect(row).to_have_attribute("data-active", "yes", timeout=TIMEOUT)
        expect(row).to_have_attribute("data-mode", "isolated")
        defined = etree.fromstring(virt.virsh("net-dumpxml", "--inactive", name).encode())
        assert defined.find("ip") is None and defined.find("forward") is None
        assert "Active:         yes" in virt.virsh("net-info", name)

        detail = page.get_by_test_id("network-detail")
        expect(detail).to_contain_text(name, timeout=TIMEOUT)
        expect(page.get_by_test_id("network-pxe")).to_have_attribute("data-ready", "no")
        expect(page.get_by_test_id("network-pxe")).to_contain_text("no IPv4 address")

        page.get_by_test_id(f"network-stop-{name}").click()
        expect(row).to_have_attribute("data-active", "no", timeout=TIMEOUT)
        page.get_by_test_id(f"network-delete-{name}").click()
        page.get_by_test_id("confirm-ok").click()
        expect(row).to_have_count(0, timeout=TIMEOUT)
        assert name not in virt.virsh("net-list", "--all", "--name").split()
        page.screenshot(path=str(SCREENS / "networks-page.png"), full_page=True)
    finally:
        page.close()
