"""Firewall against the real libvirtd and the kernel: a running TCG VM on a bridge without an address gets
rulesets through the API, and iptables/ip6tables/ebtables show them; edits reach the running VM; detaching
removes everything. Refusals (bad ports, CIDRs, protocol/port mixes, stale revisions, rulesets in use)
come back with their reason."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.e2e import fwvirt, virt
from tests.e2e.conftest import ADMIN_PASSWORD
from tests.helpers import eventually, login, token_client

pytestmark = pytest.mark.e2e

RS = "/api/v1/firewall/rulesets"
SUFFIX = virt.unique_name("e2e").split("-")[1]
SSH = f"e2e-ssh-{SUFFIX}"
WEB = f"e2e-web-{SUFFIX}"


@pytest.fixture(scope="module")
def api(stack):
    return token_client(stack.base, ADMIN_PASSWORD, "e2e-firewall", "admin", timeout=60)


@pytest.fixture(scope="module")
def bridge():
    name = fwvirt.make_bridge()
    yield name
    fwvirt.remove_bridge(name)


@pytest.fixture(scope="module")
def vm(api, bridge, tmp_path_factory):
    """A running VM with one NIC on the bridge, listed by the API."""
    name = virt.unique_name("e2e-fw")
    uuid, macs = fwvirt.define_bridged(name, bridge, tmp_path_factory.mktemp("fw"))
    try:
        virt.virsh("start", name)
        eventually(lambda: api.get(f"/api/v1/vms/{uuid}").json().get("state") == "running", timeout=20,
                   what="VM running in the API")
        yield {"name": name, "id": uuid, "mac": macs[0], "tap": fwvirt.tap_of(name, macs[0])}
    finally:
        virt.remove(name)
        fwvirt.undefine_filters(f"flint-vm-{uuid.replace('-', '')[:8]}-")
        for rs in (SSH, WEB):
            api.delete(f"{RS}/{rs}")
            virt.virsh("nwfilter-undefine", f"flint-rs-{rs}", check=False)


def _problem(resp: httpx.Response, status: int) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    return resp.json()


def _fo(vm) -> list[str]:
    """Traffic to the VM: libvirt's FO-<tap> chain (FI/HI hold traffic from the VM)."""
    return fwvirt.iptables(f"FO-{vm['tap']}")


def _index(lines: list[str], pattern: str) -> int:
    for i, line in enumerate(lines):
        if re.search(pattern, line):
            return i
    raise AssertionError(f"no line matches {pattern!r} in:\n" + "\n".join(lines))


def _set(api, vm, **settings) -> dict:
    resp = api.put(f"/api/v1/vms/{vm['id']}/firewall", json=settings)
    assert resp.status_code == 200, resp.text
    return resp.json()


# ---- refusals ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("rule", "field", "reason"), [
    ({"protocol": "tcp", "ports": 0}, "rules[0].ports", "port 0 is out of range"),
    ({"protocol": "tcp", "ports": "70000"}, "rules[0].ports", "port 70000 is out of range"),
    ({"protocol": "udp", "ports": "2000-1000"}, "rules[0].ports", "reversed"),
    ({"protocol": "icmp", "ports": 22}, "rules[0].ports", "ports need protocol tcp or udp"),
    ({"protocol": "all", "ports": "80"}, "rules[0].ports", "ports need protocol tcp or udp"),
    ({"ports": "80"}, "rules[0].ports", "ports need protocol tcp or udp"),
    ({"protocol": "tcp", "source": "10.0.0.300/8"}, "rules[0].source", "not an IPv4 or IPv6 address"),
    ({"protocol": "tcp", "destination": "10.1.2.3/8"}, "rules[0].destination", "host bits set"),
    ({"source": "10.0.0.0/8", "destination": "fd00::/8"}, "rules[0].destination", "one address family"),
    ({"macro": "Gopher"}, "rules[0].macro", "unknown macro"),
    ({"macro": "SSH", "protocol": "udp"}, "rules[0].protocol", "a macro sets the protocol"),
    ({"protocol": "sctp"}, "rules[0].protocol", "sctp"),
    ({"direction": "sideways"}, "rules[0].direction", "sideways"),
])
def test_bad_rules_are_refused_with_their_field_and_reason(api, rule, field, reason):
    body = _problem(api.post(RS, json={"name": f"e2e-bad-{SUFFIX}", "rules": [rule]}), 400)
    assert body["errors"][0]["field"] == field, body
    assert reason in body["errors"][0]["message"] or reason in body["detail"], body
    assert api.get(f"{RS}/e2e-bad-{SUFFIX}").status_code == 404  # nothing was stored


