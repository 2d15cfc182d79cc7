"""Consoles on the real libvirtd: the browser shows a TCG guest's screen (noVNC) and its serial console
(xterm.js), the CLI attaches to the serial console, and the WebSocket API refuses what it must."""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections import Counter

import httpx
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.e2e import virt
from tests.e2e.conftest import ADMIN_PASSWORD
from tests.e2e.console_support import (
    DomainEvents,
    Rfb,
    define_and_start,
    open_ws,
    serial_domain_xml,
    ticket,
)
from tests.e2e.screen import decode_png, screenshot
from tests.helpers import REPO, eventually, flint_env, login

pytestmark = pytest.mark.e2e
OPERATOR_PASSWORD = "console-operator-pw"


def _token(client: httpx.Client, name: str, role: str) -> str:
    resp = client.post("/api/v1/auth/tokens", json={"name": name, "role": role})
    assert resp.status_code in (200, 201), resp.text
    return resp.json()["token"]


def _bearer(base: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)


@pytest.fixture(scope="module")
def admin(stack):
    return login(stack.base, password=ADMIN_PASSWORD)


@pytest.fixture(scope="module")
def api(stack, admin):
    return _bearer(stack.base, _token(admin, "e2e-console", "admin"))


@pytest.fixture(scope="module")
def users(stack, admin):
    """Two operators and a viewer, each with a token."""
    made = {}
    for name, role in (("cons-op1", "operator"), ("cons-op2", "operator"), ("cons-viewer", "viewer")):
        if admin.get("/api/v1/users").status_code == 200 and any(u["name"] == name for u in admin.get("/api/v1/users").json()):
            admin.delete(f"/api/v1/users/{name}")
        assert admin.post("/api/v1/users", json={"name": name, "password": OPERATOR_PASSWORD, "role": role}).status_code in (200, 201)
        session = login(stack.base, name, OPERATOR_PASSWORD)
        made[name] = (session, _token(session, f"{name}-token", role))
    yield made
    for name in made:
        admin.delete(f"/api/v1/users/{name}")


def _auth(client: httpx.Client) -> dict[str, str]:
    return {"Authorization": client.headers["Authorization"]}


def _running(api: httpx.Client, vm_id: str) -> bool:
    resp = api.get(f"/api/v1/vms/{vm_id}")
    return resp.status_code == 200 and resp.json()["state"] == "running"


@pytest.fixture(scope="module")
def vm(api, tmp_path_factory):
    """A running guest booted from ipxe.iso (iPXE on screen within seconds)."""
    name = virt.unique_name("e2e-cons")
    uuid = define_and_start(name, tmp_path_factory.mktemp("cons"))
    try:
        eventually(lambda: _running(api, uuid), timeout=20, what="VM running in the API")
        yield name, uuid
    finally:
        virt.remove(name)


@pytest.fixture(scope="module")
def serial_vm(api, tmp_path_factory):
    name = virt.unique_name("e2e-ser")
    uuid = define_and_start(name, tmp_path_factory.mktemp("ser"), serial_domain_xml(name))
    try:
        eventually(lambda: _running(api, uuid), timeout=20, what="VM running in the API")
        yield name, uuid
    finally:
        virt.remove(name)


def _close_of(ws, timeout: float = 10) -> tuple[int, str]:
    """Read until the server closes; the close code and reason."""
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ws.recv(timeout=deadline - time.monotonic())
    except ConnectionClosed as exc:
        return exc.rcvd.code, exc.rcvd.reason
    raise AssertionError("the console stayed open")


def ink_match(a: list[tuple], b: list[tuple]) -> float:
    """Of the pixels either screen has drawn on (not its background colour), the share that are equal:
    a mostly black text screen is not "90 % equal" to a black one."""
    bg_a, bg_b = Counter(a).most_common(1)[0][0], Counter(b).most_common(1)[0][0]
    drawn = [i for i in range(min(len(a), len(b))) if a[i] != bg_a or b[i] != bg_b]
    if not drawn:
        return 0.0
    return sum(1 for i in drawn if a[i] == b[i]) / len(drawn)


def _wait_screen(name: str, tmp_path):
    """The guest's screen once iPXE has drawn something (SeaBIOS starts on a blank screen)."""
    return eventually(lambda: (s := screenshot(name, tmp_path / "shot.png")).foreground_share() > 0.005 and s,
                      timeout=60, what="iPXE on the guest's screen")


