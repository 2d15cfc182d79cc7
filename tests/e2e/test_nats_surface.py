"""NATS as an integration surface on a running stack: subscriber credentials see a VM's lifecycle, every
captured message validates against the published schema, and an agent with agent credentials serves its host."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest

from tests.e2e import virt
from tests.e2e.conftest import ADMIN_PASSWORD
from tests.helpers import REPO, Proc, eventually, flint_env, login

pytestmark = pytest.mark.e2e
SCHEMAS = REPO / "docs" / "contracts" / "schemas"
TESTNODE = REPO / "tests" / "integration" / "fixtures" / "testnode.xml"


@pytest.fixture(scope="module")
def creds(stack):
    """Both kinds made up front: each creation reloads nats-server, which pauses JetStream for seconds."""
    return {
        "subscriber": _credentials(stack, "--role", "subscriber", wait=False),
        "agent": _credentials(stack, "--role", "agent", "--host", "edge1"),
    }


def _credentials(stack, *args: str, wait: bool = True) -> Path:
    out = subprocess.run(
        [sys.executable, "-m", "flint.cli.main", "nats", "credentials", "create", *args],
        env=flint_env(FLINT_DATA_DIR=str(stack.data_dir)), capture_output=True, text=True, check=True,
    ).stdout
    creds = json.loads(out)
    assert creds["password"] and creds["url"].endswith(stack.nats_url.rsplit(":", 1)[1])
    path = stack.data_dir / f"{creds['user']}.creds"
    path.write_text(out)
    # nats-server reloads its users; JetStream pauses for a few seconds meanwhile (503s, never 500s)
    if wait:
        eventually(lambda: login(stack.base, password=ADMIN_PASSWORD), timeout=30, what="gateway after the reload")
    return path


def test_a_subscriber_follows_lifecycle_events_that_match_the_schemas(stack, creds, tmp_path):
    creds = creds["subscriber"]
    tail = Proc(
        [sys.executable, "-m", "flint.cli.main", "events", "tail", "--json"],
        flint_env(FLINT_NATS_URL=json.loads(creds.read_text())["url"], FLINT_NATS_CREDS=str(creds)),
        tmp_path / "tail.log",
    )
    try:
        eventually(lambda: "listening" in tail.output(), timeout=15, what="tail connected")
        name = virt.unique_name("e2e-nats")
        uuid = virt.define(name, tmp_path)
        try:
            virt.virsh("start", name)
            time.sleep(0.5)
            virt.virsh("destroy", name)

            def states():
                events = [json.loads(line) for line in tail.output().splitlines() if line.startswith("{")]
                mine = [e for e in events if e["kind"] == "domain" and e["id"] == uuid and e["data"]]
                return events if {"shutoff", "running"} <= {e["data"]["state"] for e in mine} else None

            events = eventually(states, timeout=15, what="running and shutoff seen by the subscriber")
        finally:
            virt.remove(name)
    finally:
        tail.stop()
    kinds = set()
    for event in events:
        schema = json.loads((SCHEMAS / f"event-{event['kind']}.json").read_text())
        jsonschema.validate(event, schema)  # raises with the offending field
        kinds.add(event["kind"])
    assert "domain" in kinds


def test_a_subscriber_cannot_act(stack, creds):
    creds = creds["subscriber"]
    code = """
import asyncio, sys, nats
from flint import bus
async def main():
    nc = await nats.connect(sys.argv[1], allow_reconnect=False, **bus.credential_options(sys.argv[2]))
    try:
        await nc.request("flint.local.provisioner.health", b"{}", timeout=1)
        print("ANSWERED")
    except Exception as exc:
        print(type(exc).__name__)
    await nc.close()
asyncio.run(main())
"""
    url = json.loads(creds.read_text())["url"]
    out = subprocess.run([sys.executable, "-c", code, url, str(creds)], capture_output=True, text=True, cwd=REPO)
    assert "ANSWERED" not in out.stdout, out.stdout + out.stderr


def test_an_agent_with_agent_credentials_serves_its_host(stack, creds, tmp_path):
    creds = creds["agent"]
    agent = Proc(
        [sys.executable, "-m", "flint.cli.main", "agent", "--host", "edge1", "--uri", f"test://{TESTNODE}"],
        flint_env(FLINT_NATS_URL=json.loads(creds.read_text())["url"], FLINT_NATS_CREDS=str(creds),
                  FLINT_VIRT_TYPE="qemu"),
        tmp_path / "agent.log",
    )
    try:
        client = login(stack.base, password=ADMIN_PASSWORD)

        def edge_healthy():
            details = client.get("/api/v1/health/details").json()
            host = next((h for h in details["hosts"] if h["name"] == "edge1"), None)
            return host if host and host["ok"] else None

        host = eventually(edge_healthy, timeout=30, what=f"edge1 healthy:\n{agent.output()[-2000:]}")
        assert all(s["ok"] for s in host["services"].values())
        vms = eventually(lambda: client.get("/api/v1/vms", params={"host": "edge1"}).json()["items"], timeout=15)
        assert {"web", "db", "cache"} <= {v["name"] for v in vms}
        assert "Permissions Violation" not in agent.output()
    finally:
        agent.stop()
