"""Virtual networks on the real libvirtd through the running stack: isolated networks without any address
(started), a NAT network with a private range (defined, never started), a network over a host bridge made
here without an address, and every invalid input refused with its reason.

Network rule: nothing here starts a network that has an <ip> element or NAT."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys

import httpx
import pytest
from lxml import etree

from tests.e2e import virt
from tests.e2e.conftest import ADMIN_PASSWORD
from tests.helpers import REPO, eventually, flint_env, login

pytestmark = pytest.mark.e2e
HOST = "local"
NETS = f"/api/v1/hosts/{HOST}/networks"


@pytest.fixture(scope="module")
def token(stack):
    client = login(stack.base, password=ADMIN_PASSWORD)
    return client.post("/api/v1/auth/tokens", json={"name": "e2e-networks", "role": "admin"}).json()["token"]


@pytest.fixture(scope="module")
def api(stack, token):
    return httpx.Client(base_url=stack.base, headers={"Authorization": f"Bearer {token}"}, timeout=60)


@pytest.fixture
def names():
    made: list[str] = []
    yield made
    for name in made:
        virt.virsh("net-destroy", name, check=False)
        virt.virsh("net-undefine", name, check=False)


@pytest.fixture
def host_bridge():
    name = f"flintnet{secrets.token_hex(2)}"
    # Never given an address, not even IPv6 link-local (left down, with IPv6 off).
    subprocess.run(["ip", "link", "add", name, "type", "bridge"], check=True)
    subprocess.run(["sysctl", "-q", "-w", f"net.ipv6.conf.{name}.disable_ipv6=1"], check=False)
    yield name
    subprocess.run(["ip", "link", "del", name], check=False)


def track(names: list[str], prefix: str) -> str:
    names.append(virt.unique_name(prefix))
    return names[-1]


def listed(api, name: str) -> dict | None:
    return next((n for n in api.get(NETS).json() if n["name"] == name), None)


def net_info(name: str) -> dict[str, str]:
    lines = [line.split(":", 1) for line in virt.virsh("net-info", name).splitlines() if ":" in line]
    return {k.strip(): v.strip() for k, v in lines}


def inactive_xml(name: str) -> etree._Element:
    return etree.fromstring(virt.virsh("net-dumpxml", "--inactive", name).encode())


def test_isolated_network_round_trip(api, names):
    name = track(names, "e2e-iso")
    resp = api.post(NETS, json={"name": name, "mode": "isolated", "autostart": False})
    assert resp.status_code == 201, resp.text
    net = resp.json()
    assert (net["mode"], net["active"], net["autostart"], net["ipv4"]) == ("isolated", True, False, None)
    assert not net["pxe"]["ready"] and "no IPv4 address" in net["pxe"]["note"]
    assert net_info(name)["Active"] == "yes" and inactive_xml(name).find("ip") is None
    bridge = net["bridge"]
    assert bridge and subprocess.run(["ip", "link", "show", bridge], capture_output=True).returncode == 0

    doc = eventually(lambda: listed(api, name), what="the network in the list")
    assert (doc["mode"], doc["active"], doc["bridge"]) == ("isolated", True, bridge)
    assert api.get(f"{NETS}/{name}").json()["uuid"] == net["uuid"]

    # Edit a running network: saved at once, applied on the next start.
    resp = api.put(f"{NETS}/{name}", json={"mode": "isolated", "mtu": 1400})
    assert resp.status_code == 200, resp.text
    assert resp.json()["mtu"] == 1400 and resp.json()["pending_restart"] is True
    assert inactive_xml(name).find("mtu").get("size") == "1400"
    assert resp.json()["bridge"] == bridge, "an edit keeps the bridge libvirt chose"

    for action, check in [("stop", lambda n: not n["active"]), ("start", lambda n: n["active"]),
                          ("autostart", lambda n: n["autostart"]), ("noautostart", lambda n: not n["autostart"])]:
        resp = api.post(f"{NETS}/{name}/actions", json={"action": action})
        assert resp.status_code == 200, resp.text
        assert check(resp.json()), (action, resp.json())
        eventually(lambda check=check: check(listed(api, name)), what=f"the list after {action}")
    assert api.get(f"{NETS}/{name}").json()["pending_restart"] is False
    live = etree.fromstring(virt.virsh("net-dumpxml", name).encode())
    assert live.find("mtu").get("size") == "1400"

    resp = api.delete(f"{NETS}/{name}")
    assert resp.status_code == 200 and resp.json() == {"deleted": name}
    assert name not in virt.virsh("net-list", "--all", "--name").split()
    eventually(lambda: listed(api, name) is None, what="the network gone from the list")
    assert api.get(f"{NETS}/{name}").status_code == 404


def test_nat_network_with_dhcp_and_pxe_is_defined_never_started(api, names):
    name = track(names, "e2e-nat")
    body = {"name": name, "mode": "nat", "start": False, "autostart": False,
            "ipv4": {"address": "10.213.77.1/24", "dhcp_ranges": [{"start": "10.213.77.100", "end": "10.213.77.199"}],
                     "dhcp_hosts": [{"mac": "52:54:00:77:00:01", "ip": "10.213.77.10", "name": "pxe01"}],
                     "tftp_root": "/var/lib/tftpboot", "bootp_file": "pxelinux.0"}}
    resp = api.post(NETS, json=body)
    assert resp.status_code == 201, resp.text
    net = resp.json()
    assert (net["mode"], net["active"], net["ipv4"]["address"]) == ("nat", False, "10.213.77.1/24")
    assert net["pxe"]["ready"] and "pxelinux.0" in net["pxe"]["note"]
    assert net_info(name)["Active"] == "no"
    xml = inactive_xml(name)
    assert xml.find("forward").get("mode") == "nat"
    assert (xml.find("ip").get("address"), xml.find("ip").get("prefix")) == ("10.213.77.1", "24")
    assert xml.find("ip/tftp").get("root") == "/var/lib/tftpboot"
    assert xml.find("ip/dhcp/bootp").get("file") == "pxelinux.0"
    assert xml.find("ip/dhcp/host").attrib == {"mac": "52:54:00:77:00:01", "name": "pxe01", "ip": "10.213.77.10"}

    edit = dict(body, ipv4=dict(body["ipv4"], dhcp_ranges=[{"start": "10.213.77.50", "end": "10.213.77.60"}]))
    for key in ("name", "start", "autostart"):
        edit.pop(key)
    resp = api.put(f"{NETS}/{name}", json=edit)
    assert resp.status_code == 200, resp.text
    assert resp.json()["ipv4"]["dhcp_ranges"] == [{"start": "10.213.77.50", "end": "10.213.77.60"}]
    assert inactive_xml(name).find("ip/dhcp/range").attrib == {"start": "10.213.77.50", "end": "10.213.77.60"}
    assert resp.json()["active"] is False

    # A second network may not take an overlapping subnet.
    clash = api.post(NETS, json={"name": virt.unique_name("e2e-nat"), "mode": "nat", "start": False,
                                 "ipv4": {"address": "10.213.77.129/25"}})
    assert clash.status_code == 409 and clash.json()["errors"][0]["field"] == "ipv4.address", clash.text
    assert name in clash.json()["detail"]

    assert api.delete(f"{NETS}/{name}").status_code == 200
    assert name not in virt.virsh("net-list", "--all", "--name").split()


def test_bridge_network_over_a_host_bridge(api, names, host_bridge):
    name = track(names, "e2e-br")
    resp = api.post(NETS, json={"name": name, "mode": "bridge", "bridge": host_bridge, "autostart": False})
    assert resp.status_code == 201, resp.text
    net = resp.json()
    assert (net["mode"], net["bridge"], net["active"], net["ipv4"]) == ("bridge", host_bridge, True, None)
    assert "cannot see" in net["pxe"]["note"] and not net["pxe"]["ready"]
    xml = inactive_xml(name)
    assert xml.find("forward").get("mode") == "bridge" and xml.find("bridge").get("name") == host_bridge

    ifaces = {i["name"]: i for i in api.get(f"/api/v1/hosts/{HOST}/interfaces").json()}
    assert ifaces[host_bridge]["type"] == "bridge" and ifaces[host_bridge]["network"] == name
    assert ifaces[host_bridge]["addresses"] == []
    assert ifaces["lo"]["type"] == "loopback"
    doc = eventually(lambda: listed(api, name), what="the bridge network in the list")
    assert (doc["mode"], doc["forward_mode"]) == ("bridge", "bridge")

    assert api.delete(f"{NETS}/{name}").status_code == 200
    ip_link = subprocess.run(["ip", "link", "show", host_bridge], capture_output=True)
    assert ip_link.returncode == 0, "deleting the network leaves the host's bridge alone"


def test_invalid_inputs_are_refused_with_their_reason(api, names):
    taken = track(names, "e2e-taken")
    assert api.post(NETS, json={"name": taken, "autostart": False}).status_code == 201
    before = set(virt.virsh("net-list", "--all", "--name").split())
    fresh = virt.unique_name("e2e-bad")
    cases = [
        ({"name": fresh, "mode": "nat", "start": False, "ipv4": {"address": "10.213.300.1/24"}},
         422, "ipv4.address", "not a valid IPv4 address"),
        ({"name": fresh, "mode": "nat", "start": False, "ipv4": {"address": "10.213.78.1/33"}},
         422, "ipv4.address", "not a valid IPv4 address"),
        ({"name": fresh, "mode": "isolated", "start": False,
          "ipv4": {"address": "10.213.79.1/24", "dhcp_ranges": [{"start": "10.213.80.2", "end": "10.213.80.9"}]}},
         422, "ipv4.dhcp_ranges[0].start", "outside the network's subnet 10.213.79.0/24"),
        ({"name": taken}, 409, "name", "already exists"),
        ({"name": fresh, "mode": "bridge", "bridge": "flintnone0"}, 422, "bridge", "does not exist"),
        ({"name": fresh, "mode": "bridge", "bridge": "lo"}, 422, "bridge", "not a bridge"),
        ({"name": fresh, "mode": "macvtap", "interface": "nosuchif0"}, 422, "interface", "does not exist"),
        ({"name": "bad/name"}, 422, "name", "invalid"),
    ]
    for body, status, field, words in cases:
        resp = api.post(NETS, json=body)
        assert resp.status_code == status, (body, resp.text)
        problem = resp.json()
        assert resp.headers["content-type"].startswith("application/problem+json")
        assert words in problem["detail"], (body, problem)
        assert problem["errors"][0]["field"] == field, (body, problem)
    assert api.post(NETS, json={"name": fresh, "mode": "tunnel"}).status_code == 400
    assert set(virt.virsh("net-list", "--all", "--name").split()) == before, "a refused request made nothing"
    resp = api.put(f"{NETS}/{taken}", json={"mode": "bridge", "bridge": "flintnone0"})
    assert resp.status_code == 409 and "stop it" in resp.json()["detail"], resp.text
    assert api.get(f"{NETS}/no-such-net").status_code == 404
    assert api.post(f"{NETS}/no-such-net/actions", json={"action": "start"}).status_code == 404


def test_cli_round_trip(stack, token, api, names):
    env = flint_env(FLINT_URL=stack.base, FLINT_TOKEN=token)

    def flint(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "flint.cli.main", "network", *args], env=env, cwd=REPO,
                              capture_output=True, text=True, timeout=60)
        assert (proc.returncode == 0) == ok, (args, proc.stdout, proc.stderr)
        return proc

    name = track(names, "e2e-cli")
    created = json.loads(flint("create", name, "--no-autostart", "--json").stdout)
    assert (created["mode"], created["active"]) == ("isolated", True)
    eventually(lambda: name in flint("list").stdout, what="the CLI list showing the network")
    edited = json.loads(flint("edit", name, "--mtu", "1450", "--json").stdout)
    assert edited["mtu"] == 1450 and edited["pending_restart"]
    assert "stop done, now inactive" in flint("stop", name).stdout
    assert "autostart" in flint("autostart", name).stdout
    shown = flint("show", name).stdout
    assert "mtu        1450" in shown and "no IPv4 address" in shown
    refused = flint("create", virt.unique_name("e2e-cli"), "--mode", "nat", "--address", "10.213.81.1/24",
                    "--dhcp-range", "10.213.82.2-10.213.82.9", "--no-start", ok=False)
    assert "outside the network's subnet 10.213.81.0/24" in refused.stderr
    assert "lo" in flint("interfaces").stdout
    assert f"network {name} deleted" in flint("delete", name).stdout