def test_every_bad_rule_is_listed(api):
    body = _problem(api.post(RS, json={"name": f"e2e-bad-{SUFFIX}", "rules": [
        {"protocol": "tcp", "ports": 22}, {"protocol": "icmp", "ports": 1}, {"protocol": "tcp", "source": "x"}]}), 400)
    assert [e["field"] for e in body["errors"]] == ["rules[1].ports", "rules[2].source"]


# ---- the kernel's tables -------------------------------------------------------------------------

def test_ruleset_on_a_running_vm_edits_and_detach_reach_the_kernel(api, vm, stack):
    created = api.post(RS, json={"name": SSH, "description": "ssh only", "rules": [
        {"direction": "in", "action": "accept", "protocol": "tcp", "ports": 22, "comment": "ssh"},
        {"direction": "in", "action": "drop", "comment": "everything else"},
    ]})
    assert created.status_code == 201, created.text
    revision = created.json()["revision"]
    assert created.headers["etag"] == f'"{revision}"'
    eventually(lambda: f"flint-rs-{SSH}" in fwvirt.nwfilters(), timeout=10, what="ruleset filter defined")

    # attach: persistent and live, through the VM's own filter
    reply = _set(api, vm, rulesets=[SSH])
    nic_filter = f"flint-vm-{vm['id'].replace('-', '')[:8]}-{vm['mac'].replace(':', '')}"
    assert reply["nics"] == [{"mac": vm["mac"], "type": "bridge", "source": reply["nics"][0]["source"],
                              "filter": nic_filter, "attached": True, "live": True, "ip_addresses": [],
                              "note": ""}]
    assert fwvirt.filterrefs(vm["name"], inactive=True) == {vm["mac"]: nic_filter}
    assert fwvirt.filterrefs(vm["name"], inactive=False) == {vm["mac"]: nic_filter}
    assert "flint:firewall" in virt.virsh("dumpxml", vm["name"], "--inactive")  # the settings survive there

    fo = _fo(vm)
    established = _index(fo, r"--ctstate RELATED,ESTABLISHED -j ACCEPT")
    ssh = _index(fo, r"-p tcp -m tcp --dport 22 .*-j ACCEPT")
    drop = _index(fo, r"--ctstate INVALID,NEW .*-j DROP")
    assert established < ssh < drop, fo
    assert _index(fwvirt.ip6tables(f"FO-{vm['tap']}"), r"-p tcp -m tcp --dport 22 .*-j ACCEPT") >= 0
    # the drop stops new traffic to the VM only: nothing from the VM is dropped
    assert not [line for line in fwvirt.iptables(f"FI-{vm['tap']}") if "-j DROP" in line]
    assert api.get(f"/api/v1/vms/{vm['id']}/firewall").json()["settings"]["rulesets"] == [SSH]

    # a ruleset in use cannot be deleted, and the refusal names the VM
    body = _problem(api.delete(f"{RS}/{SSH}"), 409)
    assert f"local/{vm['name']}" in body["detail"]
    assert api.get(f"{RS}/{SSH}").json()["used_by"] == [{"host": "local", "id": vm["id"], "name": vm["name"]}]

    # stale or missing If-Match
    body = _problem(api.put(f"{RS}/{SSH}", json={"rules": []}, headers={"If-Match": f'"{revision - 1}"'}), 412)
    assert f"current revision is {revision}" in body["detail"]
    _problem(api.put(f"{RS}/{SSH}", json={"rules": []}), 428)

    # edit while the VM runs: tcp/80 before the drop
    edited = api.put(f"{RS}/{SSH}", headers={"If-Match": f'"{revision}"'}, json={"description": "ssh and web", "rules": [
        {"direction": "in", "action": "accept", "protocol": "tcp", "ports": 22},
        {"direction": "in", "action": "accept", "protocol": "tcp", "ports": "80,8080-8090"},
        {"direction": "in", "action": "drop"},
    ]})
    assert edited.status_code == 200, edited.text
    assert edited.json()["revision"] > revision
    fo = eventually(lambda: (lines := _fo(vm)) and any("--dport 80 " in line for line in lines) and lines,
                    timeout=15, what="tcp/80 in the running VM's chain")
    assert _index(fo, r"--dport 22 .*-j ACCEPT") < _index(fo, r"--dport 80 .*-j ACCEPT") < \
        _index(fo, r"--dport 8080:8090 .*-j ACCEPT") < _index(fo, r"INVALID,NEW .*-j DROP"), fo
    _problem(api.put(f"{RS}/{SSH}", json={"rules": []}, headers={"If-Match": f'"{revision}"'}), 412)

    # a second ruleset: the VM's order is the order of evaluation
    assert api.post(RS, json={"name": WEB, "rules": [{"macro": "HTTPS"}]}).status_code == 201
    _set(api, vm, rulesets=[WEB, SSH])
    fo = _fo(vm)
    assert _index(fo, r"--dport 443 ") < _index(fo, r"--dport 22 ") < _index(fo, r"INVALID,NEW .*-j DROP"), fo
    _set(api, vm, rulesets=[SSH, WEB])
    fo = _fo(vm)
    assert _index(fo, r"--dport 22 ") < _index(fo, r"INVALID,NEW .*-j DROP") < _index(fo, r"--dport 443 "), fo

    # default policy drop and anti-spoofing with the NIC's address
    reply = _set(api, vm, rulesets=[WEB], anti_spoofing=True, default_policy="drop",
                 addresses={vm["mac"]: ["10.99.0.7"]})
    assert reply["nics"][0]["ip_addresses"] == ["10.99.0.7"]
    fo = _fo(vm)
    assert _index(fo, r"--dport 443 .*-j ACCEPT") < _index(fo, r"--sport 67 --dport 68 .*-j ACCEPT") < \
        _index(fo, r"INVALID,NEW .*-j DROP"), fo
    assert not any("--dport 22 " in line for line in fo)
    fo6 = fwvirt.ip6tables(f"FO-{vm['tap']}")
    assert _index(fo6, r"--ctstate RELATED,ESTABLISHED -j ACCEPT") < _index(fo6, r"--icmpv6-type 135 .*-j ACCEPT") \
        < _index(fo6, r"INVALID,NEW .*-j DROP"), fo6
    eb = fwvirt.ebtables_nat()
    assert f"-i {vm['tap']} -j libvirt-I-{vm['tap']}" in eb
    assert "--ip-src 10.99.0.7 -j RETURN" in eb and f"-s {vm['mac']} -j RETURN" in eb, eb

    # the ruleset is free once no VM uses it
    _set(api, vm, rulesets=[WEB])
    assert api.get(f"{RS}/{SSH}").json()["used_by"] == []
    assert api.delete(f"{RS}/{SSH}").status_code == 204
    eventually(lambda: f"flint-rs-{SSH}" not in fwvirt.nwfilters(), timeout=10, what="ruleset filter removed")

    # detach: no filter on the NIC, no chains, no per-NIC filter
    reply = _set(api, vm)
    assert reply["nics"][0]["attached"] is False and reply["nics"][0]["filter"] is None
    assert fwvirt.filterrefs(vm["name"], inactive=True) == {vm["mac"]: None}
    assert fwvirt.filterrefs(vm["name"], inactive=False) == {vm["mac"]: None}
    assert not fwvirt.has_chain("iptables", f"FO-{vm['tap']}")
    assert not fwvirt.has_chain("ip6tables", f"FO-{vm['tap']}")
    assert f"libvirt-I-{vm['tap']}" not in fwvirt.ebtables_nat()
    assert nic_filter not in fwvirt.nwfilters()
    assert "flint:firewall" not in virt.virsh("dumpxml", vm["name"], "--inactive")
    assert virt.virsh("domstate", vm["name"]).strip() == "running"  # all of it without a restart


