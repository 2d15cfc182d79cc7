"""Rulesets through the real gateway and NATS KV (test-driver host, which has no nwfilter driver): CRUD,
revisions with If-Match, the in-use refusal from the usage index, the CLI; and a clear refusal where
libvirt cannot filter."""

from __future__ import annotations

import json
import subprocess
import sys

import nats
import pytest

from flint import bus, subjects
from flint.contracts.firewall import Usage
from tests.helpers import eventually, login, run_async
from tests.integration.conftest import PASSWORD

pytestmark = pytest.mark.integration
RS = "/api/v1/firewall/rulesets"


@pytest.fixture(scope="module")
def admin(stack):
    return login(stack, password=PASSWORD)


@pytest.fixture(scope="module")
def flint(stack, admin):
    token = admin.post("/api/v1/auth/tokens", json={"name": "fw-cli", "role": "admin"}).json()["token"]

    def run(*args: str) -> subprocess.CompletedProcess:
        env = {"FLINT_URL": stack, "FLINT_TOKEN": token, "PATH": "/usr/bin:/bin"}
        return subprocess.run([sys.executable, "-m", "flint.cli.main", "firewall", *args], capture_output=True,
                              text=True, env=env, timeout=60)

    return run


def _kv_put(stack, key: str, value: bytes | None) -> None:
    async def go():
        nc = await nats.connect(stack.env["FLINT_NATS_URL"])
        kv = await nc.jetstream().key_value(subjects.KV_FIREWALL)
        if value is None:
            await kv.delete(key)
        else:
            await kv.put(key, value)
        await nc.drain()

    run_async(go())


def test_ruleset_lifecycle_with_revisions(admin):
    created = admin.post(RS, json={"name": "it-web", "description": "web", "rules": [
        {"macro": "web"}, {"protocol": "tcp", "ports": [8000, "8443"], "source": "10.0.0.0/8"},
        {"action": "drop", "enabled": False}]})
    assert created.status_code == 201, created.text
    body = created.json()
    rev = body["revision"]
    assert created.headers["location"] == "/api/v1/firewall/rulesets/it-web"
    assert [r["macro"] for r in body["rules"]] == ["Web", None, None]
    assert body["rules"][1]["ports"] == "8000,8443" and body["rules"][2]["protocol"] == "all"
    assert body["updated_by"] == "admin" and body["used_by"] == []
    assert admin.post(RS, json={"name": "it-web"}).status_code == 409

    got = admin.get(f"{RS}/it-web")
    assert got.headers["etag"] == f'"{rev}"' and got.json()["rules"] == body["rules"]
    assert "it-web" in [r["name"] for r in admin.get(RS).json()]

    assert admin.put(f"{RS}/it-web", json={"rules": []}).status_code == 428
    assert admin.put(f"{RS}/it-web", json={"rules": []}, headers={"If-Match": "yesterday"}).status_code == 400
    updated = admin.put(f"{RS}/it-web", json={"description": "web v2", "rules": [{"macro": "HTTPS"}]},
                        headers={"If-Match": f'"{rev}"'})
    assert updated.status_code == 200, updated.text
    new_rev = updated.json()["revision"]
    assert new_rev > rev and updated.headers["etag"] == f'"{new_rev}"'
    stale = admin.put(f"{RS}/it-web", json={"rules": []}, headers={"If-Match": str(rev)})
    assert stale.status_code == 412
    assert f"current revision is {new_rev}" in stale.json()["detail"]
    assert admin.get(f"{RS}/it-web").json()["description"] == "web v2"  # the stale write changed nothing
    renamed = admin.put(f"{RS}/it-web", json={"name": "other"}, headers={"If-Match": str(new_rev)})
    assert renamed.status_code == 400 and renamed.json()["errors"][0]["field"] == "name"

    assert admin.delete(f"{RS}/it-web", headers={"If-Match": str(rev)}).status_code == 412
    assert admin.delete(f"{RS}/it-web").status_code == 204
    assert admin.get(f"{RS}/it-web").status_code == 404
    # a deleted name can be used again
    assert admin.post(RS, json={"name": "it-web"}).status_code == 201
    assert admin.delete(f"{RS}/it-web").status_code == 204


