"""Inventory against the real libvirtd: changes made outside Flint (virsh) reach the API, the events
WebSocket and the browser without a reload; resync after the service or libvirtd was away."""

from __future__ import annotations

import json
import os
import signal
import time

import httpx
import pytest
from websockets.sync.client import connect

from tests.e2e import virt
from tests.e2e.conftest import ADMIN_PASSWORD
from tests.e2e.test_stack import _service_pid
from tests.helpers import eventually, login, token_client

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def api(stack):
    return token_client(stack.base, ADMIN_PASSWORD, "e2e-inventory", "admin", timeout=30)


@pytest.fixture
def domain(tmp_path):
    names = []

    def make(prefix: str = "e2e-inv") -> tuple[str, str]:
        name = virt.unique_name(prefix)
        names.append(name)
        return name, virt.define(name, tmp_path)

    yield make
    for name in names:
        virt.remove(name)


def vm_state(api: httpx.Client, vm_id: str) -> str | None:
    resp = api.get(f"/api/v1/vms/{vm_id}")
    return resp.json()["state"] if resp.status_code == 200 else None


def test_virsh_define_start_destroy_undefine_show_up_in_the_api(api, domain):
    name, uuid = domain()
    vm = eventually(lambda: api.get(f"/api/v1/vms/{uuid}").json() if vm_state(api, uuid) else None,
                    timeout=10, what="defined VM listed")
    assert vm["name"] == name and vm["state"] == "shutoff" and vm["host"] == "local"
    assert vm["memory_mib"] == 64 and vm["vcpus"] == 1
    assert vm["disks"][0]["device"] == "cdrom" and vm["disks"][0]["path"] == virt.IPXE_ISO
    assert vm["graphics"][0]["type"] == "vnc"
    virt.virsh("start", name)
    eventually(lambda: vm_state(api, uuid) == "running", timeout=10, what="running")
    assert api.get(f"/api/v1/vms/{uuid}").json()["graphics"][0]["port"] >= 5900
    virt.virsh("destroy", name)
    eventually(lambda: vm_state(api, uuid) == "shutoff", timeout=10, what="shutoff")
    virt.virsh("undefine", name)
    eventually(lambda: api.get(f"/api/v1/vms/{uuid}").status_code == 404, timeout=10, what="gone")
    assert uuid not in {v["id"] for v in api.get("/api/v1/vms").json()["items"]}


def _ws_url(stack, since: int | None = None) -> str:
    url = stack.base.replace("http://", "ws://") + "/api/v1/events"
    return url if since is None else f"{url}?since={since}"


def test_events_websocket_pushes_snapshot_then_changes_and_resumes(stack, api, domain):
    headers = {"Authorization": api.headers["Authorization"]}
    with connect(_ws_url(stack), additional_headers=headers, open_timeout=10) as ws:
        snapshot = json.loads(ws.recv(timeout=10))
        assert snapshot["kind"] == "snapshot"
        assert {"vms", "hosts", "pools", "networks"} <= set(snapshot["data"])
        assert any(h["name"] == "local" for h in snapshot["data"]["hosts"])
        name, uuid = domain()
        virt.virsh("start", name)
        seen: list[dict] = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            msg = json.loads(ws.recv(timeout=15))
            if msg["kind"] == "domain" and msg["id"] == uuid:
                seen.append(msg)
                if msg["data"] and msg["data"]["state"] == "running":
                    break
        assert seen and seen[-1]["data"]["state"] == "running", seen
        last_seq = seen[-1]["seq"]
        assert last_seq > snapshot["seq"]
    # Disconnected: a change happens; resuming with ?since= brings it, without a snapshot.
    virt.virsh("destroy", name)
    eventually(lambda: vm_state(api, uuid) == "shutoff", timeout=10, what="shutoff")
    with connect(_ws_url(stack, last_seq), additional_headers=headers, open_timeout=10) as ws:
        first = json.loads(ws.recv(timeout=10))
        assert first["kind"] != "snapshot"
        assert first["seq"] == last_seq + 1, "resume must not skip an event"
        msgs = [first]
        while not (msgs[-1]["kind"] == "domain" and msgs[-1]["id"] == uuid and msgs[-1]["data"]
                   and msgs[-1]["data"]["state"] == "shutoff"):
            msgs.append(json.loads(ws.recv(timeout=10)))
        seqs = [m["seq"] for m in msgs if m["seq"]]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_events_websocket_refuses_anonymous_and_foreign_origin(stack):
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus):
        with connect(_ws_url(stack), open_timeout=5) as ws:
            ws.recv(timeout=5)
    client = login(stack.base, password=ADMIN_PASSWORD)
    cookie = f"flint_session={client.cookies['flint_session']}"
    with pytest.raises(InvalidStatus):
        with connect(_ws_url(stack), additional_headers={"Cookie": cookie}, origin="http://evil.example",
                     open_timeout=5) as ws:
            ws.recv(timeout=5)
    with connect(_ws_url(stack), additional_headers={"Cookie": cookie}, origin=stack.base, open_timeout=5) as ws:
        assert json.loads(ws.recv(timeout=10))["kind"] == "snapshot"


