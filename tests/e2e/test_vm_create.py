"""vm.create on the real libvirtd: from Debian's iPXE ISO (the screen shows SeaBIOS/iPXE), by direct kernel
boot, from a tiny qcow2 image as an overlay with a cloud-init seed read back, and every invalid field
refused before anything is made."""

from __future__ import annotations

import io
import subprocess
import sys
import time

import httpx
import nats
import pycdlib
import pytest
import yaml
from lxml import etree
from passlib.hash import sha512_crypt

from flint import bus, subjects
from tests.e2e import virt
from tests.e2e.conftest import ADMIN_PASSWORD
from tests.e2e.screen import Screen, screenshot
from tests.e2e.vm_create_support import (
    IMAGE_MIB,
    cloud_request,
    destroy_lab,
    domains,
    iso_request,
    make_lab,
    wait_job,
)
from tests.helpers import flint_env, login, run_async, token_client

pytestmark = pytest.mark.e2e

PASSWORD = "clear-text-Secret-9"
SSH_KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl "
           "alice@example")


@pytest.fixture(scope="module")
def api(stack):
    return token_client(stack.base, ADMIN_PASSWORD, "e2e-create", "operator", timeout=60)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = make_lab(tmp_path_factory.mktemp("lab"))
    yield lab
    destroy_lab(lab)


def _create(api, body) -> dict:
    resp = api.post("/api/v1/vms", json=body)
    assert resp.status_code == 202, resp.text
    assert resp.headers["location"] == f"/api/v1/jobs/{resp.json()['id']}"
    return resp.json()


def _cyan(p: tuple[int, ...]) -> bool:
    return p[0] < 100 and p[1] > 120 and p[2] > 120


def _wait_for_screen(name: str, tmp_path, timeout: float = 15) -> tuple[Screen, float]:
    """Screenshots until iPXE's banner is on screen: under SeaBIOS's lines, iPXE prints its own in more
    colours (its http://ipxe.org in cyan). SeaBIOS alone gives ~50 rows of grey text; with iPXE, ~140."""
    start = time.monotonic()
    shot = None
    while time.monotonic() - start < timeout:
        shot = screenshot(name, tmp_path / f"{name}.png")
        if shot.rows_with_ink() >= 100 and shot.colours() >= 3 and any(_cyan(p) for p in shot.pixels):
            return shot, time.monotonic() - start
        time.sleep(0.5)
    raise AssertionError(f"{name}'s screen did not show iPXE within {timeout} s: "
                         f"{shot.foreground_share() if shot else 0:.4f} non-background, "
                         f"{shot.rows_with_ink() if shot else 0} rows with ink, {shot.colours() if shot else 0} colours")


def test_create_from_iso_boots_ipxe(api, lab, tmp_path):
    name = lab.track(virt.unique_name("e2e-iso"))
    job = wait_job(api, _create(api, iso_request(lab, name))["id"])
    assert job["state"] == "succeeded", job
    assert job["result"] == {"id": virt.virsh("domuuid", name).strip(), "name": name}
    assert virt.virsh("domstate", name).strip() == "running"

    xml = etree.fromstring(virt.virsh("dumpxml", "--inactive", name).encode())
    assert xml.get("type") in ("kvm", "qemu")
    assert [b.get("dev") for b in xml.findall("os/boot")] == ["cdrom", "hd"]
    disk = xml.find("devices/disk[@device='disk']")
    assert (disk.find("source").get("pool"), disk.find("source").get("volume")) == (lab.pool, f"{name}-disk0.qcow2")
    assert (disk.find("target").get("bus"), disk.find("driver").get("type")) == ("virtio", "qcow2")
    cdrom = xml.find("devices/disk[@device='cdrom']")
    assert cdrom.find("source").get("volume") == "ipxe.iso" and cdrom.find("readonly") is not None
    graphics = xml.find("devices/graphics")
    assert graphics.get("type") == "vnc" and graphics.get("autoport") == "yes"
    assert graphics.find("listen").get("address") == "127.0.0.1"
    assert xml.find("devices/serial").get("type") == "pty"
    assert xml.find("devices/channel/target").get("name") == "org.qemu.guest_agent.0"
    meta = xml.find("metadata/{https://flint.dev/xmlns/flint/1}vm")
    assert meta.find("{https://flint.dev/xmlns/flint/1}created-from").text == "iso"
    assert meta.find("{https://flint.dev/xmlns/flint/1}job").text == job["id"]
    assert f"{name}-disk0.qcow2" in lab.new_volumes()
    info = virt.virsh("vol-info", "--pool", lab.pool, f"{name}-disk0.qcow2")
    assert "256.00 MiB" in info, info

    shot, after = _wait_for_screen(name, tmp_path)
    blank = Screen(shot.width, shot.height, [shot.background()] * len(shot.pixels))
    assert shot.pixels != blank.pixels
    assert shot.width >= 640 and shot.height >= 400
    assert shot.foreground_share() > 0.02  # lines of text, not a stray cursor
    print(f"\nscreen of {name}: text after {after:.1f} s, {shot.foreground_share():.2%} non-background pixels, "
          f"{shot.rows_with_ink()} rows with ink, screenshot {tmp_path / (name + '.png')}")


