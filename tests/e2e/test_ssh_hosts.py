"""Agentless SSH hosts, end to end: an sshd of the test's own on 127.0.0.1 with a generated key, and
`qemu+ssh://root@127.0.0.1:PORT/system` to this machine's libvirtd registered as host `ssh1`.

The stack's own host `local` runs libvirt's test driver here, so the real libvirtd is seen through the SSH
host only (the same libvirtd under two host names would list every VM twice under one UUID).

On the SSH host: a VM made through the API, its VNC console through the gateway (the console service
tunnels to the VNC port over SSH), a firewall ruleset in the kernel's tables, storage figures and
metrics. Refusals name their field; a wrong host key is refused; removing the host stops its services and
forgets its VMs. The Hosts page adds and removes a host."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time

import httpx
import pytest
from playwright.sync_api import expect

from flint.supervisor import DEMO_XML
from tests.e2e import fwvirt, virt
from tests.e2e.conftest import ADMIN_PASSWORD, start_stack, stop_stack
from tests.e2e.console_support import Rfb, open_ws, ticket
from tests.e2e.ssh_support import keygen, start_sshd
from tests.e2e.vm_create_support import destroy_lab, make_lab, wait_job
from tests.helpers import eventually, flint_env, login, run_async

pytestmark = pytest.mark.e2e
HOST = "ssh1"
SUFFIX = virt.unique_name("e2e").split("-")[1]
RULESET = f"e2e-sshhost-{SUFFIX}"


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ssh_stack(tmp_path_factory):
    stack = start_stack(tmp_path_factory.mktemp("flint-ssh"), FLINT_LIBVIRT_URI=f"test://{DEMO_XML}")
    yield stack
    stop_stack(stack)


@pytest.fixture(scope="module")
def api(ssh_stack):
    client = login(ssh_stack.base, password=ADMIN_PASSWORD)
    token = client.post("/api/v1/auth/tokens", json={"name": "e2e-ssh", "role": "admin"}).json()["token"]
    return httpx.Client(base_url=ssh_stack.base, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def _body(sshd, name: str = HOST, **over) -> dict:
    body = {"name": name, "uri": sshd.uri, "ssh_private_key": sshd.private_key(), "known_hosts": sshd.known_hosts()}
    body.update(over)
    return body


def _problem(resp: httpx.Response, status: int, field: str) -> str:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body = resp.json()
    assert [e["field"] for e in body.get("errors", [])] == [field], body
    return body["detail"]


def _host(api, name: str) -> dict | None:
    return next((h for h in api.get("/api/v1/hosts").json() if h["name"] == name), None)


def _up(api, name: str) -> bool:
    h = _host(api, name)
    return bool(h and h["state"] == "up" and h["libvirt_version"])


@pytest.fixture(scope="module")
def ssh_host(api, sshd, ssh_stack):
    resp = api.post("/api/v1/hosts", json=_body(sshd))
    assert resp.status_code == 201, resp.text
    eventually(lambda: _up(api, HOST), timeout=90, interval=0.5, what=f"host {HOST} up")
    yield resp.json()
    api.delete(f"/api/v1/hosts/{HOST}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = make_lab(tmp_path_factory.mktemp("sshlab"))
    bridge = fwvirt.make_bridge()
    yield lab, bridge
    destroy_lab(lab)
    fwvirt.remove_bridge(bridge)
    fwvirt.undefine_filters(f"flint-rs-{RULESET}")


def test_bad_registrations_are_refused_naming_the_field(api, sshd, ssh_stack, tmp_path):
    cases = [
        ({"name": "Bad_Name"}, 422, "name", "a host name is"),
        ({"name": "local"}, 409, "name", "this machine's own host"),
        ({"uri": "qemu+tcp://root@127.0.0.1/system"}, 422, "uri", "only qemu+ssh"),
        ({"uri": f"qemu+ssh://127.0.0.1:{sshd.port}/system"}, 422, "uri", "name the SSH user"),
        ({"uri": f"qemu+ssh://root@127.0.0.1:{sshd.port}/system?keyfile=/etc/shadow"}, 422, "uri", "leave out ?parameters"),
        ({"uri": f"qemu+ssh://root@127.0.0.1:{sshd.port}/session"}, 422, "uri", "/system"),
        ({"ssh_private_key": "not a key"}, 422, "ssh_private_key", "not a private key"),
        ({"ssh_private_key": ""}, 422, "ssh_private_key", "is required"),
        ({"known_hosts": "garbage line here\n"}, 422, "known_hosts", "known_hosts"),
        ({"known_hosts": f"[127.0.0.1]:{sshd.port + 1} " + sshd.known_hosts().split(" ", 1)[1]}, 422,
         "known_hosts", f"has no key for [127.0.0.1]:{sshd.port}"),
    ]
    for over, status, field, words in cases:
        detail = _problem(api.post("/api/v1/hosts", json=_body(sshd, **{"name": "badhost", **over})), status, field)
        assert words in detail, (over, detail)
    # an encrypted key: nothing could type its passphrase at night
    enc = tmp_path / "enc"
    os.system(f"ssh-keygen -q -t ed25519 -N secret-pass -f {enc}")  # noqa: S605 - fixed arguments
    detail = _problem(api.post("/api/v1/hosts", json=_body(sshd, name="badhost", ssh_private_key=enc.read_text())),
                      422, "ssh_private_key")
    assert "encrypted" in detail
    # a key the host does not accept
    other = keygen(tmp_path / "other")
    detail = _problem(api.post("/api/v1/hosts", json=_body(sshd, name="badhost", ssh_private_key=other.read_text())),
                      422, "ssh_private_key")
    assert "refused this key" in detail
    # nothing half-made: no files, no registration
    assert not (ssh_stack.data_dir / "hosts" / "badhost").exists()
    assert _host(api, "badhost") is None
    # malformed body, unknown field: 400
    assert api.post("/api/v1/hosts", json={"name": "x"}).status_code == 400
    assert api.post("/api/v1/hosts", json={**_body(sshd, name="x"), "password": "p"}).status_code == 400


def test_a_wrong_host_key_is_refused(api, sshd, ssh_stack, tmp_path):
    impostor = keygen(tmp_path / "impostor")
    wrong = sshd.known_hosts(impostor.with_suffix(".pub"))
    detail = _problem(api.post("/api/v1/hosts", json=_body(sshd, name="wrongkey", known_hosts=wrong)), 422, "known_hosts")
    assert f"the host key of [127.0.0.1]:{sshd.port} does not match known_hosts" in detail, detail
    real = sshd.known_hosts().split()[2]
    assert "it offered ssh-ed25519 SHA256:" in detail
    assert real not in detail  # a fingerprint, not the key
    assert not (ssh_stack.data_dir / "hosts" / "wrongkey").exists()
    assert _host(api, "wrongkey") is None


def test_only_admins_add_hosts(api, ssh_stack, sshd):
    login(ssh_stack.base, password=ADMIN_PASSWORD).post("/api/v1/users", json={
        "name": "sshop", "password": "ssh-operator-pw", "role": "operator"})
    operator = login(ssh_stack.base, "sshop", "ssh-operator-pw")
    assert operator.post("/api/v1/hosts", json=_body(sshd, name="opshost")).status_code == 403
    assert operator.delete(f"/api/v1/hosts/{HOST}").status_code == 403


def test_the_ssh_host_comes_up_with_its_key_kept_private(api, ssh_host, ssh_stack, sshd):
    assert ssh_host["uri"] == sshd.uri and ssh_host["host_keys"][0].startswith("ssh-ed25519 SHA256:")
    h = _host(api, HOST)
    assert h["uri"] == sshd.uri and h["remote"] is True  # no key file paths in what users see
    eventually(lambda: next(x for x in api.get("/api/v1/health/details").json()["hosts"] if x["name"] == HOST)["ok"],
               timeout=30, interval=0.5, what=f"every service of {HOST} healthy")
    hdir = ssh_stack.data_dir / "hosts" / HOST
    assert stat.S_IMODE(hdir.stat().st_mode) == 0o700
    assert stat.S_IMODE((hdir / "id").stat().st_mode) == 0o600
    assert stat.S_IMODE((hdir / "known_hosts").stat().st_mode) == 0o600
    # the secret is nowhere but in that file: not in the API's answers, the registry or the logs
    secret = sshd.private_key().split("\n")[1]
    assert secret not in json.dumps(api.get("/api/v1/hosts").json())
    assert secret not in ssh_stack.proc.output()
    nats_auth = json.loads((ssh_stack.data_dir / "nats-auth" / "users.json").read_text())
    assert any(u["user"] == f"agentless-{HOST}" and u["role"] == "agent" and u["host"] == HOST for u in nats_auth)
    # the services of ssh1 connect with their own agent credentials
    assert f"agentless-{HOST}.creds" in os.listdir(ssh_stack.data_dir / "nats-auth")
    # CLI: listed with its state
    out = _flint(ssh_stack, api, "host", "list")
    assert out.returncode == 0 and HOST in out.stdout and sshd.uri in out.stdout, out


def _health_pid(stack, service: str) -> tuple[int, bool]:
    from flint import bus, subjects
    from flint.contracts.common import Empty
    from flint.contracts.health import HealthReply

    async def ask() -> int:
        nc = await bus.connect(stack.nats_url, name="e2e-ssh", creds=str(stack.data_dir / "nats-auth" / "system.creds"))
        try:
            reply = await bus.request(nc, subjects.health(HOST, service), Empty(), HealthReply, 2)
            return reply.pid, reply.ok
        finally:
            await nc.close()

    return run_async(ask())


def test_a_dead_service_of_the_ssh_host_is_restarted(api, ssh_host, ssh_stack):
    import signal

    pid, ok = _health_pid(ssh_stack, "provisioner")
    assert ok
    os.kill(pid, signal.SIGKILL)  # a child of this test's `flint up`
    eventually(lambda: (p := _health_pid(ssh_stack, "provisioner"))[0] != pid and p[1], timeout=30, interval=0.5,
               what="the provisioner of ssh1 restarted and connected to libvirt again")
    assert "child exited; restarting" in ssh_stack.proc.output() and f"provisioner@{HOST}" in ssh_stack.proc.output()


def test_vm_console_firewall_storage_and_metrics_on_the_ssh_host(api, ssh_host, lab, ssh_stack):
    lab, bridge = lab
    name = lab.track(virt.unique_name("e2e-sshvm"))
    body = {"host": HOST, "name": name, "vcpus": 1, "memory_mib": 64,
            "source": {"kind": "iso", "volume": f"{lab.pool}/ipxe.iso"},
            "disks": [{"size_gib": 0.05, "pool": lab.pool}],
            "nics": [{"bridge": bridge, "model": "virtio"}], "start": True}
    eventually(lambda: any(p["name"] == lab.pool for p in api.get(f"/api/v1/hosts/{HOST}/pools").json()),
               timeout=30, what="the lab pool seen on the SSH host")
    resp = api.post("/api/v1/vms", json=body)
    assert resp.status_code == 202, resp.text
    job = wait_job(api, resp.json()["id"])
    assert job["state"] == "succeeded" and job["host"] == HOST, job
    vm_id = job["result"]["id"]
    vm = eventually(lambda: (v := api.get(f"/api/v1/vms/{vm_id}").json()).get("state") == "running" and v,
                    timeout=30, what="VM running")
    assert vm["host"] == HOST
    assert [v["id"] for v in api.get("/api/v1/vms", params={"host": HOST, "q": name}).json()["items"]] == [vm_id]
    assert virt.virsh("domstate", name).strip() == "running"  # made on the real libvirtd, over SSH

    # VNC through the gateway: the console service tunnels over SSH to the VNC port on "the remote"
    t = ticket(api, vm_id)
    with open_ws(ssh_stack.base, t["url"], {"Authorization": api.headers["Authorization"]}) as ws:
        width, height, _ = Rfb(ws).handshake()
    assert width >= 320 and height >= 200
    assert '"tunnel": true' in ssh_stack.proc.output() or "tunnel=True" in ssh_stack.proc.output()

    # firewall: a ruleset attached to the VM reaches the kernel's tables
    created = api.post("/api/v1/firewall/rulesets", json={"name": RULESET, "rules": [
        {"direction": "in", "action": "accept", "protocol": "tcp", "ports": 22},
        {"direction": "in", "action": "drop"}]})
    assert created.status_code == 201, created.text
    eventually(lambda: f"flint-rs-{RULESET}" in fwvirt.nwfilters(), timeout=20, what="ruleset filter on the host")
    mac = vm["nics"][0]["mac"]
    reply = api.put(f"/api/v1/vms/{vm_id}/firewall", json={"rulesets": [RULESET], "default_policy": "drop"})
    assert reply.status_code == 200, reply.text
    nic = reply.json()["nics"][0]
    assert nic["attached"] and nic["live"], nic
    tap = fwvirt.tap_of(name, mac)
    eventually(lambda: any("--dport 22" in line and "ACCEPT" in line for line in fwvirt.iptables(f"FO-{tap}")),
               timeout=10, what=f"the ruleset in the VM's iptables chain FO-{tap}")

    # storage figures and metrics from libvirt over the SSH connection
    summary = api.get("/api/v1/storage/summary").json()
    mine = next(h for h in summary["hosts"] if h["host"] == HOST)
    assert mine["capacity"] > 0 and mine["free"] > 0, mine
    metrics = eventually(lambda: (m := api.get(f"/api/v1/vms/{vm_id}/metrics")).status_code == 200
                         and m.json()["samples"] and m.json(), timeout=30, what="metrics samples")
    assert metrics["samples"][-1]["memory_total_bytes"] > 0

    assert api.put(f"/api/v1/vms/{vm_id}/firewall", json={}).status_code == 200
    api.delete(f"/api/v1/firewall/rulesets/{RULESET}")


def test_a_volume_upload_reaches_the_ssh_host(api, ssh_host, lab):
    lab, _ = lab
    body = os.urandom(256 * 1024)
    resp = api.put(f"/api/v1/hosts/{HOST}/pools/{lab.pool}/volumes/up.raw/content", content=body,
                   headers={"Content-Type": "application/octet-stream"})
    assert resp.status_code == 202, resp.text
    job = wait_job(api, resp.json()["id"])
    assert job["state"] == "succeeded", job
    vols = {v["name"]: v for v in api.get(f"/api/v1/hosts/{HOST}/pools/{lab.pool}/volumes").json()}
    assert vols["up.raw"]["capacity"] == len(body)
    assert (lab.path / "up.raw").read_bytes() == body  # written through a libvirt stream over SSH


def test_removing_the_host_stops_its_services_and_forgets_it(api, ssh_host, ssh_stack, sshd):
    assert api.get("/api/v1/vms", params={"host": HOST}).json()["total"] > 0
    t0 = time.monotonic()
    resp = api.delete(f"/api/v1/hosts/{HOST}")
    assert resp.status_code == 204, resp.text
    assert time.monotonic() - t0 < 20
    eventually(lambda: _host(api, HOST) is None, timeout=20, what="host gone from the list")
    eventually(lambda: api.get("/api/v1/vms", params={"host": HOST}).json()["total"] == 0, timeout=20,
               what="its VMs gone from the inventory")
    assert not api.get(f"/api/v1/hosts/{HOST}/pools").json() or api.get(f"/api/v1/hosts/{HOST}/pools").status_code == 404
    assert not (ssh_stack.data_dir / "hosts" / HOST).exists()
    health = api.get("/api/v1/health/details").json()
    assert HOST not in [h["name"] for h in health["hosts"]]
    # its services are gone: nothing answers for it
    assert api.post("/api/v1/vms", json={"host": HOST, "name": "x", "vcpus": 1, "memory_mib": 64,
                                         "source": {"kind": "pxe", "network": "x"}, "disks": [], "nics": [],
                                         "start": False}).status_code in (404, 503)
    users = json.loads((ssh_stack.data_dir / "nats-auth" / "users.json").read_text())
    assert not any(u["user"] == f"agentless-{HOST}" for u in users)
    assert api.delete(f"/api/v1/hosts/{HOST}").status_code == 404
    assert api.delete("/api/v1/hosts/local").status_code == 409


def _flint(stack, api, *args: str) -> subprocess.CompletedProcess:
    env = flint_env(FLINT_URL=stack.base, FLINT_TOKEN=api.headers["Authorization"].split()[1])
    return subprocess.run([sys.executable, "-m", "flint.cli.main", *args], env=env, capture_output=True, text=True,
                          timeout=120)


def test_cli_adds_and_removes_a_host(api, ssh_stack, sshd, tmp_path):
    key, known, wrong = tmp_path / "key", tmp_path / "known_hosts", tmp_path / "wrong_known_hosts"
    key.write_text(sshd.private_key())
    known.write_text(sshd.known_hosts())
    wrong.write_text(sshd.known_hosts(keygen(tmp_path / "impostor").with_suffix(".pub")))
    refused = _flint(ssh_stack, api, "host", "add", "clihost", "--uri", sshd.uri, "--key", str(key),
                     "--known-hosts", str(wrong))
    assert refused.returncode == 1 and "does not match known_hosts" in refused.stderr, refused
    added = _flint(ssh_stack, api, "host", "add", "clihost", "--uri", sshd.uri, "--key", str(key),
                   "--known-hosts", str(known), "--json")
    assert added.returncode == 0, added
    assert json.loads(added.stdout)["name"] == "clihost"
    eventually(lambda: _up(api, "clihost"), timeout=90, interval=0.5, what="clihost up")
    removed = _flint(ssh_stack, api, "host", "remove", "clihost")
    assert removed.returncode == 0 and "host clihost removed" in removed.stdout, removed
    assert _host(api, "clihost") is None
    missing = _flint(ssh_stack, api, "host", "remove", "clihost")
    assert missing.returncode == 1 and "no host named 'clihost'" in missing.stderr


def test_a_test_driver_host_can_be_added(api, ssh_stack, tmp_path):
    """A third kind of host in the same run: libvirt's test driver (its own node file, so its VM UUIDs are
    not those of `local`'s demo file)."""
    from lxml import etree

    doc = etree.parse(str(DEMO_XML))
    for dom in doc.getroot().findall("domain"):
        dom.getparent().remove(dom)
    node = tmp_path / "node.xml"
    doc.write(str(node))
    resp = api.post("/api/v1/hosts", json={"name": "testdrv", "uri": f"test://{node}"})
    assert resp.status_code == 201 and resp.json()["kind"] == "test", resp.text
    try:
        eventually(lambda: _up(api, "testdrv"), timeout=90, interval=0.5, what="testdrv up")
        assert _host(api, "testdrv")["agentless"] is True
        assert api.post("/api/v1/hosts", json={"name": "testdrv2", "uri": f"test://{node}",
                                               "ssh_private_key": "x"}).status_code == 422
    finally:
        assert api.delete("/api/v1/hosts/testdrv").status_code == 204


