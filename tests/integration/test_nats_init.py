"""compose's NATS wiring, run without containers: `flint nats init` configures a nats-server that listens
beyond loopback (so it serves TLS and refuses anonymous clients), and a Flint service started with only
the environment compose.yaml gives it (FLINT_NATS_URL tls://…, FLINT_NATS_CREDS) joins and serves."""

from __future__ import annotations

import json
import subprocess
import sys

import msgspec
import nats
import pytest
from nats.errors import NoServersError

from flint import bus, subjects
from tests.helpers import NATS_SERVER, REPO, eventually, flint_env, free_port, run_async, wait_port

pytestmark = pytest.mark.integration


def _flint(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flint.cli.main", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def compose_like(tmp_path_factory):
    data = tmp_path_factory.mktemp("compose-data")
    port = free_port()
    env = flint_env(FLINT_DATA_DIR=str(data))
    # 0.0.0.0 as in the compose network; this test only ever connects through 127.0.0.1
    init = _flint("nats", "init", "--listen", f"0.0.0.0:{port}", "--url", f"tls://127.0.0.1:{port}",
                  "--store", str(data / "nats"), "--tls-name", "nats", env=env)
    assert init.returncode == 0, init.stderr
    auth = data / "nats-auth"
    server = subprocess.Popen([NATS_SERVER, "-c", str(auth / "nats-server.conf")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    service = subprocess.Popen(
        [sys.executable, "-m", "services.inventory"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=flint_env(FLINT_NATS_URL=f"tls://127.0.0.1:{port}", FLINT_NATS_CREDS=str(auth / "system.creds"),
                      FLINT_DATA_DIR=str(data), FLINT_HOST="composed", FLINT_LIBVIRT_URI="test:///default"),
    )
    try:
        yield data, port, init.stdout
    finally:
        service.terminate()
        service.wait(10)
        server.terminate()
        server.wait(10)


def test_init_writes_private_config_and_credentials(compose_like):
    data, port, out = compose_like
    auth = data / "nats-auth"
    assert str(auth / "nats-server.conf") in out and str(auth / "system.creds") in out
    assert (auth.stat().st_mode & 0o777) == 0o700
    for name in ("nats-server.conf", "system.creds", "users.json", "tls/nats.key"):
        assert (auth / name).stat().st_mode & 0o077 == 0, name
    conf = json.loads((auth / "nats-server.conf").read_text())
    assert conf["host"] == "0.0.0.0" and conf["port"] == port and "tls" in conf
    creds = json.loads((auth / "system.creds").read_text())
    assert creds["url"] == f"tls://127.0.0.1:{port}" and creds["ca"]


def test_init_twice_keeps_the_system_password(compose_like, tmp_path):
    data, port, _ = compose_like
    before = json.loads((data / "nats-auth" / "system.creds").read_text())["password"]
    again = _flint("nats", "init", "--listen", f"0.0.0.0:{port}", "--url", f"tls://127.0.0.1:{port}",
                   "--store", str(data / "nats"), env=flint_env(FLINT_DATA_DIR=str(data)))
    assert again.returncode == 0, again.stderr
    assert json.loads((data / "nats-auth" / "system.creds").read_text())["password"] == before


def test_init_rejects_a_bad_listen_address(tmp_path):
    bad = _flint("nats", "init", "--listen", "no-port-here", env=flint_env(FLINT_DATA_DIR=str(tmp_path)))
    assert bad.returncode == 2 and "--listen" in bad.stderr


def test_anonymous_and_plaintext_clients_are_refused(compose_like):
    data, port, _ = compose_like

    async def attempt(url: str, **opts):
        nc = await nats.connect(url, allow_reconnect=False, connect_timeout=2, max_reconnect_attempts=0, **opts)
        await nc.close()

    ca = {k: v for k, v in bus.credential_options(str(data / "nats-auth" / "system.creds")).items() if k == "tls"}
    with pytest.raises((NoServersError, nats.errors.Error, OSError)):
        run_async(attempt(f"tls://127.0.0.1:{port}", **ca))  # TLS, but no user
    with pytest.raises((NoServersError, nats.errors.Error, OSError)):
        run_async(attempt(f"nats://127.0.0.1:{port}"))  # no TLS at all


def test_a_service_with_composes_environment_serves(compose_like):
    data, port, _ = compose_like

    async def host_document() -> dict | None:
        nc = await bus.connect(f"tls://127.0.0.1:{port}", "test", creds=str(data / "nats-auth" / "system.creds"))
        try:
            kv = await nc.jetstream().key_value(subjects.KV_HOSTS)
            entry = await kv.get("composed")  # the heartbeat
            return msgspec.json.decode(entry.value)
        except Exception:  # noqa: BLE001 - not there yet
            return None
        finally:
            await nc.close()

    doc = eventually(lambda: run_async(host_document()), timeout=30, what="the composed host's document in KV")
    assert doc["name"] == "composed" and doc["uri"] == "test:///default" and doc["state"] == "up"