def test_vm_settings_are_checked(api, vm):
    body = _problem(api.put(f"/api/v1/vms/{vm['id']}/firewall", json={"rulesets": [f"nope-{SUFFIX}"]}), 422)
    assert body["errors"][0]["field"] == "rulesets[0]" and "no ruleset named" in body["detail"]
    body = _problem(api.put(f"/api/v1/vms/{vm['id']}/firewall",
                            json={"anti_spoofing": True, "addresses": {"52:54:00:ff:ff:ff": ["10.0.0.1"]}}), 400)
    assert body["errors"][0]["field"] == "addresses.52:54:00:ff:ff:ff" and "no NIC with MAC" in body["detail"]
    body = _problem(api.put(f"/api/v1/vms/{vm['id']}/firewall", json={"default_policy": "reject"}), 400)
    assert body["errors"][0]["field"] == "default_policy"
    _problem(api.put("/api/v1/vms/00000000-0000-0000-0000-000000000000/firewall", json={}), 404)


def test_roles(stack, api, vm):
    admin = login(stack.base, password=ADMIN_PASSWORD)
    tokens = {role: admin.post("/api/v1/auth/tokens", json={"name": f"e2e-fw-{role}", "role": role}).json()["token"]
              for role in ("viewer", "operator")}

    def as_(role: str) -> httpx.Client:
        return httpx.Client(base_url=stack.base, headers={"Authorization": f"Bearer {tokens[role]}"}, timeout=60)

    viewer, operator = as_("viewer"), as_("operator")
    assert viewer.get(RS).status_code == 200
    assert viewer.get("/api/v1/firewall/macros").status_code == 200
    assert viewer.get(f"/api/v1/vms/{vm['id']}/firewall").status_code == 200
    assert viewer.put(f"/api/v1/vms/{vm['id']}/firewall", json={}).status_code == 403
    assert operator.post(RS, json={"name": f"e2e-op-{SUFFIX}"}).status_code == 403
    assert operator.put(f"/api/v1/vms/{vm['id']}/firewall", json={}).status_code == 200


