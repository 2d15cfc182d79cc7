"""`flint up` against the real libvirtd: health, auth, a crashed service coming back, the UI shell."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import httpx
import pytest

from flint import subjects
from tests.e2e.conftest import ADMIN_PASSWORD
from tests.helpers import eventually, login

pytestmark = pytest.mark.e2e


def _virsh_version() -> str:
    out = subprocess.run(["virsh", "-c", "qemu:///system", "version"], capture_output=True, text=True).stdout
    return re.search(r"Using library: libvirt (\d+\.\d+\.\d+)", out).group(1)


def _healthy(client: httpx.Client) -> dict | None:
    """NATS and host `local` healthy (other tests may have added hosts that are gone by now)."""
    details = client.get("/api/v1/health/details").json()
    local = next((h for h in details["hosts"] if h["name"] == "local"), None)
    return details if details["nats"]["ok"] and local and local["ok"] else None


def test_health_details_show_nats_libvirt_and_four_services(stack):
    client = login(stack.base, password=ADMIN_PASSWORD)
    details = eventually(lambda: _healthy(client), timeout=30, what="all healthy")
    assert details["nats"]["ok"]
    host = next(h for h in details["hosts"] if h["name"] == "local")
    assert host["libvirt"]["ok"]
    assert host["libvirt"]["version"] == _virsh_version()
    assert host["uri"] == "qemu:///system"
    # This machine's /dev/kvm is not usable (kvm_pvm / no vmx): Flint must have chosen TCG by itself.
    with open("/proc/cpuinfo") as f:
        has_vmx = bool(re.search(r"\b(vmx|svm)\b", f.read()))
    pvm = os.path.exists("/sys/module/kvm_pvm")
    expected = "kvm" if has_vmx and not pvm and os.path.exists("/dev/kvm") else "qemu"
    assert host["virt_type"] == expected
    assert host["virt_type_reason"]
    assert sorted(host["services"]) == sorted(subjects.SERVICES)
    assert all(s["ok"] for s in host["services"].values())


def test_anonymous_is_refused(stack):
    assert httpx.get(f"{stack.base}/api/v1/health").status_code == 200
    resp = httpx.get(f"{stack.base}/api/v1/health/details")
    assert resp.status_code == 401
    assert resp.headers["content-type"].startswith("application/problem+json")


def _service_pid(stack, service: str) -> int:
    mine = []
    for entry in os.listdir("/proc"):
        # only our stack's child: its parent is flint up
        if entry.isdigit() and _ppid(int(entry)) == stack.proc.proc.pid:
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if f"services.{service}".encode() in argv:
                mine.append(int(entry))
    assert len(mine) == 1, f"expected one {service} child of flint up, found {mine}"
    return mine[0]


def _ppid(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except OSError:
        return -1


def test_a_killed_service_is_back_within_5_seconds(stack):
    client = login(stack.base, password=ADMIN_PASSWORD)
    eventually(lambda: _healthy(client), timeout=30, what="all healthy")
    old = _service_pid(stack, "provisioner")
    os.kill(old, signal.SIGKILL)
    t0 = time.monotonic()

    def back():
        details = client.get("/api/v1/health/details").json()
        host = next(h for h in details["hosts"] if h["name"] == "local")
        return host["services"]["provisioner"]["ok"] and _service_pid(stack, "provisioner") != old

    eventually(back, timeout=5, interval=0.05, what="provisioner back")
    assert time.monotonic() - t0 < 5


def test_login_in_the_browser_shows_the_shell(stack, browser):
    page = browser.new_page()
    try:
        page.goto(stack.base + "/")
        page.get_by_test_id("login-username").fill("admin")
        page.get_by_test_id("login-password").fill("wrong-password")
        page.get_by_test_id("login-submit").click()
        page.get_by_test_id("login-error").wait_for()
        assert "wrong user name or password" in page.get_by_test_id("login-error").inner_text()
        page.get_by_test_id("login-password").fill(ADMIN_PASSWORD)
        page.get_by_test_id("login-submit").click()
        page.get_by_test_id("current-user").wait_for()
        assert "admin" in page.get_by_test_id("current-user").inner_text()
        for name in ("dashboard", "vms", "storage", "networks", "firewall", "hosts", "settings"):
            assert page.get_by_test_id(f"nav-{name}").is_visible()
        page.wait_for_selector('[data-testid="live-indicator"][data-state="live"]', timeout=10_000)
        # The session cookie is HttpOnly: page scripts cannot read it.
        assert "flint_session" not in page.evaluate("document.cookie")
    finally:
        page.close()
