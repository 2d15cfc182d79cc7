"""A second stack with short-lived tickets and every console relayed over NATS (FLINT_CONSOLE_RELAY=nats),
as it is for a host whose websockify the gateway cannot reach on its own loopback (an agent elsewhere)."""

from __future__ import annotations

import time

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.e2e import virt
from tests.e2e.conftest import ADMIN_PASSWORD, start_stack, stop_stack
from tests.e2e.console_support import Rfb, define_and_start, open_ws, ticket
from tests.e2e.screen import screenshot
from tests.helpers import eventually, token_client

pytestmark = pytest.mark.e2e
TTL = 3


@pytest.fixture(scope="module")
def relay_stack(tmp_path_factory):
    stack = start_stack(tmp_path_factory.mktemp("flint-relay"), FLINT_CONSOLE_TICKET_TTL=str(TTL),
                        FLINT_CONSOLE_RELAY="nats")
    yield stack
    stop_stack(stack)


@pytest.fixture(scope="module")
def api(relay_stack):
    return token_client(relay_stack.base, ADMIN_PASSWORD, "e2e-relay", "operator", timeout=30)


@pytest.fixture(scope="module")
def vm(api, tmp_path_factory):
    name = virt.unique_name("e2e-relay")
    uuid = define_and_start(name, tmp_path_factory.mktemp("relay"))
    try:
        eventually(lambda: api.get(f"/api/v1/vms/{uuid}").status_code == 200
                   and api.get(f"/api/v1/vms/{uuid}").json()["state"] == "running", timeout=20, what="running")
        yield name, uuid
    finally:
        virt.remove(name)


def _auth(api: httpx.Client) -> dict[str, str]:
    return {"Authorization": api.headers["Authorization"]}


def test_tickets_live_as_long_as_the_setting_says(api, vm):
    _, uuid = vm
    t = ticket(api, uuid)
    assert 0 < t["expires_at"] - time.time() <= TTL


def test_an_expired_ticket_is_refused(relay_stack, api, vm):
    _, uuid = vm
    t = ticket(api, uuid)
    time.sleep(TTL + 1)
    with open_ws(relay_stack.base, t["url"], _auth(api)) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd.code == 4408 and "expired" in closed.value.rcvd.reason


def test_vnc_over_nats_shows_the_screen(relay_stack, api, vm, tmp_path):
    name, uuid = vm
    shot = eventually(lambda: (s := screenshot(name, tmp_path / "s.png")).foreground_share() > 0.005 and s,
                      timeout=60, what="iPXE on screen")
    t = ticket(api, uuid)
    with open_ws(relay_stack.base, t["url"], _auth(api)) as ws:
        rfb = Rfb(ws)
        width, height, desktop = rfb.handshake()
        assert (width, height) == (shot.width, shot.height) and name in desktop
        frame = rfb.full_frame(width, height)
    assert len({frame[i:i + 3] for i in range(0, len(frame), 4)}) > 1, "blank framebuffer"
    log = relay_stack.proc.output()
    assert '"relay": "nats"' in log and '"relay": "direct"' not in log
    with open_ws(relay_stack.base, t["url"], _auth(api)) as again:  # and the ticket is spent
        with pytest.raises(ConnectionClosed) as closed:
            again.recv(timeout=10)
    assert closed.value.rcvd.code == 4403