def test_builtin_nwfilters_are_listed(api):
    resp = api.get("/api/v1/hosts/local/nwfilters")
    assert resp.status_code == 200, resp.text
    by_name = {f["name"]: f for f in resp.json()["filters"]}
    clean = by_name["clean-traffic"]
    assert clean["owner"] == "libvirt" and "no-ip-spoofing" in clean["references"]
    assert "<filter name='clean-traffic'" in clean["xml"]
    assert api.get("/api/v1/hosts/no-such-host/nwfilters").status_code == 404


def test_macros_are_served(api):
    macros = {m["name"]: m for m in api.get("/api/v1/firewall/macros").json()}
    assert macros["SSH"]["entries"] == [{"protocol": "tcp", "ports": "22", "icmp_type": None}]
    assert {e["protocol"] for e in macros["DNS"]["entries"]} == {"udp", "tcp"}


def test_filters_survive_a_restart_and_follow_a_new_nic(api, vm, bridge):
    name = f"e2e-keep-{SUFFIX}"
    assert api.post(RS, json={"name": name, "rules": [{"protocol": "tcp", "ports": 2222}]}).status_code == 201
    try:
        _set(api, vm, rulesets=[name])
        # a restart outside Flint: the persistent definition carries the filter
        virt.virsh("destroy", vm["name"])
        virt.virsh("start", vm["name"])
        tap = fwvirt.tap_of(vm["name"], vm["mac"])
        assert _index(fwvirt.iptables(f"FO-{tap}"), r"--dport 2222 .*-j ACCEPT") >= 0
        # a NIC plugged in outside Flint gets its own filter too (inventory's event -> firewall service)
        mac = fwvirt.random_mac()
        virt.virsh("attach-interface", vm["name"], "bridge", bridge, "--model", "virtio", "--mac", mac,
                   "--live", "--config")
        nic_filter = f"flint-vm-{vm['id'].replace('-', '')[:8]}-{mac.replace(':', '')}"
        eventually(lambda: fwvirt.filterrefs(vm["name"], inactive=False).get(mac) == nic_filter, timeout=20,
                   what="the new NIC filtered")
        assert fwvirt.filterrefs(vm["name"], inactive=True)[mac] == nic_filter
        new_tap = fwvirt.tap_of(vm["name"], mac)
        assert _index(fwvirt.iptables(f"FO-{new_tap}"), r"--dport 2222 .*-j ACCEPT") >= 0
        # (iPXE ignores an unplug request, so the NIC stays on the running VM until it stops)
        virt.virsh("detach-interface", vm["name"], "bridge", "--mac", mac, "--config")
    finally:
        reply = _set(api, vm)
        assert not any(n["attached"] or n["live"] for n in reply["nics"]), reply
        assert not [f for f in fwvirt.nwfilters() if f.startswith(f"flint-vm-{vm['id'].replace('-', '')[:8]}")]
        api.delete(f"{RS}/{name}")
    vm["tap"] = fwvirt.tap_of(vm["name"], vm["mac"])