def test_direct_kernel_boot_runs_ipxe(api, lab, tmp_path):
    name = lab.track(virt.unique_name("e2e-kern"))
    body = iso_request(lab, name, disks=[], direct_boot={"kernel": f"{lab.pool}/ipxe.lkrn", "cmdline": ""})
    job = wait_job(api, _create(api, body)["id"])
    assert job["state"] == "succeeded", job
    xml = etree.fromstring(virt.virsh("dumpxml", "--inactive", name).encode())
    assert xml.findtext("os/kernel") == str(lab.path / "ipxe.lkrn")
    assert virt.virsh("domstate", name).strip() == "running"
    _wait_for_screen(name, tmp_path)


def test_a_vm_that_cannot_start_is_rolled_back(api, lab):
    """The request is valid, the VM is defined, QEMU refuses to start it (an empty kernel volume): the job
    fails with QEMU's reason and removes the domain and the disk it made; the kernel volume stays."""
    name = lab.track(virt.unique_name("e2e-nostart"))
    body = iso_request(lab, name, direct_boot={"kernel": f"{lab.pool}/empty.img"})
    job = wait_job(api, _create(api, body)["id"])
    assert job["state"] == "failed" and job["rolled_back"], job
    assert f"start VM '{name}'" in job["error"] and "could not load kernel" in job["error"], job["error"]
    assert job["message"] == "rolled back" and job["result"] == {}
    assert name not in domains()
    assert not any(v.startswith(name) for v in lab.new_volumes())
    assert "empty.img" in lab.volumes()


def _read_seed(lab, volume: str, tmp_path) -> tuple[pycdlib.PyCdlib, dict[str, str]]:
    local = tmp_path / volume
    virt.virsh("vol-download", "--pool", lab.pool, volume, str(local))
    iso = pycdlib.PyCdlib()
    iso.open(str(local))
    files = {}
    for name in ("user-data", "meta-data", "network-config"):
        out = io.BytesIO()
        iso.get_file_from_iso_fp(out, rr_path=f"/{name}")
        files[name] = out.getvalue().decode()
        joliet = io.BytesIO()
        iso.get_file_from_iso_fp(joliet, joliet_path=f"/{name}")
        assert joliet.getvalue() == out.getvalue()
    return iso, files