def test_an_unreachable_ssh_host_fails_fast_with_a_clear_error(api, ssh_stack, tmp_path_factory):
    gone = start_sshd(tmp_path_factory.mktemp("sshd-gone"))
    try:
        assert api.post("/api/v1/hosts", json=_body(gone, name="goner")).status_code == 201
        eventually(lambda: _up(api, "goner"), timeout=90, interval=0.5, what="host goner up")
        eventually(lambda: api.get("/api/v1/hosts/goner/interfaces").status_code == 200, timeout=30, interval=0.5,
                   what="the provisioner of goner answering")
        gone.kill_all()  # sshd and its sessions: the machine is gone

        def fails_fast():
            t0 = time.monotonic()
            resp = api.get("/api/v1/hosts/goner/interfaces")
            took = time.monotonic() - t0
            return resp.status_code == 503 and took < 3 and (resp.json()["detail"], took)

        detail, _ = eventually(fails_fast, timeout=30, interval=0.5, what="a fast 503 for the unreachable host")
        assert "goner" in detail or "not connected" in detail, detail
        assert "keyfile" not in detail  # no key file paths in what users see
        eventually(lambda: _host(api, "goner")["state"] == "unreachable", timeout=30, interval=0.5,
                   what="host shown unreachable")
        t0 = time.monotonic()
        resp = api.get("/api/v1/hosts/goner/interfaces")
        assert resp.status_code == 503 and time.monotonic() - t0 < 1
        assert "host 'goner' is unreachable" in resp.json()["detail"]
        # and it can still be removed
        assert api.delete("/api/v1/hosts/goner").status_code == 204
        eventually(lambda: _host(api, "goner") is None, timeout=20, what="goner removed")
    finally:
        gone.stop()
        api.delete("/api/v1/hosts/goner")