def test_cli_sets_a_vms_firewall(stack, api, vm):
    import subprocess
    import sys

    token = login(stack.base, password=ADMIN_PASSWORD).post(
        "/api/v1/auth/tokens", json={"name": "e2e-fw-cli", "role": "admin"}).json()["token"]

    def flint(*args: str) -> subprocess.CompletedProcess:
        env = {"FLINT_URL": stack.base, "FLINT_TOKEN": token, "PATH": "/usr/bin:/bin"}
        return subprocess.run([sys.executable, "-m", "flint.cli.main", "firewall", *args], capture_output=True,
                              text=True, env=env, timeout=60)

    name = f"e2e-cli-{SUFFIX}"
    made = flint("ruleset", "create", name, "--rule", "in accept tcp 3022", "--rule", "in drop all")
    assert made.returncode == 0, made.stderr
    try:
        shown = flint("vm", "set", vm["name"], "--ruleset", name, "--default-policy", "drop")
        assert shown.returncode == 0, shown.stderr
        assert f"rulesets        {name}" in shown.stdout and "default policy  drop" in shown.stdout
        assert f"nic {vm['mac']} " in shown.stdout and ": filtered" in shown.stdout
        assert _index(_fo(vm), r"--dport 3022 .*-j ACCEPT") >= 0
        busy = flint("ruleset", "delete", name)
        assert busy.returncode == 1 and vm["name"] in busy.stderr
        cleared = flint("vm", "set", vm["name"], "--clear")
        assert cleared.returncode == 0 and "not filtered" in cleared.stdout
        assert not fwvirt.has_chain("iptables", f"FO-{vm['tap']}")
    finally:
        flint("vm", "set", vm["name"], "--clear")
        flint("ruleset", "delete", name)
    assert "flint-vm-" not in " ".join(f for f in fwvirt.nwfilters() if vm["id"].replace("-", "")[:8] in f)