def test_create_from_cloud_image_with_cloud_init(api, lab, tmp_path, stack):
    name = lab.track(virt.unique_name("e2e-cloud"))
    cloud_init = {
        "hostname": "web-01.lab.example", "user": "alice", "password": PASSWORD,
        "ssh_authorized_keys": [SSH_KEY],
        "network": {"address": "10.77.0.5/24", "gateway": "10.77.0.1", "dns": ["10.77.0.53"]},
        "packages": ["nginx"], "runcmd": ["echo flint-was-here > /run/marker"],
        "user_data": {"write_files": [{"path": "/etc/flint", "content": "hello"}]},
    }
    body = cloud_request(lab, name, cloud_init, firmware="uefi")
    started = time.monotonic()
    job = wait_job(api, _create(api, body)["id"])
    took = time.monotonic() - started
    assert job["state"] == "succeeded", job
    assert virt.virsh("domstate", name).strip() == "running"
    print(f"\ncreate from cloud image to running (UEFI, cloud-init): {took:.2f} s")

    overlay, seed = f"{name}-disk0.qcow2", f"{name}-cidata.iso"
    assert lab.new_volumes() >= {overlay, seed}
    vol = etree.fromstring(virt.virsh("vol-dumpxml", "--pool", lab.pool, overlay).encode())
    assert vol.findtext("backingStore/path") == str(lab.path / "tiny.qcow2")
    assert vol.find("backingStore/format").get("type") == "qcow2"
    assert vol.find("target/format").get("type") == "qcow2"
    assert int(vol.findtext("capacity")) == 1024**3
    chain = subprocess.run(["qemu-img", "info", "-U", "--backing-chain", str(lab.path / overlay)],
                                capture_output=True, text=True, check=True).stdout
    assert f"backing file: {lab.path / 'tiny.qcow2'}" in chain and f"virtual size: {IMAGE_MIB} MiB" in chain

    xml = etree.fromstring(virt.virsh("dumpxml", name).encode())
    assert xml.find("os").get("firmware") == "efi" or xml.findtext("os/loader", "").endswith(".fd")
    cdrom = xml.find("devices/disk[@device='cdrom']")
    assert cdrom.find("source").get("volume") == seed and cdrom.find("readonly") is not None
    nic = xml.find("devices/interface")
    mac = nic.find("mac").get("address")
    assert nic.find("source").get("network") == lab.network

    iso, files = _read_seed(lab, seed, tmp_path)
    assert iso.pvd.volume_identifier.decode().strip() == "cidata"
    user_data = files["user-data"]
    assert user_data.startswith("#cloud-config\n")
    doc = yaml.safe_load(user_data)
    assert doc["hostname"] == "web-01" and doc["fqdn"] == "web-01.lab.example"
    user = next(u for u in doc["users"] if isinstance(u, dict))
    assert user["name"] == "alice" and user["ssh_authorized_keys"] == [SSH_KEY]
    assert user["passwd"].startswith("$6$") and sha512_crypt.verify(PASSWORD, user["passwd"])
    assert doc["packages"] == ["nginx"] and doc["runcmd"] == ["echo flint-was-here > /run/marker"]
    assert doc["write_files"] == [{"path": "/etc/flint", "content": "hello"}]
    assert all(PASSWORD not in text for text in files.values())
    meta = yaml.safe_load(files["meta-data"])
    assert meta["local-hostname"] == "web-01" and meta["instance-id"].endswith(job["result"]["id"])
    net = yaml.safe_load(files["network-config"])
    eth = net["ethernets"]["primary"]
    assert net["version"] == 2 and eth["match"] == {"macaddress": mac}
    assert eth["addresses"] == ["10.77.0.5/24"] and eth["routes"] == [{"to": "0.0.0.0/0", "via": "10.77.0.1"}]
    assert eth["nameservers"] == {"addresses": ["10.77.0.53"]}

    # The job record (the only place the request is kept) holds the hash, never the clear password.
    record = run_async(_job_record(stack, job["id"]))
    assert PASSWORD not in record and user["passwd"] in record


async def _job_record(stack, job_id: str) -> str:
    creds = stack.data_dir / "nats-auth" / "system.creds"
    nc = await nats.connect(stack.nats_url, **bus.credential_options(str(creds)))
    try:
        kv = await nc.jetstream().key_value(subjects.KV_JOBS)
        return (await kv.get(f"local.{job_id}")).value.decode()
    finally:
        await nc.close()


def test_cloud_image_with_dhcp_and_no_disks_uses_the_image_size(api, lab, tmp_path):
    name = lab.track(virt.unique_name("e2e-dhcp"))
    body = cloud_request(lab, name, {"ssh_authorized_keys": [SSH_KEY]}, disks=[], start=False)
    job = wait_job(api, _create(api, body)["id"])
    assert job["state"] == "succeeded", job
    assert virt.virsh("domstate", name).strip() == "shut off"
    vol = etree.fromstring(virt.virsh("vol-dumpxml", "--pool", lab.pool, f"{name}-disk0.qcow2").encode())
    assert int(vol.findtext("capacity")) == IMAGE_MIB * 1024**2
    _, files = _read_seed(lab, f"{name}-cidata.iso", tmp_path)
    net = yaml.safe_load(files["network-config"])
    assert net["ethernets"]["all"] == {"match": {"name": "e*"}, "dhcp4": True}
    doc = yaml.safe_load(files["user-data"])
    assert doc["hostname"] == name and doc["ssh_authorized_keys"] == [SSH_KEY] and "users" not in doc


# ----------------------------------------------------------------------------------------- validation