def test_hosts_page_adds_and_removes_a_host(browser, ssh_stack, sshd, api, tmp_path):
    name = "uihost"
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(ssh_stack.base + "/login")
        page.get_by_test_id("login-username").fill("admin")
        page.get_by_test_id("login-password").fill(ADMIN_PASSWORD)
        page.get_by_test_id("login-submit").click()
        page.wait_for_url(lambda url: "/login" not in url, timeout=15000)
        page.goto(ssh_stack.base + "/hosts")
        page.get_by_test_id("host-add-open").click()
        page.get_by_test_id("host-add-name").fill(name)
        page.get_by_test_id("host-add-uri").fill(sshd.uri)
        page.get_by_test_id("host-add-key").fill(sshd.private_key())
        # first a wrong known_hosts: the error shows at its field, nothing is added
        impostor = keygen(tmp_path / "impostor")
        page.get_by_test_id("host-add-known-hosts").fill(sshd.known_hosts(impostor.with_suffix(".pub")))
        page.get_by_test_id("host-add-submit").click()
        expect(page.get_by_test_id("host-add-error-known_hosts")).to_contain_text("does not match", timeout=20000)
        assert _host(api, name) is None
        page.get_by_test_id("host-add-known-hosts").fill(sshd.known_hosts())
        page.get_by_test_id("host-add-submit").click()
        card = page.get_by_test_id(f"host-card-{name}")
        expect(card).to_be_visible(timeout=20000)
        expect(card.get_by_test_id("host-state")).to_contain_text("up", timeout=90000)
        card.get_by_test_id("host-remove").click()
        page.get_by_test_id("confirm-ok").click()
        expect(card).to_have_count(0, timeout=30000)
        eventually(lambda: _host(api, name) is None, timeout=20, what="host removed")
    finally:
        page.close()
        api.delete(f"/api/v1/hosts/{name}")


