"""compose.yaml is valid for docker-compose and defines NATS, the four services and the gateway.

No image registry is reachable here, so the file is validated, not run: `docker-compose config -q`
(Debian's docker-compose, installed by deploy/setup.sh) parses and checks it like `up` would.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
SERVICES = {"nats-init", "nats", "inventory", "provisioner", "console", "firewall", "gateway"}
FLINT_SERVICES = SERVICES - {"nats", "nats-init"}

needs_compose = pytest.mark.skipif(
    shutil.which("docker-compose") is None,
    reason="docker-compose is not installed (bash deploy/setup.sh installs it)",
)


def _bind(volume: object) -> str:
    """ "src:dst[:mode]" whether docker-compose prints the short (v1) or long (v2) form."""
    if isinstance(volume, dict):
        return f"{volume.get('source')}:{volume.get('target')}"
    return str(volume)


def _port(port: object) -> str:
    if isinstance(port, dict):
        return f"{port.get('host_ip')}:{port.get('published')}:{port.get('target')}"
    return str(port)


def _compose(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@needs_compose
def test_docker_compose_accepts_the_file():
    result = _compose("config", "-q")
    assert result.returncode == 0, result.stderr


@needs_compose
def test_docker_compose_sees_nats_its_init_and_the_five_flint_processes():
    result = _compose("config", "--services")
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == SERVICES


@needs_compose
def test_resolved_services_are_wired_to_nats_and_libvirt():
    result = _compose("config")
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert services["nats"]["image"].startswith("nats:2.10")
    # NATS secured as under `flint up`: configuration, TLS and users written by `flint nats init`
    assert services["nats"]["command"] == ["-c", "/var/lib/flint/nats-auth/nats-server.conf"]
    assert services["nats"]["depends_on"]["nats-init"]["condition"] == "service_completed_successfully"
    init = services["nats-init"]["command"]
    assert init[:3] == ["flint", "nats", "init"] and "0.0.0.0:4222" in init and "tls://nats:4222" in init
    for name in FLINT_SERVICES:
        svc = services[name]
        module = "gateway" if name == "gateway" else f"services.{name}"
        assert svc["command"] == ["python", "-m", module], name
        assert svc["build"]["dockerfile"] == "deploy/Dockerfile", name
        assert svc["restart"] == "unless-stopped", name
        env = svc["environment"]
        assert env["FLINT_HOST"] == "local" and env["FLINT_LIBVIRT_URI"] == "qemu:///system", name
        assert env["FLINT_NATS_URL"].startswith("tls://"), name
        assert env["FLINT_NATS_CREDS"] == "/var/lib/flint/nats-auth/system.creds", name
        assert any(_bind(v).startswith("flint-data:/var/lib/flint") for v in svc["volumes"]), name
        assert any(_bind(v).startswith("/var/run/libvirt:/var/run/libvirt") for v in svc["volumes"]), name
    assert services["inventory"]["environment"]["FLINT_NATS_URL"] == "tls://nats:4222"
    ports = services["gateway"]["ports"]
    assert any(_port(p).startswith("127.0.0.1:5550:5550") for p in ports), ports


def test_dockerfile_exists_and_builds_libvirt_python():
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    assert "python:3.11-slim-bookworm" in text
    for package in ("libvirt-dev", "pkg-config", "gcc"):
        assert package in text
