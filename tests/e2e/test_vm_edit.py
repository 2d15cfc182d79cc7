"""Changing existing VMs on the real libvirtd: PATCH settings, snapshots, clones, disks and NICs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from lxml import etree
from playwright.sync_api import expect

from tests.e2e import virt
from tests.e2e.conftest import ADMIN_PASSWORD
from tests.helpers import eventually, flint_env, login, token_client

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def api(stack):
    return token_client(stack.base, ADMIN_PASSWORD, "e2e-edit", "operator", timeout=60)


@pytest.fixture(scope="module")
def pool():
    with virt.dir_pool("e2e-edit-pool") as made:
        yield made


@pytest.fixture(scope="module")
def isolated_net():
    """An isolated network with no <ip>: nothing on the host is addressed, no DHCP, no NAT."""
    name = virt.unique_name("e2e-edit-net")
    root = etree.Element("network")
    etree.SubElement(root, "name").text = name
    xml = Path("/var/tmp") / f"{name}.xml"
    xml.write_text(etree.tostring(root, encoding="unicode"))
    virt.virsh("net-define", str(xml))
    virt.virsh("net-start", name)
    xml.unlink()
    yield name
    virt.virsh("net-destroy", name, check=False)
    virt.virsh("net-undefine", name, check=False)


def _remove(name: str) -> None:
    virt.virsh("destroy", name, check=False)
    virt.virsh("undefine", name, "--nvram", "--snapshots-metadata", check=False)


@pytest.fixture
def vm(api, pool, tmp_path):
    """A tiny TCG VM with one qcow2 disk in the test pool: (name, uuid, disk path)."""
    made: list[str] = []

    def make() -> tuple[str, str, str]:
        pool_name, pool_path = pool
        name = virt.unique_name("e2e-edit")
        virt.virsh("vol-create-as", pool_name, f"{name}.qcow2", "16M", "--format", "qcow2")
        disk_path = str(pool_path / f"{name}.qcow2")
        root = etree.fromstring(virt.tiny_domain_xml(name))
        etree.SubElement(etree.SubElement(root, "features"), "acpi")  # PCI hotplug needs ACPI, as Flint's VMs have
        disk = etree.SubElement(root.find("devices"), "disk", type="file", device="disk")
        etree.SubElement(disk, "driver", name="qemu", type="qcow2")
        etree.SubElement(disk, "source", file=disk_path)
        etree.SubElement(disk, "target", dev="vda", bus="virtio")
        (tmp_path / f"{name}.xml").write_text(etree.tostring(root, encoding="unicode"))
        virt.virsh("define", str(tmp_path / f"{name}.xml"))
        made.append(name)
        uuid = virt.virsh("domuuid", name).strip()
        eventually(lambda: api.get(f"/api/v1/vms/{uuid}").status_code == 200, timeout=15, what="listed")
        return name, uuid, disk_path

    yield make
    for name in made:
        _remove(name)


def _inactive(name: str) -> etree._Element:
    return etree.fromstring(virt.virsh("dumpxml", "--inactive", name).encode())


def _wait_job(api: httpx.Client, job_id: str, timeout: float = 120) -> dict:
    return eventually(
        lambda: (j := api.get(f"/api/v1/jobs/{job_id}").json()) and j.get("state") in ("succeeded", "failed") and j,
        timeout=timeout, what=f"job {job_id} finished",
    )


def _state(name: str) -> str:
    return virt.virsh("domstate", name).strip()


# --------------------------------------------------------------------------------------------- PATCH


def test_patch_changes_the_definition(api, vm):
    name, uuid, _ = vm()
    resp = api.patch(f"/api/v1/vms/{uuid}", json={"vcpus": 2, "memory_mib": 96, "description": "edited",
                                                  "autostart": True})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert set(body["live"]) == {"vcpus", "memory_mib", "description", "autostart"}
    dom = _inactive(name)
    assert dom.findtext("vcpu") == "2"
    assert int(dom.findtext("memory")) == 96 * 1024
    assert dom.findtext("description") == "edited"
    assert "enable" in virt.virsh("dominfo", name).split("Autostart:")[1].splitlines()[0]
    api.patch(f"/api/v1/vms/{uuid}", json={"autostart": False})


def test_patch_running_vm_says_next_boot(api, vm):
    name, uuid, _ = vm()
    virt.virsh("start", name)
    resp = api.patch(f"/api/v1/vms/{uuid}", json={"vcpus": 2})
    assert resp.status_code == 200, resp.text
    assert resp.json()["next_boot"] == ["vcpus"]
    assert "next boot" in resp.json()["message"]
    assert _inactive(name).findtext("vcpu") == "2"


@pytest.mark.parametrize("body,field", [
    ({"vcpus": 0}, "vcpus"), ({"memory_mib": "lots"}, "memory_mib"), ({"colour": "red"}, "colour"),
    ({}, "body"), ({"memory_mib": 1 << 40}, "memory_mib"),
])
def test_patch_invalid_names_the_field(api, vm, body, field):
    _, uuid, _ = vm()
    resp = api.patch(f"/api/v1/vms/{uuid}", json=body)
    assert 400 <= resp.status_code < 500, resp.text
    assert field in resp.text


# ------------------------------------------------------------------------------------------ snapshots


def test_snapshot_of_a_shut_off_vm_restores_its_definition(api, vm):
    name, uuid, _ = vm()
    resp = api.post(f"/api/v1/vms/{uuid}/snapshots", json={"name": "before", "description": "64 MiB"})
    assert resp.status_code == 201, resp.text
    assert resp.json()["name"] == "before" and resp.json()["state"] == "shutoff"
    assert "before" in virt.virsh("snapshot-list", name, "--name")
    listed = api.get(f"/api/v1/vms/{uuid}/snapshots").json()["snapshots"]
    assert [s["name"] for s in listed] == ["before"] and listed[0]["description"] == "64 MiB"
    assert api.post(f"/api/v1/vms/{uuid}/snapshots", json={"name": "before"}).status_code == 409

    api.patch(f"/api/v1/vms/{uuid}", json={"memory_mib": 128}).raise_for_status()
    assert int(_inactive(name).findtext("memory")) == 128 * 1024
    resp = api.post(f"/api/v1/vms/{uuid}/snapshots/before/revert")
    assert resp.status_code == 200, resp.text
    assert int(_inactive(name).findtext("memory")) == 64 * 1024

    resp = api.delete(f"/api/v1/vms/{uuid}/snapshots/before")
    assert resp.status_code == 200, resp.text
    assert "before" not in virt.virsh("snapshot-list", name, "--name")
    assert api.delete(f"/api/v1/vms/{uuid}/snapshots/before").status_code == 404


def test_revert_of_a_running_snapshot_runs_again(api, vm):
    name, uuid, _ = vm()
    virt.virsh("start", name)
    resp = api.post(f"/api/v1/vms/{uuid}/snapshots", json={"name": "live"})
    assert resp.status_code == 201, resp.text
    assert resp.json()["state"] == "running"
    virt.virsh("destroy", name)
    assert _state(name) == "shut off"
    resp = api.post(f"/api/v1/vms/{uuid}/snapshots/live/revert")
    assert resp.status_code == 200, resp.text
    assert resp.json()["state"] == "running"
    assert _state(name) == "running"


def test_snapshot_refused_for_a_raw_disk(api, vm, pool):
    name, uuid, disk = vm()
    root = _inactive(name)
    root.find("devices/disk[@device='disk']/driver").set("type", "raw")
    path = Path("/var/tmp") / f"{name}-raw.xml"
    path.write_text(etree.tostring(root, encoding="unicode"))
    virt.virsh("define", str(path))
    path.unlink()
    resp = api.post(f"/api/v1/vms/{uuid}/snapshots", json={"name": "x"})
    assert resp.status_code == 422
    assert "qcow2" in resp.json()["detail"]


def test_snapshot_name_is_checked(api, vm):
    _, uuid, _ = vm()
    resp = api.post(f"/api/v1/vms/{uuid}/snapshots", json={"name": "../bad"})
    assert 400 <= resp.status_code < 500 and "name" in resp.text


# ---------------------------------------------------------------------------------------------- clone


def _qemu_info(path: str) -> dict:
    return json.loads(subprocess.run(["qemu-img", "info", "-U", "--output", "json", path], check=True,
                                     capture_output=True, text=True).stdout)


@pytest.mark.parametrize("linked", [False, True])
def test_clone(api, vm, pool, isolated_net, linked):
    name, uuid, disk = vm()
    api.post(f"/api/v1/vms/{uuid}/nics", json={"network": isolated_net}).raise_for_status()
    source_mac = _inactive(name).find("devices/interface/mac").get("address")
    clone = f"{name}-c"
    resp = api.post(f"/api/v1/vms/{uuid}/clone", json={"name": clone, "linked": linked})
    assert resp.status_code == 202, resp.text
    job = _wait_job(api, resp.json()["id"])
    try:
        assert job["state"] == "succeeded", job
        dom = _inactive(clone)
        assert dom.findtext("uuid") != uuid and job["result"]["id"] == dom.findtext("uuid")
        assert dom.find("devices/interface/mac").get("address") != source_mac
        new_path = str(pool[1] / f"{clone}-vda.qcow2")
        info = _qemu_info(new_path)
        if linked:
            assert info.get("full-backing-filename", info.get("backing-filename")) == disk
        else:
            assert "backing-filename" not in info
    finally:
        _remove(clone)
        virt.virsh("vol-delete", f"{clone}-vda.qcow2", "--pool", pool[0], check=False)


def test_clone_refuses_a_running_vm_and_a_taken_name(api, vm):
    name, uuid, _ = vm()
    resp = api.post(f"/api/v1/vms/{uuid}/clone", json={"name": name})
    assert resp.status_code == 409 and "name" in resp.text
    resp = api.post(f"/api/v1/vms/{uuid}/clone", json={"name": "bad name!"})
    assert resp.status_code == 422 and "name" in resp.text
    virt.virsh("start", name)
    resp = api.post(f"/api/v1/vms/{uuid}/clone", json={"name": f"{name}-x"})
    assert resp.status_code == 409 and "shut" in resp.json()["detail"]


# ------------------------------------------------------------------------------------- disks and NICs


@pytest.mark.parametrize("running", [False, True])
def test_attach_and_detach_a_disk(api, vm, pool, running):
    name, uuid, _ = vm()
    if running:
        virt.virsh("start", name)
    resp = api.post(f"/api/v1/vms/{uuid}/disks", json={"size_gib": 0.01, "pool": pool[0]})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["device"] == "vdb" and body["live"] is running
    assert _inactive(name).find("devices/disk/target[@dev='vdb']") is not None
    if running:
        assert "vdb" in virt.virsh("domblklist", name)
    resp = api.delete(f"/api/v1/vms/{uuid}/disks/vdb")
    assert resp.status_code == 200, resp.text
    assert _inactive(name).find("devices/disk/target[@dev='vdb']") is None
    assert (pool[1] / f"{name}-vdb.qcow2").exists()  # the volume is kept
    virt.virsh("vol-delete", f"{name}-vdb.qcow2", "--pool", pool[0], check=False)


@pytest.mark.parametrize("running", [False, True])
def test_attach_and_detach_a_nic(api, vm, isolated_net, running):
    name, uuid, _ = vm()
    if running:
        virt.virsh("start", name)
    resp = api.post(f"/api/v1/vms/{uuid}/nics", json={"network": isolated_net, "model": "e1000"})
    assert resp.status_code == 201, resp.text
    mac = resp.json()["device"]
    assert _inactive(name).find(f"devices/interface/mac[@address='{mac}']") is not None
    if running:
        assert mac in virt.virsh("domiflist", name)
    resp = api.delete(f"/api/v1/vms/{uuid}/nics/{mac}")
    assert resp.status_code == 200, resp.text
    assert _inactive(name).find(f"devices/interface/mac[@address='{mac}']") is None


@pytest.mark.parametrize("path,body,field", [
    ("disks", {"size_gib": 1}, "pool"),
    ("disks", {"pool": "x"}, "size_gib"),
    ("disks", {"size_gib": -1, "pool": "x"}, "size_gib"),
    ("disks", {"size_gib": 1, "pool": "no-such-pool"}, "pool"),
    ("disks", {"volume": "nopool/novol"}, "volume"),
    ("disks", {"size_gib": 1, "pool": "x", "bus": "floppy"}, "bus"),
    ("nics", {}, "network"),
    ("nics", {"network": "no-such-net"}, "network"),
    ("nics", {"network": "a", "model": "ne2k"}, "model"),
])
def test_attach_invalid_names_the_field(api, vm, path, body, field):
    _, uuid, _ = vm()
    resp = api.post(f"/api/v1/vms/{uuid}/{path}", json=body)
    assert 400 <= resp.status_code < 500, resp.text
    assert field in resp.text


def test_detach_unknown_devices_is_404(api, vm):
    _, uuid, _ = vm()
    assert api.delete(f"/api/v1/vms/{uuid}/disks/vdz").status_code == 404
    assert api.delete(f"/api/v1/vms/{uuid}/nics/52:54:00:00:00:01").status_code == 404


def test_viewer_cannot_edit(stack, vm):
    _, uuid, _ = vm()
    client = login(stack.base, password=ADMIN_PASSWORD)
    token = client.post("/api/v1/auth/tokens", json={"name": "e2e-edit-viewer", "role": "viewer"}).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.patch(f"{stack.base}/api/v1/vms/{uuid}", json={"vcpus": 2}, headers=headers).status_code == 403
    assert httpx.get(f"{stack.base}/api/v1/vms/{uuid}/snapshots", headers=headers).status_code == 200


# ------------------------------------------------------------------------------------------------ CLI


def test_cli_round_trip(stack, api, vm, pool, isolated_net):
    name, uuid, _ = vm()
    env = flint_env(FLINT_URL=stack.base, FLINT_TOKEN=api.headers["Authorization"].split()[1])

    def flint(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "flint.cli.main", *args], env=env, cwd=REPO,
                              capture_output=True, text=True, timeout=120)
        assert (proc.returncode == 0) == ok, (args, proc.stdout, proc.stderr)
        return proc

    assert "saved" in flint("vm", "set", name, "--vcpus", "2", "--memory", "80M").stdout
    assert _inactive(name).findtext("vcpu") == "2"
    flint("snapshot", "create", name, "s1", "--description", "first")
    listed = json.loads(flint("snapshot", "list", name, "--json").stdout)
    assert [s["name"] for s in listed["snapshots"]] == ["s1"]
    assert "reverted" in flint("snapshot", "revert", name, "s1").stdout
    flint("snapshot", "delete", name, "s1")
    assert "s1" not in virt.virsh("snapshot-list", name, "--name")
    assert "no snapshot" in flint("snapshot", "delete", name, "s1", ok=False).stderr

    attached = json.loads(flint("vm", "disk", "attach", name, "--size", "0.01", "--pool", pool[0], "--json").stdout)
    flint("vm", "disk", "detach", name, attached["device"])
    virt.virsh("vol-delete", attached["volume"].split("/")[1], "--pool", pool[0], check=False)
    nic = json.loads(flint("vm", "nic", "attach", name, "--network", isolated_net, "--json").stdout)
    flint("vm", "nic", "detach", name, nic["device"])

    clone = f"{name}-cli"
    try:
        assert "cloned" in flint("vm", "clone", name, clone, "--linked", "--wait").stdout
        assert clone in virt.virsh("list", "--all", "--name")
    finally:
        _remove(clone)
        virt.virsh("vol-delete", f"{clone}-vda.qcow2", "--pool", pool[0], check=False)


# ------------------------------------------------------------------------------------------------- UI


@pytest.fixture
def page(browser, stack):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(stack.base + "/login")
    page.get_by_test_id("login-username").fill("admin")
    page.get_by_test_id("login-password").fill(ADMIN_PASSWORD)
    page.get_by_test_id("login-submit").click()
    page.wait_for_url(lambda url: "/login" not in url, timeout=15000)
    page.on("dialog", lambda d: d.accept())  # the confirm() of revert and delete
    yield page
    page.close()


def test_ui_snapshots_and_clone(page, stack, vm, pool):
    name, uuid, _ = vm()
    page.goto(f"{stack.base}/vms/{uuid}?tab=snapshots")
    page.get_by_test_id("snapshot-name").fill("ui-snap")
    page.get_by_test_id("snapshot-description").fill("from the browser")
    page.get_by_test_id("snapshot-create").click()
    row = page.get_by_test_id("snapshot-row")
    expect(row).to_contain_text("ui-snap")
    assert "ui-snap" in virt.virsh("snapshot-list", name, "--name")
    row.get_by_role("button", name="Revert").click()
    expect(page.get_by_text("Reverted to ui-snap")).to_be_visible()
    row.get_by_role("button", name="Delete").click()
    expect(page.get_by_test_id("snapshot-row")).to_have_count(0)
    assert "ui-snap" not in virt.virsh("snapshot-list", name, "--name")

    clone = f"{name}-ui"
    try:
        page.get_by_test_id("vm-tab-settings").click()
        page.get_by_test_id("clone-name").fill(clone)
        page.get_by_test_id("clone-button").click()
        page.wait_for_url(lambda url: uuid not in url and "/vms/" in url, timeout=60000)
        expect(page.get_by_test_id("vm-name")).to_have_text(clone, timeout=15000)
    finally:
        _remove(clone)
        virt.virsh("vol-delete", f"{clone}-vda.qcow2", "--pool", pool[0], check=False)