def test_registered_hosts_come_back_after_a_restart(sshd, tmp_path_factory):
    """`flint up` stops an agentless host's services with everything else, and starts them again from the
    registry on the next start (with fresh NATS credentials)."""
    data = tmp_path_factory.mktemp("flint-ssh-restart")
    stack = start_stack(data, FLINT_LIBVIRT_URI=f"test://{DEMO_XML}")
    try:
        client = login(stack.base, password=ADMIN_PASSWORD)
        assert client.post("/api/v1/hosts", json=_body(sshd, name="keeper")).status_code == 201
        eventually(lambda: _up(client, "keeper"), timeout=90, interval=0.5, what="keeper up")
    finally:
        stop_stack(stack)  # exit code 0: the agentless services stopped cleanly too
    records = [r for r in re.findall(r"\{[^{}]*\}", stack.proc.log_path.read_text()) if '"keeper"' in r]
    stopped = {json.loads(r)["service"] for r in records if "service stopping" in r}
    assert stopped == {"console", "firewall", "inventory", "provisioner"}
    stack = start_stack(data, FLINT_LIBVIRT_URI=f"test://{DEMO_XML}")
    try:
        client = login(stack.base, password=ADMIN_PASSWORD)
        eventually(lambda: _up(client, "keeper") and _host(client, "keeper")["updated_at"] > time.time() - 10,
                   timeout=90, interval=0.5, what="keeper up again after the restart")
        assert client.delete("/api/v1/hosts/keeper").status_code == 204
    finally:
        stop_stack(stack)