# ---- the screen over the WebSocket API --------------------------------------------------------------

def test_vnc_console_over_the_api_shows_the_guests_framebuffer(stack, api, vm, tmp_path):
    name, uuid = vm
    shot = _wait_screen(name, tmp_path)
    t = ticket(api, uuid, "vnc")
    assert t["url"] == f"/api/v1/console?ticket={t['ticket']}" and t["type"] == "vnc"
    assert 0 < t["expires_at"] - time.time() <= 30
    with open_ws(stack.base, t["url"], _auth(api)) as ws:
        rfb = Rfb(ws)
        width, height, desktop = rfb.handshake()
        assert (width, height) == (shot.width, shot.height)
        assert name in desktop
        # iPXE may still be printing: compare a frame with a screenshot taken right after it, until the
        # screen holds still for the two.
        for _ in range(20):
            frame = rfb.full_frame(width, height)
            pixels = [(frame[i + 2], frame[i + 1], frame[i]) for i in range(0, len(frame), 4)]  # BGRX -> RGB
            shot = screenshot(name, tmp_path / "shot.png")
            same = ink_match(pixels, shot.pixels)
            if same > 0.9:
                break
            time.sleep(0.5)
    assert len(set(pixels)) > 1, "the framebuffer is blank"
    assert same > 0.9, f"only {same:.0%} of the drawn pixels match virsh screenshot"


def test_a_ticket_opens_one_session(stack, api, vm):
    _, uuid = vm
    t = ticket(api, uuid, "vnc")
    with open_ws(stack.base, t["url"], _auth(api)) as ws:
        assert ws.recv(timeout=10).startswith(b"RFB ")
        with open_ws(stack.base, t["url"], _auth(api)) as again:
            code, reason = _close_of(again)
        assert code == 4403 and "already used" in reason
    with open_ws(stack.base, t["url"], _auth(api)) as later:
        assert _close_of(later)[0] == 4403
    assert t["ticket"] not in stack.proc.output(), "a ticket was written to a log"


def test_console_refuses_a_foreign_origin(stack, api, users, vm):
    _, uuid = vm
    session, token = users["cons-op1"]
    t = ticket(session, uuid)
    cookie = f"flint_session={session.cookies['flint_session']}"
    with pytest.raises(InvalidStatus) as refused:
        open_ws(stack.base, t["url"], {"Cookie": cookie, "Origin": "https://evil.example"})
    assert refused.value.response.status_code == 403
    t = ticket(_bearer(stack.base, token), uuid)
    with pytest.raises(InvalidStatus) as refused:
        open_ws(stack.base, t["url"], {"Authorization": f"Bearer {token}", "Origin": "https://evil.example"})
    assert refused.value.response.status_code == 403
    # The same ticket from our own origin still works: a refused attempt does not burn it.
    with open_ws(stack.base, t["url"], {"Authorization": f"Bearer {token}", "Origin": stack.base}) as ws:
        assert ws.recv(timeout=10).startswith(b"RFB ")


def test_another_users_ticket_is_refused(stack, users, vm):
    _, uuid = vm
    _, token1 = users["cons-op1"]
    _, token2 = users["cons-op2"]
    t = ticket(_bearer(stack.base, token1), uuid)
    with open_ws(stack.base, t["url"], {"Authorization": f"Bearer {token2}"}) as ws:
        code, reason = _close_of(ws)
    assert code == 4403 and "another user" in reason
    with open_ws(stack.base, t["url"], {"Authorization": f"Bearer {token1}"}) as ws:
        assert ws.recv(timeout=10).startswith(b"RFB ")


def test_a_viewer_gets_no_console(stack, users, api, vm):
    _, uuid = vm
    _, viewer = users["cons-viewer"]
    resp = _bearer(stack.base, viewer).post(f"/api/v1/vms/{uuid}/console", json={"type": "vnc"})
    assert resp.status_code == 403 and "operator" in resp.json()["detail"]
    t = ticket(api, uuid)
    with pytest.raises(InvalidStatus) as refused:
        open_ws(stack.base, t["url"], {"Authorization": f"Bearer {viewer}"})
    assert refused.value.response.status_code == 403