def test_a_ruleset_in_use_is_not_deleted(stack, admin):
    assert admin.post(RS, json={"name": "it-used", "rules": [{"macro": "SSH"}]}).status_code == 201
    usage = Usage(host="far-away", id="6f1d8c1e-0000-4000-8000-000000000001", name="db-7", rulesets=["it-used"])
    key = subjects.kv_fw_usage(usage.host, usage.id)
    _kv_put(stack, key, bus.encode(usage))
    try:
        refused = admin.delete(f"{RS}/it-used")
        assert refused.status_code == 409
        assert "far-away/db-7" in refused.json()["detail"]
        assert admin.get(f"{RS}/it-used").json()["used_by"] == [
            {"host": "far-away", "id": usage.id, "name": "db-7"}]
    finally:
        _kv_put(stack, key, None)
    assert admin.delete(f"{RS}/it-used").status_code == 204


def test_field_errors_in_problem_details(admin):
    resp = admin.post(RS, json={"name": "it-bad", "rules": [{"protocol": "tcp", "ports": "0"},
                                                            {"protocol": "icmp", "ports": 7}]})
    assert resp.status_code == 400
    assert resp.json()["errors"] == [
        {"field": "rules[0].ports", "message": "port 0 is out of range: ports are 1-65535"},
        {"field": "rules[1].ports", "message": "ports need protocol tcp or udp; this rule's protocol is icmp"}]
    resp = admin.post(RS, json={"name": "it-bad", "rules": [{"protocol": "gre"}]})
    assert resp.status_code == 400 and resp.json()["errors"][0]["field"] == "rules[0].protocol"


def test_without_nwfilter_the_host_says_so(admin):
    vm = eventually(lambda: next((v for v in admin.get("/api/v1/vms").json()["items"] if v["name"] == "web"), None),
                    timeout=15, what="test-driver VM listed")
    resp = admin.get(f"/api/v1/vms/{vm['id']}/firewall")
    assert resp.status_code == 501, resp.text
    assert "no nwfilter driver" in resp.json()["detail"]
    assert admin.get("/api/v1/hosts/gwtest/nwfilters").status_code == 501


def test_cli_rulesets(flint):
    made = flint("ruleset", "create", "it-cli", "-d", "from the CLI", "--rule", "in accept SSH from 10.0.0.0/8",
                 "--rule", "in accept tcp 80,443 # web", "--rule", "in drop all")
    assert made.returncode == 0, made.stderr
    assert "0  in accept SSH from 10.0.0.0/8" in made.stdout and "2  in drop all" in made.stdout
    added = flint("ruleset", "add-rule", "it-cli", "in accept udp 53", "--position", "2")
    assert added.returncode == 0, added.stderr
    assert flint("ruleset", "disable-rule", "it-cli", "0").returncode == 0
    assert flint("ruleset", "move-rule", "it-cli", "3", "0").returncode == 0
    shown = json.loads(flint("ruleset", "show", "it-cli", "--json").stdout)
    assert [(r.get("macro") or r["protocol"], r["ports"], r["enabled"]) for r in shown["rules"]] == [
        ("all", None, True), ("SSH", None, False), ("tcp", "80,443", True), ("udp", "53", True)]
    assert shown["rules"][2]["comment"] == "web"
    bad = flint("ruleset", "add-rule", "it-cli", "in accept icmp 22")
    assert bad.returncode == 1 and "rules[4].ports" not in bad.stdout and "ports need protocol tcp or udp" in bad.stderr
    listed = flint("ruleset", "list")
    assert "it-cli" in listed.stdout and "NAME" in listed.stdout
    assert "SSH" in flint("macros").stdout
    assert flint("ruleset", "delete", "it-cli").returncode == 0
    gone = flint("ruleset", "show", "it-cli")
    assert gone.returncode == 1 and "no ruleset named 'it-cli'" in gone.stderr
