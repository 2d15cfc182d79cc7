"""Pools and volumes through the HTTP API on the real libvirtd: a dir pool used end to end, pools on loop
devices (fs, logical, disk), netfs as far as this kernel allows, refusals naming the field or the VM."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e import virt
from tests.e2e.storage_support import (
    SCRATCH,
    loop_device,
    remove_pool,
    run,
    token_client,
    vol_download,
    wait_job,
)
from tests.helpers import eventually

pytestmark = pytest.mark.e2e
HOST = "local"
IPXE = Path(virt.IPXE_ISO)


@pytest.fixture(scope="module")
def admin(stack):
    return token_client(stack, "admin", "e2e-storage-admin")


@pytest.fixture(scope="module")
def operator(stack):
    return token_client(stack, "operator", "e2e-storage-operator")


@pytest.fixture(scope="module")
def viewer(stack):
    return token_client(stack, "viewer", "e2e-storage-viewer")


@pytest.fixture
def dir_pool(admin):
    """A dir pool made through the API (build makes its directory), removed again whatever happens."""
    name = virt.unique_name("e2e-stg")
    base = SCRATCH / name
    resp = admin.post(f"/hosts/{HOST}/pools", json={"name": name, "type": "dir", "target": f"{base}/images"})
    assert resp.status_code == 201, resp.text
    yield name, base / "images"
    remove_pool(name)
    shutil.rmtree(base, ignore_errors=True)


def _pool_names() -> list[str]:
    return virt.virsh("pool-list", "--all", "--name").split()


def _vol_names(pool: str) -> list[str]:
    return [line.split()[0] for line in virt.virsh("vol-list", pool).splitlines()[2:] if line.strip()]


def test_a_dir_pool_made_used_and_removed_through_the_api(admin, operator, tmp_path):
    name = virt.unique_name("e2e-stg")
    base = SCRATCH / name
    target = base / "images"
    try:
        resp = admin.post(f"/hosts/{HOST}/pools", json={"name": name, "type": "dir", "target": f"{base}//images/"})
        assert resp.status_code == 201, resp.text
        pool = resp.json()
        assert (pool["type"], pool["target"], pool["active"], pool["autostart"]) == ("dir", str(target), True, True)
        assert target.is_dir(), "build made the directory"
        info = virt.virsh("pool-info", name)
        assert "running" in info and "Autostart:      yes" in info
        eventually(lambda: any(p["name"] == name for p in admin.get(f"/hosts/{HOST}/pools").json()),
                   timeout=15, what="the inventory lists the new pool")

        # an empty qcow2 volume, grown, and a raw one shrunk only when asked
        resp = operator.post(f"/hosts/{HOST}/pools/{name}/volumes", json={"name": "disk1.qcow2", "capacity": "16M"})
        assert resp.status_code == 201, resp.text
        assert (resp.json()["format"], resp.json()["capacity"]) == ("qcow2", 16 * 2**20)
        resp = operator.post(f"/hosts/{HOST}/pools/{name}/volumes/disk1.qcow2/resize", json={"capacity": "32M"})
        assert resp.status_code == 200 and resp.json()["capacity"] == 32 * 2**20, resp.text
        assert "32.00 MiB" in virt.virsh("vol-info", "--pool", name, "disk1.qcow2")
        resp = operator.post(f"/hosts/{HOST}/pools/{name}/volumes/disk1.qcow2/resize", json={"capacity": "8M"})
        assert resp.status_code == 409 and resp.json()["errors"][0]["field"] == "capacity", resp.text
        resp = operator.post(f"/hosts/{HOST}/pools/{name}/volumes",
                             json={"name": "data.raw", "capacity": 4 * 2**20, "format": "raw", "preallocate": True})
        assert resp.status_code == 201 and resp.json()["allocation"] >= 4 * 2**20, resp.text
        resp = operator.post(f"/hosts/{HOST}/pools/{name}/volumes/data.raw/resize",
                             json={"capacity": "2M", "allow_shrink": True})
        assert resp.status_code == 422 and "below existing allocation" in resp.json()["detail"], resp.text
        resp = operator.post(f"/hosts/{HOST}/pools/{name}/volumes", json={"name": "sparse.raw", "capacity": "4M",
                                                                          "format": "raw"})
        assert resp.status_code == 201 and resp.json()["allocation"] < 4 * 2**20, resp.text
        resp = operator.post(f"/hosts/{HOST}/pools/{name}/volumes/sparse.raw/resize",
                             json={"capacity": "2M", "allow_shrink": True})
        assert resp.status_code == 200 and resp.json()["capacity"] == 2 * 2**20, resp.text
        assert (target / "sparse.raw").stat().st_size == 2 * 2**20

        # upload Debian's ipxe.iso, read it back through libvirt
        data = IPXE.read_bytes()
        resp = operator.put(f"/hosts/{HOST}/pools/{name}/volumes/ipxe.iso/content", content=data)
        assert resp.status_code == 202, resp.text
        job = wait_job(operator, resp.json()["id"])
        assert job["state"] == "succeeded", job
        vol = job["result"]["volume"]
        assert (vol["name"], vol["capacity"], vol["format"], vol["path"]) == (
            "ipxe.iso", len(data), "iso", str(target / "ipxe.iso"))
        assert vol_download(name, "ipxe.iso", tmp_path / "back.iso") == data
        listed = {v["name"]: v for v in operator.get(f"/hosts/{HOST}/pools/{name}/volumes").json()}
        assert set(listed) == {"disk1.qcow2", "data.raw", "sparse.raw", "ipxe.iso"}
        assert set(listed["ipxe.iso"]) >= {"name", "pool", "path", "capacity", "allocation", "format", "type"}

        # the same name twice is refused; deleting one volume
        resp = operator.put(f"/hosts/{HOST}/pools/{name}/volumes/ipxe.iso/content", content=b"x")
        assert resp.status_code == 409 and resp.json()["errors"][0]["field"] == "name"
        resp = operator.delete(f"/hosts/{HOST}/pools/{name}/volumes/data.raw")
        assert resp.status_code == 200, resp.text
        assert "data.raw" not in _vol_names(name)

        # the pool: its storage is only deleted with the volumes in it when forced
        resp = admin.delete(f"/hosts/{HOST}/pools/{name}", params={"delete_volumes": "true"})
        assert resp.status_code == 409 and "disk1.qcow2" in resp.json()["detail"], resp.text
        assert resp.json()["errors"][0]["field"] == "force"
        resp = admin.delete(f"/hosts/{HOST}/pools/{name}", params={"delete_volumes": "true", "force": "true"})
        assert resp.status_code == 200, resp.text
        assert sorted(resp.json()["deleted_volumes"]) == ["disk1.qcow2", "ipxe.iso", "sparse.raw"]
        assert name not in _pool_names()
        assert not target.exists()
        eventually(lambda: all(p["name"] != name for p in admin.get(f"/hosts/{HOST}/pools").json()),
                   timeout=15, what="the pool gone from the inventory")
    finally:
        remove_pool(name)
        shutil.rmtree(base, ignore_errors=True)


def test_pool_actions(admin, operator, dir_pool):
    name, _ = dir_pool
    for action, state in (("stop", "inactive"), ("start", "running"), ("refresh", "running")):
        resp = operator.post(f"/hosts/{HOST}/pools/{name}/actions", json={"action": action})
        assert resp.status_code == 200 and resp.json()["state"] == state, resp.text
    resp = operator.post(f"/hosts/{HOST}/pools/{name}/actions", json={"action": "noautostart"})
    assert resp.json()["autostart"] is False
    assert "Autostart:      no" in virt.virsh("pool-info", name)
    resp = operator.post(f"/hosts/{HOST}/pools/{name}/actions", json={"action": "build"})
    assert resp.status_code == 403 and "admin" in resp.json()["detail"]
    resp = admin.post(f"/hosts/{HOST}/pools/{name}/actions", json={"action": "build"})
    assert resp.status_code == 409 and "stop it" in resp.json()["detail"]
    resp = operator.post(f"/hosts/{HOST}/pools/{name}/actions", json={"action": "explode"})
    assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "action"


def test_a_pool_that_cannot_start_leaves_nothing_behind(admin):
    name = virt.unique_name("e2e-stg-bad")
    target = SCRATCH / name
    try:
        resp = admin.post(f"/hosts/{HOST}/pools", json={
            "name": name, "type": "fs", "target": str(target), "source": {"devices": ["/dev/flint-no-such-disk"]}})
        assert resp.status_code == 422, resp.text
        problem = resp.json()
        assert "/dev/flint-no-such-disk" in problem["detail"] and "nothing was left behind" in problem["detail"]
        assert problem["errors"][0]["field"] == "source.devices"
        assert name not in _pool_names()
    finally:
        remove_pool(name)
        shutil.rmtree(target, ignore_errors=True)


def _put_announcing(client, path: str, length: int) -> tuple[int, dict]:
    """A PUT that announces `length` bytes and sends only a few (httpx refuses to)."""
    url = httpx.URL(str(client.base_url).rstrip("/") + path)
    conn = http.client.HTTPConnection(url.host, url.port, timeout=30)
    try:
        conn.putrequest("PUT", url.raw_path.decode())
        conn.putheader("Authorization", client.headers["Authorization"])
        conn.putheader("Content-Length", str(length))
        conn.endheaders()
        conn.send(b"x" * 1024)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_fs_pool_on_a_loop_device_with_ext4(admin, operator, tmp_path):
    name = virt.unique_name("e2e-stg-fs")
    target = SCRATCH / name
    with loop_device(SCRATCH, 64) as dev:
        run("mkfs.ext4", "-q", "-F", "-L", "flint-e2e", dev)
        try:
            resp = admin.post(f"/hosts/{HOST}/pools", json={
                "name": name, "type": "fs", "target": str(target), "source": {"devices": [dev], "format": "ext4"}})
            assert resp.status_code == 201, resp.text
            assert resp.json()["source"]["devices"] == [dev]
            mounted = run("findmnt", "-n", "-o", "SOURCE,FSTYPE", str(target)).stdout.split()
            assert mounted == [dev, "ext4"]
            capacity = resp.json()["capacity"]
            assert 40 * 2**20 < capacity <= 64 * 2**20, "the pool's size is the filesystem's, not the host disk's"

            blob = os.urandom(3 * 2**20 + 123)
            resp = operator.put(f"/hosts/{HOST}/pools/{name}/volumes/blob.raw/content", content=blob)
            assert resp.status_code == 202, resp.text
            assert wait_job(operator, resp.json()["id"])["state"] == "succeeded"
            assert vol_download(name, "blob.raw", tmp_path / "blob") == blob
            # bigger than the filesystem: refused from its Content-Length, before the body is read
            status, problem = _put_announcing(operator, f"/hosts/{HOST}/pools/{name}/volumes/huge.raw/content",
                                              200 * 2**20)
            assert status == 413 and "does not fit" in problem["detail"], problem
            assert "huge.raw" not in _vol_names(name)

            resp = admin.delete(f"/hosts/{HOST}/pools/{name}", params={"delete_volumes": "true", "force": "true"})
            assert resp.status_code == 200, resp.text
            assert run("findmnt", str(target), check=False).returncode != 0, "unmounted"
            assert name not in _pool_names()
        finally:
            remove_pool(name)
            run("umount", str(target), check=False)
            shutil.rmtree(target, ignore_errors=True)


@pytest.mark.skipif(not shutil.which("pvcreate"), reason="lvm2 is not installed (deploy/setup.sh installs it)")
def test_logical_pool_on_a_loop_device(admin, operator):
    """The VG is built, started and removed through libvirt. Volumes need the kernel's device-mapper: where
    it is missing (this container's kernel has no /dev/mapper/control), creating one must fail with
    LVM's own reason instead of a generic error."""
    name = virt.unique_name("e2e_stg_lvm").replace("-", "_")  # the pool and its volume group
    with loop_device(SCRATCH, 64) as dev:
        try:
            resp = admin.post(f"/hosts/{HOST}/pools", json={
                "name": name, "type": "logical", "source": {"name": name, "devices": [dev]}})
            assert resp.status_code == 201, resp.text
            pool = resp.json()
            assert (pool["source"]["name"], pool["target"], pool["active"]) == (name, f"/dev/{name}", True)
            vgs = run("vgs", "--noheadings", "-o", "vg_name,pv_count", name).stdout.split()
            assert vgs == [name, "1"]
            assert 50 * 2**20 <= pool["capacity"] <= 64 * 2**20

            resp = operator.post(f"/hosts/{HOST}/pools/{name}/volumes",
                                 json={"name": "lv1", "capacity": "8M", "format": "raw"})
            if "device-mapper" in Path("/proc/devices").read_text():
                assert resp.status_code == 201, resp.text
                assert "lv1" in run("lvs", "--noheadings", "-o", "lv_name", name).stdout
            else:
                assert resp.status_code >= 400, resp.text
                assert "device-mapper" in resp.json()["detail"], resp.text
            resp = operator.post(f"/hosts/{HOST}/pools/{name}/volumes",
                                 json={"name": "lv2", "capacity": "8M", "format": "qcow2"})
            assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "format"

            resp = admin.delete(f"/hosts/{HOST}/pools/{name}",
                                params={"delete_volumes": "true", "force": "true"})
            assert resp.status_code == 200, resp.text
            assert run("vgs", name, check=False).returncode != 0, "the volume group is gone"
        finally:
            remove_pool(name)
            run("vgremove", "-f", name, check=False)
            run("pvremove", "-ff", "-y", dev, check=False)


@pytest.mark.skipif(not shutil.which("parted"), reason="parted is not installed (deploy/setup.sh installs it)")
def test_disk_pool_on_a_loop_device(admin, operator):
    name = virt.unique_name("e2e-stg-disk")
    with loop_device(SCRATCH, 64) as dev:
        try:
            resp = admin.post(f"/hosts/{HOST}/pools", json={
                "name": name, "type": "disk", "source": {"devices": [dev], "format": "gpt"}})
            assert resp.status_code == 201, resp.text
            assert "gpt" in run("parted", "-s", dev, "print").stdout
            part = f"{Path(dev).name}p1"
            resp = operator.post(f"/hosts/{HOST}/pools/{name}/volumes", json={"name": part, "capacity": "8M",
                                                                               "format": "raw"})
            assert resp.status_code == 201, resp.text
            assert resp.json()["path"] == f"/dev/{part}" and resp.json()["type"] == "block"
            assert Path(f"/dev/{part}").exists()
            resp = operator.delete(f"/hosts/{HOST}/pools/{name}/volumes/{part}")
            # libvirt asks `parted rm p1` for disks named like loop0 (a digit at the end): it cannot work,
            # and the answer says so and what to do instead.
            assert resp.status_code == 502 and "ends in a digit" in resp.json()["detail"], resp.text
            resp = admin.delete(f"/hosts/{HOST}/pools/{name}", params={"delete_volumes": "true"})
            assert resp.status_code == 409 and part in resp.json()["detail"]
            resp = admin.delete(f"/hosts/{HOST}/pools/{name}", params={"delete_volumes": "true", "force": "true"})
            assert resp.status_code == 200 and resp.json()["deleted_volumes"] == [part], resp.text
            assert name not in _pool_names()
            assert "unrecognised disk label" in run("parted", "-s", dev, "print", check=False).stderr
        finally:
            remove_pool(name)


def test_netfs_pool_where_this_kernel_allows(admin):
    """No NFS server can be reached here, and this kernel has no NFS client at all (no `nfs` in
    /proc/filesystems, no modules to load): the pool is refused with mount's own reason, and nothing is
    left. With an NFS client the same request must fail on the missing export instead."""
    name = virt.unique_name("e2e-stg-nfs")
    target = SCRATCH / name
    try:
        resp = admin.post(f"/hosts/{HOST}/pools", json={
            "name": name, "type": "netfs", "target": str(target),
            "source": {"host": "127.0.0.1", "dir": "/flint-e2e-no-such-export"}})
        assert resp.status_code == 422, resp.text
        detail = resp.json()["detail"]
        if "nfs" not in Path("/proc/filesystems").read_text().split():
            assert "unknown filesystem type 'nfs'" in detail or "mount.nfs" in detail, detail
        assert resp.json()["errors"][0]["field"] == "source.host"
        assert name not in _pool_names()
    finally:
        remove_pool(name)
        shutil.rmtree(target, ignore_errors=True)


def test_a_volume_a_vm_uses_blocks_its_deletion_and_its_pools(admin, operator, dir_pool, tmp_path):
    name, target = dir_pool
    resp = operator.post(f"/hosts/{HOST}/pools/{name}/volumes", json={"name": "root.qcow2", "capacity": "16M"})
    assert resp.status_code == 201, resp.text
    vm = virt.unique_name("e2e-stg-vm")
    xml = virt.tiny_domain_xml(vm).replace(
        "</devices>",
        f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{target}/root.qcow2'/>"
        "<target dev='vda' bus='virtio'/></disk></devices>")
    (tmp_path / "vm.xml").write_text(xml)
    virt.virsh("define", str(tmp_path / "vm.xml"))
    try:
        resp = operator.delete(f"/hosts/{HOST}/pools/{name}/volumes/root.qcow2")
        assert resp.status_code == 409 and vm in resp.json()["detail"], resp.text
        resp = admin.delete(f"/hosts/{HOST}/pools/{name}", params={"delete_volumes": "true", "force": "true"})
        assert resp.status_code == 409 and vm in resp.json()["detail"], resp.text
        resp = admin.delete(f"/hosts/{HOST}/pools/{name}")
        assert resp.status_code == 409 and vm in resp.json()["detail"], "even keeping its storage"
        assert (target / "root.qcow2").exists() and name in _pool_names()
    finally:
        virt.remove(vm)
    resp = operator.delete(f"/hosts/{HOST}/pools/{name}/volumes/root.qcow2")
    assert resp.status_code == 200, resp.text


def test_a_base_image_under_an_overlay_is_not_deleted(operator, dir_pool):
    name, target = dir_pool
    assert operator.post(f"/hosts/{HOST}/pools/{name}/volumes", json={"name": "base.qcow2", "capacity": "16M"}
                         ).status_code == 201
    virt.virsh("vol-create-as", name, "top.qcow2", "16M", "--format", "qcow2",
               "--backing-vol", str(target / "base.qcow2"), "--backing-vol-format", "qcow2")
    resp = operator.delete(f"/hosts/{HOST}/pools/{name}/volumes/base.qcow2")
    assert resp.status_code == 409 and f"{name}/top.qcow2" in resp.json()["detail"], resp.text
    listed = {v["name"]: v for v in operator.get(f"/hosts/{HOST}/pools/{name}/volumes").json()}
    assert listed["top.qcow2"]["backing_path"] == str(target / "base.qcow2")


INVALID = [
    ("post", "/pools", {"name": "bad/name", "type": "dir", "target": "/var/tmp/x"}, 422, "name"),
    ("post", "/pools", {"name": "ok", "type": "floppy", "target": "/var/tmp/x"}, 422, "type"),
    ("post", "/pools", {"name": "ok", "type": "dir", "target": "relative"}, 422, "target"),
    ("post", "/pools", {"name": "ok", "type": "dir"}, 422, "target"),
    ("post", "/pools", {"name": "ok", "type": "netfs", "target": "/var/tmp/x", "source": {"dir": "/e"}}, 422,
     "source.host"),
    ("post", "/pools", {"name": "ok", "type": "netfs", "target": "/var/tmp/x",
                        "source": {"host": "nas", "dir": "/e", "port": 0}}, 400, "source.port"),
    ("post", "/pools", {"name": "ok", "type": "fs", "target": "/var/tmp/x"}, 422, "source.devices"),
    ("post", "/pools", {"name": "ok", "type": "dir", "target": "/var/tmp/x", "colour": "red"}, 400, "colour"),
    ("post", "/pools", {"type": "dir", "target": "/var/tmp/x"}, 400, "name"),
    ("post", "/pools/{pool}/volumes", {"name": "../etc", "capacity": "1G"}, 422, "name"),
    ("post", "/pools/{pool}/volumes", {"name": "v.qcow2", "capacity": "lots"}, 422, "capacity"),
    ("post", "/pools/{pool}/volumes", {"name": "v.qcow2", "capacity": 0}, 422, "capacity"),
    ("post", "/pools/{pool}/volumes", {"name": "v.vmdk", "capacity": "1G", "format": "vmdk"}, 422, "format"),
    ("post", "/pools/{pool}/volumes", {"name": "v.raw", "capacity": "900T", "format": "raw", "preallocate": True},
     422, "capacity"),
    ("post", "/pools/{pool}/volumes", {"capacity": "1G"}, 400, "name"),
    ("post", "/pools/no-such-pool/volumes", {"name": "v.qcow2", "capacity": "1G"}, 404, "pool"),
    ("post", "/pools/{pool}/volumes/nothere.qcow2/resize", {"capacity": "2G"}, 404, "name"),
    ("post", "/pools/{pool}/volumes/import", {"url": "ftp://127.0.0.1/a.iso"}, 422, "url"),
    ("post", "/pools/{pool}/volumes/import", {"url": "http://127.0.0.1/a.iso", "sha256": "beef"}, 422, "sha256"),
    ("post", "/pools/{pool}/volumes/import", {"url": "http://127.0.0.1/", "name": "a/b"}, 422, "name"),
    ("post", "/pools/{pool}/volumes/import", {"url": "http://127.0.0.1/x.img", "format": "vhd"}, 422, "format"),
    ("post", "/pools/{pool}/actions", {"action": "explode"}, 422, "action"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "field"), INVALID,
                         ids=[f"{i}-{case[4]}" for i, case in enumerate(INVALID)])
def test_each_invalid_input_is_a_4xx_naming_the_field(admin, dir_pool, method, path, body, status, field):
    name, _ = dir_pool
    resp = getattr(admin, method)(f"/hosts/{HOST}{path.format(pool=name)}", json=body)
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    problem = resp.json()
    assert field in [e["field"] for e in problem.get("errors", [])] or field in problem["detail"], problem


def test_upload_needs_a_length_and_a_valid_name(operator, dir_pool):
    name, _ = dir_pool

    def chunks():
        yield b"abc"

    resp = operator.put(f"/hosts/{HOST}/pools/{name}/volumes/up.raw/content", content=chunks())  # chunked: no length
    assert resp.status_code == 411 and resp.json()["errors"][0]["field"] == "Content-Length", resp.text
    resp = operator.put(f"/hosts/{HOST}/pools/{name}/volumes/bad..name/content", content=b"abc")
    assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "name", resp.text
    resp = operator.put(f"/hosts/{HOST}/pools/{name}/volumes/empty.raw/content", content=b"")
    assert resp.status_code == 400, resp.text


def test_roles(viewer, operator, dir_pool):
    name, _ = dir_pool
    assert viewer.get(f"/hosts/{HOST}/pools/{name}/volumes").status_code == 200
    assert viewer.get(f"/hosts/{HOST}/pools/{name}").status_code == 200
    resp = viewer.post(f"/hosts/{HOST}/pools/{name}/volumes", json={"name": "v.qcow2", "capacity": "1M"})
    assert resp.status_code == 403
    resp = operator.post(f"/hosts/{HOST}/pools", json={"name": "nope", "type": "dir", "target": "/var/tmp/nope"})
    assert resp.status_code == 403
    assert operator.delete(f"/hosts/{HOST}/pools/{name}").status_code == 403
    assert name in _pool_names()


def test_cli_pool_and_volume_verbs(stack, admin, tmp_path):
    """`flint pool ...` and `flint volume ...` drive the same API (FLINT_URL, FLINT_TOKEN)."""
    token = admin.headers["Authorization"].split()[1]
    env = {**os.environ, "FLINT_URL": stack.base, "FLINT_TOKEN": token}
    name = virt.unique_name("e2e-stg-cli")
    base = SCRATCH / name

    def flint(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "flint.cli.main", *args], env=env, capture_output=True,
                              text=True, timeout=120)

    try:
        assert flint("pool", "create", name, "--type", "dir", "--target", str(base)).returncode == 0
        assert flint("volume", "create", name, "a.qcow2", "--capacity", "8M").returncode == 0
        up = flint("volume", "upload", name, str(IPXE), "--json")
        assert up.returncode == 0, up.stderr
        assert '"state": "succeeded"' in up.stdout
        listed = flint("volume", "list", name)
        assert "a.qcow2" in listed.stdout and "ipxe.iso" in listed.stdout
        digest = hashlib.sha256((base / "ipxe.iso").read_bytes()).hexdigest()
        assert digest == hashlib.sha256(IPXE.read_bytes()).hexdigest()
        refused = flint("pool", "delete", name)
        assert refused.returncode == 0, refused.stderr  # without --delete-volumes the files stay
        assert (base / "ipxe.iso").exists() and name not in _pool_names()
        bad = flint("volume", "list", name)
        assert bad.returncode == 1 and "no storage pool named" in bad.stderr
    finally:
        remove_pool(name)
        shutil.rmtree(base, ignore_errors=True)