def test_a_stopped_vm_has_no_console(stack, api, tmp_path):
    name = virt.unique_name("e2e-cons-off")
    uuid = virt.define(name, tmp_path)
    try:
        eventually(lambda: api.get(f"/api/v1/vms/{uuid}").status_code == 200, timeout=10, what="listed")
        for kind in ("vnc", "serial"):
            resp = api.post(f"/api/v1/vms/{uuid}/console", json={"type": kind})
            assert resp.status_code == 409, resp.text
            assert resp.json()["detail"] == f"VM {name!r} is not running (it is shutoff): start it to open its console"
        assert api.post(f"/api/v1/vms/{uuid}/console", json={"type": "spice"}).status_code == 422
        assert api.post("/api/v1/vms/00000000-0000-0000-0000-000000000000/console", json={"type": "vnc"}).status_code == 404
    finally:
        virt.remove(name)


def test_the_session_ends_when_the_vm_stops(stack, api, tmp_path):
    name = virt.unique_name("e2e-cons-stop")
    uuid = define_and_start(name, tmp_path)
    try:
        eventually(lambda: _running(api, uuid), timeout=20, what="running")
        vnc, serial = ticket(api, uuid, "vnc"), ticket(api, uuid, "serial")
        with open_ws(stack.base, vnc["url"], _auth(api)) as ws1, \
                open_ws(stack.base, serial["url"], _auth(api)) as ws2:
            assert ws1.recv(timeout=10).startswith(b"RFB ")
            virt.virsh("destroy", name)
            code1, _ = _close_of(ws1)
            code2, reason2 = _close_of(ws2)
        assert code1 in (1000, 4409)
        assert code2 == 4409 and "stopped" in reason2
    finally:
        virt.remove(name)


def test_the_session_ends_when_the_user_loses_access(stack, admin, users, vm):
    _, uuid = vm
    session, token = users["cons-op2"]
    t = ticket(session, uuid)
    with open_ws(stack.base, t["url"], {"Cookie": f"flint_session={session.cookies['flint_session']}"}) as ws:
        assert ws.recv(timeout=10).startswith(b"RFB ")
        assert admin.patch("/api/v1/users/cons-op2", json={"role": "viewer"}).status_code == 200
        code, reason = _close_of(ws)
    assert code == 4403 and "viewer" in reason
    assert admin.patch("/api/v1/users/cons-op2", json={"role": "operator"}).status_code == 200
    # Logging out ends a console opened with that session.
    t = ticket(session, uuid)
    with open_ws(stack.base, t["url"], {"Cookie": f"flint_session={session.cookies['flint_session']}"}) as ws:
        assert ws.recv(timeout=10).startswith(b"RFB ")
        assert session.post("/api/v1/auth/logout").status_code in (200, 204)
        code, reason = _close_of(ws)
    assert code == 4403 and "session ended" in reason


def test_console_openings_are_audited(api, vm):
    _, uuid = vm
    def opened():
        records = api.get("/api/v1/audit", params={"user": "admin"}).json()
        return [r for r in records if r["action"] == "CONSOLE open" and r["target"].get("vm_id") == uuid]
    assert eventually(opened, timeout=10, what="CONSOLE open in the audit log")
    posts = [r for r in api.get("/api/v1/audit").json() if r["action"] == "POST /api/v1/vms/{vm_id}/console"]
    assert posts and all("ticket" not in json.dumps(r) for r in posts)


# ---- serial ----------------------------------------------------------------------------------------

def test_serial_console_over_the_api_reads_and_types(stack, api, serial_vm):
    _, uuid = serial_vm
    t = ticket(api, uuid, "serial")
    marker = secrets.token_hex(3)
    with open_ws(stack.base, t["url"], _auth(api)) as ws:
        out = b""
        deadline = time.monotonic() + 90
        attempts, next_try = 0, 0.0
        while f"\r\n{marker}\r\n".encode() not in out:
            assert time.monotonic() < deadline, f"no echo of {marker} on the serial console: {out[-500:]!r}"
            try:
                out += ws.recv(timeout=0.3)
            except TimeoutError:
                pass
            if b"iPXE>" not in out:
                if b"Press Ctrl-B" in out:
                    ws.send(b"\x02")  # into iPXE's shell
            elif attempts < 5 and time.monotonic() >= next_try:
                # SeaBIOS's serial console drops a key now and then under TCG (through virsh console too):
                # type slowly, and again on a fresh line if one got lost.
                for ch in f"\recho {marker}\r".encode():
                    ws.send(bytes([ch]))
                    time.sleep(0.15)
                attempts, next_try = attempts + 1, time.monotonic() + 3
    assert b"iPXE" in out