def test_domain_undefined_while_inventory_was_down_is_gone_after_restart(stack, api, domain):
    name, uuid = domain()
    eventually(lambda: vm_state(api, uuid) == "shutoff", timeout=10, what="listed")
    pid = _service_pid(stack, "inventory")
    os.kill(pid, signal.SIGSTOP)  # down: it sees nothing from here on
    try:
        virt.virsh("undefine", name)
        time.sleep(1)
        assert vm_state(api, uuid) == "shutoff", "nothing else may have removed it"
    finally:
        os.kill(pid, signal.SIGKILL)  # works on a stopped process too
    eventually(lambda: api.get(f"/api/v1/vms/{uuid}").status_code == 404, timeout=15, what="gone after resync")


def test_after_a_libvirtd_restart_inventory_reconnects_and_resyncs(stack, api, domain):
    gone_name, gone_uuid = domain("e2e-gone")
    eventually(lambda: vm_state(api, gone_uuid) == "shutoff", timeout=10, what="listed")
    virt.restart_libvirtd()
    # Changed while Flint may still be reconnecting: resync must notice, and events must flow again.
    virt.virsh("undefine", gone_name)
    name, uuid = domain("e2e-after")
    eventually(lambda: vm_state(api, uuid) == "shutoff", timeout=30, what="new VM after restart")
    eventually(lambda: api.get(f"/api/v1/vms/{gone_uuid}").status_code == 404, timeout=30, what="gone")
    virt.virsh("start", name)
    eventually(lambda: vm_state(api, uuid) == "running", timeout=10, what="events after reconnect")
    details = api.get("/api/v1/health/details").json()
    host = next(h for h in details["hosts"] if h["name"] == "local")
    assert host["libvirt"]["ok"]


def test_vm_list_in_the_browser_changes_without_reload(stack, browser, domain):
    name, uuid = domain("e2e-ui")
    page = browser.new_page()
    try:
        page.goto(stack.base + "/login")
        page.get_by_test_id("login-username").fill("admin")
        page.get_by_test_id("login-password").fill(ADMIN_PASSWORD)
        page.get_by_test_id("login-submit").click()
        page.get_by_test_id("current-user").wait_for()
        page.get_by_test_id("nav-vms").click()
        row = page.get_by_test_id(f"vm-row-{name}")
        row.wait_for(timeout=10_000)
        assert row.get_attribute("data-state") == "shutoff"
        page.evaluate("window.__noReload = true")
        virt.virsh("start", name)
        page.wait_for_selector(f'[data-testid="vm-row-{name}"][data-state="running"]', timeout=10_000)
        virt.virsh("destroy", name)
        page.wait_for_selector(f'[data-testid="vm-row-{name}"][data-state="shutoff"]', timeout=10_000)
        assert page.evaluate("window.__noReload") is True, "the page was reloaded"
    finally:
        page.close()