def _cases(lab) -> list[tuple[str, dict, int, str]]:
    """(what, request, status, field) for every field a request can get wrong."""
    iso = iso_request(lab, "e2e-invalid")
    cloud = cloud_request(lab, "e2e-invalid", {"user": "alice"})

    def with_(base: dict, **changes) -> dict:
        body = {**base, "source": dict(base["source"])}
        body.update(changes)
        return body

    def ci(**changes) -> dict:
        body = with_(cloud)
        body["source"]["cloud_init"] = {"user": "alice", **changes}
        return body

    lab.track("e2e-invalid")  # removed at the end should a case be wrongly accepted
    return [
        ("missing name", {k: v for k, v in iso.items() if k != "name"}, 400, "name"),
        ("unknown field", with_(iso, memory=512), 400, "memory"),
        ("bad name", with_(iso, name="bad name!"), 422, "name"),
        ("dotted name", with_(iso, name="a.b"), 422, "name"),
        ("no vcpus", with_(iso, vcpus=0), 400, "vcpus"),
        ("more vcpus than the host", with_(iso, vcpus=999), 422, "vcpus"),
        ("too little memory", with_(iso, memory_mib=32), 422, "memory_mib"),
        ("more memory than the host", with_(iso, memory_mib=64 * 1024 * 1024), 422, "memory_mib"),
        ("firmware", with_(iso, firmware="coreboot"), 400, "firmware"),
        ("zero disk", with_(iso, disks=[{"size_gib": 0, "pool": lab.pool}]), 400, "disks[0].size_gib"),
        ("negative disk", with_(iso, disks=[{"size_gib": -1, "pool": lab.pool}]), 400, "disks[0].size_gib"),
        ("disks larger than the pool", with_(iso, disks=[{"size_gib": 30000, "pool": lab.pool},
                                                         {"size_gib": 30000, "pool": lab.pool}]),
         422, "disks[0].size_gib"),
        ("no such pool", with_(iso, disks=[{"size_gib": 1, "pool": "no-such-pool"}]), 422, "disks[0].pool"),
        ("disk bus", with_(iso, disks=[{"size_gib": 1, "pool": lab.pool, "bus": "floppy"}]), 400, "disks[0].bus"),
        ("no such ISO", with_(iso, source={"kind": "iso", "volume": f"{lab.pool}/nope.iso"}), 422, "source.volume"),
        ("volume not pool/vol", with_(iso, source={"kind": "iso", "volume": "nopool"}), 422, "source.volume"),
        ("ISO in a missing pool", with_(iso, source={"kind": "iso", "volume": "nopool/x.iso"}), 422, "source.volume"),
        ("unknown source kind", with_(iso, source={"kind": "floppy", "volume": "a/b"}), 400, "source.kind"),
        ("no such network", with_(iso, nics=[{"network": "no-such-net"}]), 422, "nics[0].network"),
        ("no such bridge", with_(iso, nics=[{"bridge": "nobr9"}]), 422, "nics[0].bridge"),
        ("network and bridge", with_(iso, nics=[{"network": lab.network, "bridge": "br0"}]), 422, "nics[0]"),
        ("nic model", with_(iso, nics=[{"network": lab.network, "model": "ne2k"}]), 400, "nics[0].model"),
        ("bad mac", with_(iso, nics=[{"network": lab.network, "mac": "01:00:5e:00:00:01"}]), 422, "nics[0].mac"),
        ("disk smaller than the image", with_(cloud, disks=[{"size_gib": 0.01, "pool": lab.pool}]),
         422, "disks[0].size_gib"),
        ("ISO as a cloud image", with_(cloud, source={"kind": "cloud_image", "volume": f"{lab.pool}/ipxe.iso"}),
         422, "source.volume"),
        ("hostname", ci(hostname="-bad-"), 422, "source.cloud_init.hostname"),
        ("user", ci(user="Bad User"), 422, "source.cloud_init.user"),
        ("password without user", ci(user=None, password="x"), 422, "source.cloud_init.user"),
        ("ssh key", ci(ssh_authorized_keys=[SSH_KEY, "not a key"]), 422, "source.cloud_init.ssh_authorized_keys[1]"),
        ("truncated ssh key", ci(ssh_authorized_keys=[SSH_KEY[:60]]), 422, "source.cloud_init.ssh_authorized_keys[0]"),
        ("address", ci(network={"address": "10.0.0.300/24"}), 422, "source.cloud_init.network.address"),
        ("address without prefix", ci(network={"address": "10.0.0.3"}), 422, "source.cloud_init.network.address"),
        ("gateway outside", ci(network={"address": "10.0.0.3/24", "gateway": "10.0.1.1"}), 422,
         "source.cloud_init.network.gateway"),
        ("dns", ci(network={"dhcp": True, "dns": ["dns.example"]}), 422, "source.cloud_init.network.dns[0]"),
        ("user_data", ci(user_data="- just\n- a list\n"), 422, "source.cloud_init.user_data"),
        ("package", ci(packages=["ok", "rm -rf /"]), 422, "source.cloud_init.packages[1]"),
        ("kernel", with_(iso, direct_boot={"kernel": f"{lab.pool}/no-kernel"}), 422, "direct_boot.kernel"),
        ("host", with_(iso, host="elsewhere"), 404, ""),
    ]


