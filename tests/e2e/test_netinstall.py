"""Network install and PXE on the real libvirtd (TCG guests, loopback only).

Network install: an HTTP server on 127.0.0.1 serves an install tree whose .treeinfo names Debian's
ipxe.lkrn as the kernel (and a small initrd). The VM boots it (its screen shows iPXE), the running
definition carries the kernel arguments, the persistent one boots the disk and has no kernel, and the
downloaded files are gone from the pool.

PXE: a VM on an isolated network without any address: the NIC is first in the boot order and iPXE tries
DHCP on net0 (the guest sends packets on its NIC; its screen shows iPXE). Screenshots are kept in
/tmp/flint-e2e-screens for a person to look at."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lxml import etree

from tests.e2e import virt
from tests.e2e.conftest import ADMIN_PASSWORD
from tests.e2e.netinstall_support import serve_tree
from tests.e2e.screen import Screen, screenshot
from tests.e2e.vm_create_support import destroy_lab, make_lab, wait_job
from tests.helpers import REPO, eventually, flint_env, token_client

pytestmark = pytest.mark.e2e
SCREENS = Path("/tmp/flint-e2e-screens")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    server = serve_tree(tmp_path_factory.mktemp("tree"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api(stack):
    return token_client(stack.base, ADMIN_PASSWORD, "e2e-netinstall", "operator", timeout=60)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = make_lab(tmp_path_factory.mktemp("lab"))
    yield lab
    destroy_lab(lab)


def _create(api, body) -> dict:
    resp = api.post("/api/v1/vms", json=body)
    assert resp.status_code == 202, resp.text
    return resp.json()


def _screen_with_text(name: str, timeout: float = 20) -> tuple[Screen, Path]:
    """Screenshots until the screen holds lines of text; the PNG is kept for a person to look at."""
    SCREENS.mkdir(exist_ok=True)
    path = SCREENS / f"{name}.png"
    deadline = time.monotonic() + timeout
    shot = None
    while time.monotonic() < deadline:
        shot = screenshot(name, path)
        if shot.foreground_share() > 0.003 and shot.rows_with_ink() >= 30:
            return shot, path
        time.sleep(0.5)
    raise AssertionError(f"{name}'s screen stayed blank for {timeout} s (see {path})")


def _xml(*args: str) -> etree._Element:
    return etree.fromstring(virt.virsh("dumpxml", *args).encode())


def test_network_install_boots_the_trees_kernel_with_the_arguments(api, lab, tree):
    name = lab.track(virt.unique_name("e2e-netinst"))
    args = f"inst.ks={tree.url}/ks.cfg console=ttyS0"
    body = {"name": name, "vcpus": 1, "memory_mib": 128,
            "source": {"kind": "network_install", "location": f"{tree.url}/tree/", "kernel_args": args},
            "disks": [{"size_gib": 0.05, "pool": lab.pool}], "nics": [], "start": True}
    job = wait_job(api, _create(api, body)["id"])
    assert job["state"] == "succeeded", job
    assert job["result"]["install"] == {"kernel": f"{tree.url}/tree/images/pxeboot/vmlinuz", "cmdline": args}
    assert {"/tree/.treeinfo", "/tree/images/pxeboot/vmlinuz", "/tree/images/pxeboot/initrd.img"} <= set(tree.requests)

    live = _xml(name)
    assert live.findtext("os/cmdline") == args, "the running install carries the kernel arguments"
    assert live.findtext("os/kernel") and live.findtext("os/initrd")
    assert live.findtext("on_reboot") == "destroy"
    final = _xml("--inactive", name)
    assert final.find("os/kernel") is None and final.find("os/initrd") is None and final.find("os/cmdline") is None
    assert [b.get("dev") for b in final.findall("os/boot")] == ["hd"] and final.findtext("on_reboot") == "restart"
    assert "Persistent:     yes" in virt.virsh("dominfo", name)

    shot, path = _screen_with_text(name)
    # iPXE (the "installer") carries on: its banner and what it made of the command line follow.
    later = eventually(lambda: (s := screenshot(name, SCREENS / f"{name}-later.png")).rows_with_ink()
                       > shot.rows_with_ink() + 40 and s, timeout=30, interval=1, what="iPXE's banner")
    print(f"network install screens: {path}, {SCREENS / f'{name}-later.png'}", file=sys.stderr)
    assert later.colours() >= 2
    # QEMU read the files at start: the downloads are gone, only the VM's disk is left in the pool.
    assert lab.new_volumes() == {f"{name}-disk0.qcow2"}
    assert not Path(live.findtext("os/kernel")).exists()


def test_network_install_refusals_name_the_field(api, lab, tree):
    before = lab.volumes()
    cases = [
        ({"location": f"{tree.url}/nothing-here/"}, "source.location", "no install tree there"),
        ({"location": f"{tree.url}/tree/", "kernel": f"{tree.url}/missing-kernel"}, "source.kernel", "404"),
        ({"location": "ftp://127.0.0.1/tree/"}, "source.location", "http"),
    ]
    for source, field, words in cases:
        body = {"name": virt.unique_name("e2e-netbad"), "memory_mib": 128, "nics": [],
                "source": {"kind": "network_install", **source}, "disks": [{"size_gib": 0.05, "pool": lab.pool}]}
        resp = api.post("/api/v1/vms", json=body)
        assert resp.status_code == 422, resp.text
        assert resp.json()["errors"][0]["field"] == field and words in resp.json()["detail"], resp.json()
    body["source"] = {"kind": "network_install", "location": f"{tree.url}/tree/"}
    body["start"] = False
    resp = api.post("/api/v1/vms", json=body)
    assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "start", resp.text
    assert lab.volumes() == before


def _tx_packets(name: str) -> int:
    iface = _xml(name).find("devices/interface/target").get("dev")
    stats = dict(line.split()[1:3] for line in virt.virsh("domifstat", name, iface).splitlines() if line.strip())
    return int(stats.get("tx_packets", 0))


def test_pxe_boot_tries_dhcp_on_net0_of_an_isolated_network(api, lab):
    name = lab.track(virt.unique_name("e2e-pxe"))
    body = {"name": name, "vcpus": 1, "memory_mib": 128, "source": {"kind": "pxe", "network": lab.network},
            "disks": [{"size_gib": 0.05, "pool": lab.pool}], "nics": [], "start": True}
    job = wait_job(api, _create(api, body)["id"])
    assert job["state"] == "succeeded", job
    warnings = job["result"]["warnings"]
    assert len(warnings) == 1 and "no IPv4 address" in warnings[0], warnings

    final = _xml("--inactive", name)
    assert final.find("os/boot") is None, "per-device boot order only"
    nic = final.find("devices/interface")
    assert (nic.get("type"), nic.find("source").get("network"), nic.find("boot").get("order")) == \
           ("network", lab.network, "1")
    assert final.find("devices/disk[@device='disk']/boot").get("order") == "2"

    shot, path = _screen_with_text(name)
    # iPXE on net0 sends DHCP discovers: the guest transmits on its only NIC (nobody answers).
    sent = eventually(lambda: _tx_packets(name) > 0 and _tx_packets(name), timeout=30, what="DHCP from the guest")
    time.sleep(2)
    later = screenshot(name, SCREENS / f"{name}-dhcp.png")
    print(f"PXE screens: {path}, {SCREENS / f'{name}-dhcp.png'}", file=sys.stderr)
    assert sent > 0 and later.rows_with_ink() > shot.rows_with_ink()


def test_pxe_on_a_host_bridge_warns_and_a_missing_bridge_is_refused(api, lab):
    bridge = f"flintpxe{os.urandom(2).hex()}"
    subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], check=True)  # no address, left down
    subprocess.run(["sysctl", "-q", "-w", f"net.ipv6.conf.{bridge}.disable_ipv6=1"], check=False)
    try:
        name = lab.track(virt.unique_name("e2e-pxebr"))
        body = {"name": name, "memory_mib": 128, "source": {"kind": "pxe", "bridge": bridge}, "nics": [],
                "start": False}
        job = wait_job(api, _create(api, body)["id"])
        assert job["state"] == "succeeded", job
        assert "cannot see" in job["result"]["warnings"][0]
        nic = _xml("--inactive", name).find("devices/interface")
        assert (nic.get("type"), nic.find("source").get("bridge"), nic.find("boot").get("order")) == \
               ("bridge", bridge, "1")
    finally:
        virt.virsh("undefine", name, check=False)
        subprocess.run(["ip", "link", "del", bridge], check=False)
    resp = api.post("/api/v1/vms", json={"name": virt.unique_name("e2e-pxebad"), "memory_mib": 128,
                                         "source": {"kind": "pxe", "bridge": "flintnone9"}})
    assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "source.bridge", resp.text


def test_cli_location_and_pxe(api, lab, tree, stack):
    token = api.headers["Authorization"].removeprefix("Bearer ")
    env = flint_env(FLINT_URL=stack.base, FLINT_TOKEN=token)

    def flint(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "flint.cli.main", "vm", "create", *args], env=env, cwd=REPO,
                              capture_output=True, text=True, timeout=180)

    name = lab.track(virt.unique_name("e2e-clini"))
    proc = flint("--name", name, "--memory", "128", "--location", f"{tree.url}/tree/", "--kernel-args",
                 f"inst.ks={tree.url}/ks.cfg", "--disk", f"0.05@{lab.pool}", "--wait")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"VM {name} created" in proc.stdout
    assert _xml(name).findtext("os/cmdline") == f"inst.ks={tree.url}/ks.cfg"
    assert _xml("--inactive", name).find("os/kernel") is None

    name = lab.track(virt.unique_name("e2e-clipxe"))
    proc = flint("--name", name, "--memory", "128", "--pxe", "--network", lab.network, "--no-start", "--wait")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "warning: PXE may find no server" in proc.stderr and "no IPv4 address" in proc.stderr
    assert _xml("--inactive", name).find("devices/interface/boot").get("order") == "1"

    proc = flint("--name", virt.unique_name("e2e-clibad"), "--pxe")
    assert proc.returncode != 0 and "--pxe boots from a NIC" in proc.stderr
