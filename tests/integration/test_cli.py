"""The `flint` command against the real gateway (test-driver host), as a script would use it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import eventually, login
from tests.integration.conftest import PASSWORD

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def flint(stack):
    admin = login(stack, password=PASSWORD)
    token = admin.post("/api/v1/auth/tokens", json={"name": "cli", "role": "admin"}).json()["token"]

    def run(*args: str, stdin: str = "", token_: str | None = token) -> subprocess.CompletedProcess:
        env = {"FLINT_URL": stack, "PATH": "/usr/bin:/bin"}
        if token_:
            env["FLINT_TOKEN"] = token_
        return subprocess.run([sys.executable, "-m", "flint.cli.main", *args], input=stdin, capture_output=True,
                              text=True, env=env, timeout=60)

    return run


def test_vm_list_and_show(flint):
    result = eventually(lambda: (r := flint("vm", "list", "--json")) and json.loads(r.stdout)["total"] >= 3 and r,
                        timeout=15, what="test-driver VMs listed")
    names = {v["name"] for v in json.loads(result.stdout)["items"]}
    assert {"web", "db", "cache"} <= names
    table = flint("vm", "list")
    assert table.returncode == 0 and "web" in table.stdout and "NAME" in table.stdout
    shown = flint("vm", "show", "web")
    assert shown.returncode == 0 and "state     running" in shown.stdout and "vda" in shown.stdout
    missing = flint("vm", "show", "no-such-vm")
    assert missing.returncode == 1 and "no VM named" in missing.stderr


def test_host_list_storage_summary_and_health(flint):
    hosts = json.loads(flint("host", "list", "--json").stdout)
    assert any(h["name"] == "gwtest" for h in hosts)
    summary = flint("storage", "summary")
    assert summary.returncode == 0 and summary.stdout.startswith("overall:")
    health = eventually(lambda: (r := flint("health")) and r.returncode == 0 and r, timeout=20, what="healthy")
    assert "status: ok" in health.stdout


def test_users_and_tokens_from_the_terminal(flint):
    created = flint("user", "create", "ivan", "--role", "viewer", stdin="ivan-password\n")
    assert created.returncode == 0, created.stderr
    assert flint("user", "set", "ivan", "--role", "operator").returncode == 0
    users = json.loads(flint("user", "list", "--json").stdout)
    assert {"name": "ivan", "role": "operator", "disabled": False} in [
        {k: u[k] for k in ("name", "role", "disabled")} for u in users
    ]
    made = json.loads(flint("token", "create", "ci-job", "--role", "viewer", "--json").stdout)
    assert made["token"].startswith("flint_")
    assert flint("vm", "list", token_=made["token"]).returncode == 0
    assert flint("token", "revoke", made["id"]).returncode == 0
    refused = flint("vm", "list", token_=made["token"])
    assert refused.returncode == 1 and "revoked" in refused.stderr
    # audit records are written just after the response: give the stream a moment
    eventually(lambda: "POST /api/v1/users" in flint("audit", "--user", "admin").stdout, timeout=10, what="audited")
    assert flint("user", "delete", "ivan").returncode == 0


def test_without_a_token_the_cli_says_what_to_do(flint):
    result = flint("vm", "list", token_=None)
    assert result.returncode == 1
    assert "FLINT_TOKEN" in result.stderr