def test_every_invalid_field_is_refused_and_nothing_is_made(api, lab):
    before_domains = domains()
    failures = []
    for what, body, status, field in _cases(lab):
        resp = api.post("/api/v1/vms", json=body)
        problem = resp.json()
        fields = [e.get("field") for e in problem.get("errors", [])]
        ok = (resp.status_code == status and resp.headers["content-type"].startswith("application/problem+json")
              and problem.get("detail") and (not field or field in fields))
        if not ok:
            failures.append(f"{what}: {resp.status_code} {problem}")
    assert not failures, "\n".join(failures)
    assert lab.new_volumes() - {v for n in lab.vms for v in (f"{n}-disk0.qcow2", f"{n}-cidata.iso")} == set()
    assert domains() == before_domains
    assert "e2e-invalid" not in domains()


def test_name_taken_is_409(api, lab, tmp_path):
    name = lab.track(virt.unique_name("e2e-taken"))
    virt.define(name, tmp_path)
    resp = api.post("/api/v1/vms", json=iso_request(lab, name))
    assert resp.status_code == 409, resp.text
    assert resp.json()["errors"][0]["field"] == "name" and "already exists" in resp.json()["detail"]
    assert not any(v.startswith(name) for v in lab.new_volumes())


def test_inactive_pool_is_refused(api, lab):
    name = virt.unique_name("e2e-off-pool")
    virt.virsh("pool-define-as", name, "dir", "--target", f"/var/tmp/{name}")
    try:
        resp = api.post("/api/v1/vms", json=iso_request(lab, "e2e-invalid", disks=[{"size_gib": 1, "pool": name}]))
        assert resp.status_code == 422, resp.text
        assert resp.json()["errors"][0]["field"] == "disks[0].pool" and "not active" in resp.json()["detail"]
    finally:
        virt.virsh("pool-undefine", name, check=False)


def test_viewer_cannot_create(stack, lab):
    client = login(stack.base, password=ADMIN_PASSWORD)
    token = client.post("/api/v1/auth/tokens", json={"name": "e2e-create-viewer", "role": "viewer"}).json()["token"]
    resp = httpx.post(f"{stack.base}/api/v1/vms", json=iso_request(lab, "e2e-viewer"),
                      headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 403


def test_cli_create_waits_and_prints_progress(api, lab, stack, tmp_path):
    token = api.headers["Authorization"].split()[1]
    env = flint_env(FLINT_URL=stack.base, FLINT_TOKEN=token)
    name = lab.track(virt.unique_name("e2e-cli"))
    key = tmp_path / "id.pub"
    key.write_text(SSH_KEY + "\n")
    argv = [sys.executable, "-m", "flint.cli.main", "vm", "create", "--name", name, "--memory", "128M",
            "--cloud-image", f"{lab.pool}/tiny.qcow2", "--disk", "0.5", "--network", lab.network,
            "--user", "carol", "--password-stdin", "--ssh-key", str(key), "--static", "10.9.0.7/24",
            "--gateway", "10.9.0.1", "--dns", "10.9.0.1", "--no-start", "--wait"]
    proc = subprocess.run(argv, env=env, input="carols-password\n", capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "create disks" in proc.stdout and "[100.0%]" in proc.stdout and f"VM {name} created" in proc.stdout
    assert virt.virsh("domstate", name).strip() == "shut off"
    _, files = _read_seed(lab, f"{name}-cidata.iso", tmp_path)
    user = yaml.safe_load(files["user-data"])["users"][1]
    assert user["name"] == "carol" and sha512_crypt.verify("carols-password", user["passwd"])
    assert yaml.safe_load(files["network-config"])["ethernets"]["primary"]["addresses"] == ["10.9.0.7/24"]

    bad = subprocess.run(argv, env=env, input="x\n", capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 1 and f"a VM named {name!r} already exists" in bad.stderr, bad.stderr
