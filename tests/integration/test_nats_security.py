"""NATS permissions from the generated configuration: agents keep to their host, subscribers only read,
anonymous connections are refused."""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
from pathlib import Path

import nats
import pytest
from nats.errors import NoServersError
from nats.errors import TimeoutError as NatsTimeout

from flint import bus
from flint.natsauth import NatsAuth
from tests.helpers import NATS_SERVER, free_port, wait_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def secured():
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        port = free_port()
        url = f"nats://127.0.0.1:{port}"
        auth = NatsAuth(data)
        creds = {
            "system": auth.add_user("system", None, url, name="flint-system"),
            "agent": auth.add_user("agent", "alpha", url),
            "subscriber": auth.add_user("subscriber", None, url),
        }
        for role, c in creds.items():
            auth.write_private(auth.dir / f"{role}.creds", c.dump())
        config = auth.write_server_config("127.0.0.1", port, data / "js", None)
        proc = subprocess.Popen([NATS_SERVER, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(port)
        yield url, {role: str(auth.dir / f"{role}.creds") for role in creds}
        proc.terminate()
        proc.wait(10)


async def _connect(url, creds_path, errors: list | None = None):
    async def on_error(err):
        if errors is not None:
            errors.append(str(err))

    opts = bus.credential_options(creds_path)
    return await nats.connect(url, allow_reconnect=False, connect_timeout=2, error_cb=on_error, **opts)


async def _delivered(url, system_creds, subject: str, publisher) -> bool:
    """Does a message `publisher` sends on `subject` reach a system subscriber?"""
    watcher = await _connect(url, system_creds)
    got = asyncio.Event()

    async def cb(_msg):
        got.set()

    await watcher.subscribe(subject, cb=cb)
    await watcher.flush()
    await publisher.publish(subject, b"{}")
    await publisher.flush()
    try:
        await asyncio.wait_for(got.wait(), 0.5)
        return True
    except TimeoutError:
        return False
    finally:
        await watcher.close()


async def test_anonymous_and_wrong_passwords_are_refused(secured):
    url, _ = secured
    with pytest.raises((NoServersError, nats.errors.Error, OSError)):
        await nats.connect(url, allow_reconnect=False, connect_timeout=2, max_reconnect_attempts=0)
    with pytest.raises((NoServersError, nats.errors.Error, OSError)):
        await nats.connect(url, user="flint-system", password="guess", allow_reconnect=False, connect_timeout=2)


async def test_an_agent_keeps_to_its_own_host(secured):
    url, creds = secured
    errors: list[str] = []
    agent = await _connect(url, creds["agent"], errors)
    try:
        assert await _delivered(url, creds["system"], "flint.evt.alpha.domain.x", agent)
        assert not await _delivered(url, creds["system"], "flint.evt.beta.domain.x", agent)
        assert not await _delivered(url, creds["system"], "flint.beta.provisioner.jobs-submit", agent)
        # requests to another host's service go nowhere
        responder = await _connect(url, creds["system"])
        async def respond(msg):
            await msg.respond(b"{}")

        await responder.subscribe("flint.beta.provisioner.vm.action", cb=respond)
        await responder.flush()
        with pytest.raises((NatsTimeout, nats.errors.NoRespondersError)):
            await agent.request("flint.beta.provisioner.vm.action", b"{}", timeout=0.5)
        await responder.close()
        assert any("permissions violation" in e.lower() for e in errors)
    finally:
        await agent.close()


async def test_an_agent_serves_requests_for_its_host(secured):
    url, creds = secured
    agent = await _connect(url, creds["agent"])
    system = await _connect(url, creds["system"])
    try:
        async def answer(msg):
            await msg.respond(b'{"ok":true}')

        await agent.subscribe("flint.alpha.inventory.health", cb=answer)
        await agent.flush()
        # Once in a clean-clone CI run the first request right after the flush met "no responders" (not
        # reproduced in 6 runs since): ask again for a short while; a refused subscription would never answer.
        for _ in range(20):
            try:
                reply = await system.request("flint.alpha.inventory.health", b"{}", timeout=2)
                break
            except nats.errors.NoRespondersError:
                await asyncio.sleep(0.1)
        else:
            pytest.fail("the agent's subscription to its own host's subject never answered")
        assert reply.data == b'{"ok":true}'
    finally:
        await agent.close()
        await system.close()


async def test_a_subscriber_reads_events_and_publishes_nothing(secured):
    url, creds = secured
    sub = await _connect(url, creds["subscriber"])
    system = await _connect(url, creds["system"])
    try:
        got = asyncio.Event()

        async def cb(_msg):
            got.set()

        await sub.subscribe("flint.evt.>", cb=cb)
        await sub.flush()
        await system.publish("flint.evt.alpha.domain.x", b"{}")
        await asyncio.wait_for(got.wait(), 10)
        for subject in ("flint.evt.alpha.domain.y", "flint.alpha.provisioner.vm.action", "anything.else"):
            assert not await _delivered(url, creds["system"], subject, sub)
        with pytest.raises((NatsTimeout, nats.errors.NoRespondersError)):
            await sub.request("flint.alpha.inventory.health", b"{}", timeout=0.5)
    finally:
        await sub.close()
        await system.close()