def test_cli_serial_console(stack, api, serial_vm):
    name, _ = serial_vm
    env = flint_env(FLINT_URL=stack.base, FLINT_TOKEN=api.headers["Authorization"].split()[1])
    proc = subprocess.Popen([sys.executable, "-m", "flint.cli.main", "vm", "console", name], env=env, cwd=REPO,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out = b""
        os.set_blocking(proc.stdout.fileno(), False)
        deadline = time.monotonic() + 60
        while b"iPXE" not in out and time.monotonic() < deadline and proc.poll() is None:
            proc.stdin.write(b"\r")  # a guest sitting in iPXE's shell answers with a new prompt
            proc.stdin.flush()
            time.sleep(0.5)
            out += proc.stdout.read() or b""
        assert b"iPXE" in out, (out[-500:], proc.poll(), proc.stderr.read() if proc.poll() is not None else b"")
        proc.stdin.write(b"\x1d")  # Ctrl-]
        proc.stdin.flush()
        assert proc.wait(15) == 0
        assert b"Escape character is ^]" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()


# ---- the browser ------------------------------------------------------------------------------------

def _browser_login(browser, stack, user="admin", password=ADMIN_PASSWORD):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.goto(stack.base + "/login")
    page.get_by_test_id("login-username").fill(user)
    page.get_by_test_id("login-password").fill(password)
    page.get_by_test_id("login-submit").click()
    page.wait_for_url(lambda url: "/login" not in url, timeout=15000)
    return page, sockets


_CANVAS_PNG = """() => {
  const c = document.querySelector('[data-testid=console-canvas-container] canvas');
  return c ? {w: c.width, h: c.height, png: c.toDataURL('image/png')} : null;
}"""


def test_browser_console_shows_the_guest_screen(stack, browser, vm, tmp_path):
    name, uuid = vm
    shot = _wait_screen(name, tmp_path)
    page, sockets = _browser_login(browser, stack)
    try:
        page.goto(f"{stack.base}/vms/{uuid}?tab=console")
        status = page.get_by_test_id("console-status")
        status.wait_for()
        page.wait_for_function("() => document.querySelector('[data-testid=console-status]')?.dataset.state === 'connected'",
                               timeout=30000)

        def canvas_matches():
            got = page.evaluate(_CANVAS_PNG)
            screen = decode_png(base64.b64decode(got["png"].split(",", 1)[1]))
            now = screenshot(name, tmp_path / "now.png")
            same = ink_match(screen.pixels, now.pixels)
            return (got["w"], got["h"], screen, same) if same > 0.9 else None

        w, h, screen, same = eventually(canvas_matches, timeout=30, what="the noVNC canvas showing the guest's screen")
        assert (w, h) == (shot.width, shot.height) == (screen.width, screen.height)
        assert screen.colours() > 1 and screen.foreground_share() > 0.005, "the canvas is blank"
        page.screenshot(path=str(tmp_path / "console-page.png"))
        assert page.get_by_test_id("console-fullscreen").is_visible()
        # Ctrl+Alt+Del reaches the guest: SeaBIOS resets the machine (libvirt reports a reboot).
        with DomainEvents(name) as events:
            page.get_by_test_id("console-ctrl-alt-del").click()
            eventually(lambda: events.seen("reboot"), timeout=45, what="the guest rebooting after Ctrl+Alt+Del")
        assert "ticket" not in page.url
        console_sockets = [u for u in sockets if "/api/v1/console" in u]
        assert len(console_sockets) == 1 and "ticket=" in console_sockets[0]
        assert not any("token" in u.lower() for u in sockets)
    finally:
        page.close()


def test_full_window_console_reconnects_with_a_new_ticket(stack, browser, api, tmp_path):
    name = virt.unique_name("e2e-cons-win")
    uuid = define_and_start(name, tmp_path)
    page, sockets = _browser_login(browser, stack)
    connected = "() => document.querySelector('[data-testid=console-status]')?.dataset.state === 'connected'"
    try:
        eventually(lambda: _running(api, uuid), timeout=20, what="running")
        page.goto(f"{stack.base}/vms/{uuid}/console")
        page.wait_for_function(connected, timeout=30000)
        assert page.locator("[data-testid=console-canvas-container] canvas").count() == 1
        page.screenshot(path=str(tmp_path / "full-window.png"))
        # The VM stops: the console says so; it starts again: the console comes back by itself.
        virt.virsh("destroy", name)
        page.wait_for_function(
            "() => document.querySelector('[data-testid=console-status]')?.dataset.state === 'disconnected'",
            timeout=20000)
        assert "not running" in page.get_by_test_id("console-message").inner_text()
        page.screenshot(path=str(tmp_path / "full-window-stopped.png"))
        virt.virsh("start", name)
        page.wait_for_function(connected, timeout=40000)
        tickets = [u.split("ticket=", 1)[1] for u in sockets if "/api/v1/console" in u]
        assert len(tickets) >= 2 and len(set(tickets)) == len(tickets), "each connection needs its own ticket"
        assert "ticket" not in page.url
    finally:
        page.close()
        virt.remove(name)


def test_browser_serial_console_shows_output_and_takes_keys(stack, browser, serial_vm, tmp_path):
    _, uuid = serial_vm
    page, _ = _browser_login(browser, stack)
    marker = secrets.token_hex(3)
    rows = "[data-testid=serial-terminal] .xterm-rows"
    try:
        page.goto(f"{stack.base}/vms/{uuid}?tab=serial")
        page.wait_for_function(
            "() => document.querySelector('[data-testid=serial-status]')?.dataset.state === 'connected'",
            timeout=30000)
        page.locator("[data-testid=serial-terminal]").click()
        deadline = time.monotonic() + 60
        while "iPXE>" not in page.inner_text(rows):
            assert time.monotonic() < deadline, page.inner_text(rows)[-500:]
            text = page.inner_text(rows)
            if "Ctrl-B" in text:
                page.keyboard.press("Control+b")  # into iPXE's shell
            elif "iPXE" not in text:
                page.keyboard.press("Enter")  # a guest already in the shell prints a new prompt
            time.sleep(0.3)
        has_marker = f"() => document.querySelector('{rows}').innerText.split('\\n').some(l => l.trim() === '{marker}')"
        for _ in range(5):  # SeaBIOS's serial console drops a key now and then: type slowly, retry
            page.keyboard.press("Enter")
            page.keyboard.type(f"echo {marker}", delay=150)
            page.keyboard.press("Enter")
            try:
                page.wait_for_function(has_marker, timeout=5000)
                break
            except PlaywrightTimeout:
                continue
        else:
            raise AssertionError(f"{marker} never echoed: {page.inner_text(rows)[-500:]}")
        page.screenshot(path=str(tmp_path / "serial.png"))
    finally:
        page.close()


def test_keys_and_pasted_text_reach_the_guest_through_novnc(stack, browser, api, serial_vm):
    """Keyboard through the VNC console; the guest's own serial port (SeaBIOS mirrors the screen to it)
    shows what the keys did."""
    _, uuid = serial_vm
    marker = secrets.token_hex(3)
    t = ticket(api, uuid, "serial")
    out = bytearray()
    stop = threading.Event()

    def read_serial(ws) -> None:
        while not stop.is_set():
            try:
                out.extend(ws.recv(timeout=0.2))
            except TimeoutError:
                continue
            except ConnectionClosed:
                return

    page, _ = _browser_login(browser, stack)
    with open_ws(stack.base, t["url"], _auth(api)) as serial:
        reader = threading.Thread(target=read_serial, args=(serial,), daemon=True)
        reader.start()
        try:
            page.goto(f"{stack.base}/vms/{uuid}?tab=console")
            page.wait_for_function(
                "() => document.querySelector('[data-testid=console-status]')?.dataset.state === 'connected'",
                timeout=30000)
            # Wherever the guest is (the serial tests may have left it in iPXE's shell): reset it.
            out.clear()
            page.get_by_test_id("console-ctrl-alt-del").click()
            canvas = page.locator("[data-testid=console-canvas-container] canvas")
            deadline = time.monotonic() + 60
            while b"iPXE>" not in out:
                assert time.monotonic() < deadline, bytes(out[-400:])
                if b"Press Ctrl-B" in out:
                    canvas.click()
                    page.keyboard.press("Control+b")
                time.sleep(0.3)
            page.get_by_test_id("console-paste").click()
            page.get_by_test_id("console-paste-text").fill(f"echo {marker}\n")
            page.get_by_test_id("console-paste-send").click()
            eventually(lambda: f"\r\n{marker}\r\n".encode() in out, timeout=20,
                       what=f"the pasted command's output {marker} on the guest")
        finally:
            stop.set()
            reader.join(5)
            page.close()
