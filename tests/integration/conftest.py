"""The integration tier: a real nats-server, the four services on libvirt's test driver, the real gateway."""

from __future__ import annotations

import pytest

from flint import subjects
from tests.helpers import REPO, Proc, flint_env, free_port, python_module, wait_http

TESTNODE = REPO / "tests" / "integration" / "fixtures" / "testnode.xml"
PASSWORD = "correct-horse-battery"


class GatewayStack(str):
    """The base URL, with the environment the processes were started with."""

    env: dict[str, str]


@pytest.fixture(scope="session")
def stack(nats_server, tmp_path_factory):
    logs = tmp_path_factory.mktemp("gateway-stack")
    port = free_port()
    env = flint_env(
        FLINT_NATS_URL=nats_server.url,
        FLINT_HOST="gwtest",
        FLINT_LIBVIRT_URI=f"test://{TESTNODE}",
        FLINT_VIRT_TYPE="qemu",
        FLINT_BIND=f"127.0.0.1:{port}",
        FLINT_DATA_DIR=str(logs),
        FLINT_ADMIN_PASSWORD=PASSWORD,
    )
    procs = [Proc(python_module(f"services.{s}"), env, logs / f"{s}.log") for s in subjects.SERVICES]
    gateway = Proc(python_module("gateway"), env, logs / "gateway.log")
    procs.append(gateway)
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/api/v1/health", proc=gateway)
    stack = GatewayStack(base)
    stack.env = env
    yield stack
    for p in procs:
        p.stop()


