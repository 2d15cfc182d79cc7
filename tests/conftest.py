from __future__ import annotations

import pytest

from tests.helpers import NatsServer


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory):
    """A real nats-server with JetStream on a random loopback port and a temporary store."""
    server = NatsServer(tmp_path_factory.mktemp("nats"))
    yield server
    server.stop()
