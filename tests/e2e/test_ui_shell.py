"""Browser tests of the UI shell against a stand-in gateway (no NATS, no libvirt).

The stand-in serves frontend/dist with SPA fallback and answers the few REST routes and the
events WebSocket the shell uses, with the shapes of shared/API.md. It checks the CSRF header
on every non-GET call except login, like the real gateway. The real-stack browser tests live
beside this file; these cover the shell alone: login, navigation, live indicator, live updates,
error display, 401 handling, reconnect with ?since=.

Run the stand-in by hand for a look: python tests/e2e/test_ui_shell.py --serve 5551
"""

from __future__ import annotations

import asyncio
import copy
import json
import mimetypes
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
FRONTEND = ROOT / "frontend"
DIST = FRONTEND / "dist"
CHROMIUM = "/usr/bin/chromium"

GiB = 1024**3
MiB = 1024**2


# ---- stand-in gateway ---------------------------------------------------------------------------


def _vm(uuid: str, name: str, state: str, ip: str | None, vcpus: int = 1, mem: int = 512) -> dict[str, Any]:
    return {
        "id": uuid,
        "name": name,
        "host": "local",
        "state": state,
        "state_reason": None,
        "vcpus": vcpus,
        "memory_mib": mem,
        "autostart": False,
        "persistent": True,
        "firmware": "bios",
        "description": "",
        "disks": [
            {
                "target": "vda",
                "bus": "virtio",
                "device": "disk",
                "pool": "default",
                "volume": f"{name}.qcow2",
                "path": f"/var/lib/libvirt/images/{name}.qcow2",
                "capacity": 10 * GiB,
                "allocation": 2 * GiB,
            }
        ],
        "nics": [
            {
                "mac": "52:54:00:00:00:" + uuid[-2:],
                "model": "virtio",
                "network": "default",
                "bridge": None,
                "addresses": [ip] if ip else [],
            }
        ],
        "graphics": [{"type": "vnc", "port": 5900, "listen": "127.0.0.1"}],
    }


def initial_state() -> dict[str, Any]:
    vms = [
        _vm("11111111-1111-1111-1111-111111111101", "web1", "running", "192.168.122.10", 2, 2048),
        _vm("11111111-1111-1111-1111-111111111102", "db1", "shutoff", None, 4, 4096),
        _vm("11111111-1111-1111-1111-111111111103", "cache1", "paused", "192.168.122.12"),
    ]
    host = {
        "name": "local",
        "uri": "qemu:///system",
        "state": "up",
        "hostname": "box",
        "cpu_model": "x86_64",
        "cpus": 2,
        "memory_total_bytes": 24 * GiB,
        "memory_free_bytes": 16 * GiB,
        "libvirt_version": "11.3.0",
        "qemu_version": "10.0.0",
        "virt_type": "qemu",
        "uptime_s": 7200,
        "vms_by_state": {"running": 1, "shutoff": 1, "paused": 1},
        "cpu_percent": 12.5,
    }
    storage = {
        "overall": {"capacity": 100 * GiB, "used": 37 * GiB + 300 * MiB, "free": 62 * GiB + 724 * MiB},
        "hosts": [
            {
                "host": "local",
                "capacity": 100 * GiB,
                "used": 37 * GiB + 300 * MiB,
                "free": 62 * GiB + 724 * MiB,
                "groups": [
                    {
                        "id": "fs-root",
                        "label": "/ (ext4)",
                        "capacity": 100 * GiB,
                        "used": 37 * GiB + 300 * MiB,
                        "free": 62 * GiB + 724 * MiB,
                        "pools": [
                            {
                                "name": "default",
                                "type": "dir",
                                "target": "/var/lib/libvirt/images",
                                "allocation": 6 * GiB,
                                "capacity": 100 * GiB,
                                "available": 62 * GiB,
                                "active": True,
                            },
                            {
                                "name": "isos",
                                "type": "dir",
                                "target": "/srv/isos",
                                "allocation": 3 * GiB,
                                "capacity": 100 * GiB,
                                "available": 62 * GiB,
                                "active": True,
                            },
                        ],
                    }
                ],
            }
        ],
    }
    ok = {"ok": True, "detail": None}
    health = {
        "status": "degraded",
        "nats": {"ok": True, "url": "nats://127.0.0.1:4222", "detail": None},
        "hosts": [
            {
                "name": "local",
                "uri": "qemu:///system",
                "libvirt": {"ok": True, "version": "11.3.0", "detail": None},
                "virt_type": "qemu",
                "services": {
                    "inventory": ok,
                    "provisioner": ok,
                    "console": ok,
                    "firewall": {"ok": False, "detail": "no heartbeat for 30 s"},
                },
            }
        ],
    }
    return {"vms": {v["id"]: v for v in vms}, "hosts": [host], "storage": storage, "health": health}


class StandIn:
    """State and controls shared by the Litestar app (its own thread) and the tests."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.port = 0
        self.reset()

    def reset(self) -> None:
        self.state = initial_state()
        self.sessions: dict[str, dict[str, str]] = {}
        self.seq = 100
        self.queues: list[asyncio.Queue] = []
        self.requests: list[dict[str, Any]] = []
        self.ws_queries: list[str] = []
        self.fail_action: tuple[int, str] | None = None

    # called from tests (other thread)
    def push(self, kind: str, type_: str, id_: str, data: Any) -> None:
        def _put() -> None:
            self.seq += 1
            msg = {"seq": self.seq, "host": "local", "kind": kind, "id": id_, "type": type_, "data": data}
            for q in self.queues:
                q.put_nowait(msg)

        assert self.loop is not None
        self.loop.call_soon_threadsafe(_put)

    def drop_sockets(self) -> None:
        assert self.loop is not None
        self.loop.call_soon_threadsafe(lambda: [q.put_nowait(None) for q in self.queues])

    def expire_sessions(self) -> None:
        self.sessions.clear()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def build_app(si: StandIn):
    from litestar import Litestar, Request, Response, WebSocket, get, post, websocket
    from litestar.exceptions import WebSocketDisconnect
    from litestar.params import FromPath

    def problem(status: int, title: str, detail: str, errors: list | None = None) -> Response:
        body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": detail}
        if errors:
            body["errors"] = errors
        return Response(body, status_code=status, media_type="application/problem+json")

    def user_of(request: Request | WebSocket) -> dict[str, str] | None:
        return si.sessions.get(request.cookies.get("flint_session", ""))

    def guard(request: Request) -> Response | None:
        si.requests.append(
            {"method": request.method, "path": request.url.path, "csrf": request.headers.get("x-csrf-token")}
        )
        if user_of(request) is None:
            return problem(401, "Unauthorized", "Sign in first.")
        if request.method != "GET" and request.headers.get("x-csrf-token") != request.cookies.get(
            "flint_csrf"
        ):
            return problem(403, "Forbidden", "Missing or wrong X-CSRF-Token header.")
        return None

    @post("/api/v1/auth/login", status_code=200)
    async def login(request: Request) -> Response:
        body = await request.json()
        if body.get("username") != "admin" or body.get("password") != "secret":
            return problem(401, "Unauthorized", "Wrong user name or password.")
        sid, csrf = secrets.token_hex(8), secrets.token_hex(8)
        si.sessions[sid] = {"username": "admin", "role": "admin"}
        resp = Response({"username": "admin", "role": "admin"})
        resp.set_cookie("flint_session", sid, httponly=True, samesite="strict")
        resp.set_cookie("flint_csrf", csrf, httponly=False, samesite="strict")
        return resp

    @post("/api/v1/auth/logout", status_code=200)
    async def logout(request: Request) -> Response:
        if (r := guard(request)) is not None:
            return r
        si.sessions.pop(request.cookies.get("flint_session", ""), None)
        return Response(None, status_code=204)

    @get("/api/v1/auth/me")
    async def me(request: Request) -> Response:
        return guard(request) or Response(user_of(request))

    @get("/api/v1/vms")
    async def vms(request: Request) -> Response:
        items = sorted(si.state["vms"].values(), key=lambda v: v["name"])
        return guard(request) or Response({"items": items, "total": len(items)})

    @get("/api/v1/vms/{vm_id:str}")
    async def vm(request: Request, vm_id: FromPath[str]) -> Response:
        if (r := guard(request)) is not None:
            return r
        if vm_id not in si.state["vms"]:
            return problem(404, "Not Found", f"No VM with id {vm_id}.")
        return Response(si.state["vms"][vm_id])

    @get("/api/v1/vms/{vm_id:str}/metrics")
    async def metrics(request: Request, vm_id: FromPath[str]) -> Response:
        if (r := guard(request)) is not None:
            return r
        now = int(time.time())
        samples = [
            {
                "t": now - 5 * (30 - i),
                "cpu_percent": 10 + (i % 7) * 5,
                "memory_used_bytes": (600 + i * 10) * MiB,
                "memory_total_bytes": 2048 * MiB,
                "disk_read_bps": 1000 * i,
                "disk_write_bps": 500 * (30 - i),
                "net_rx_bps": 2000 + 100 * i,
                "net_tx_bps": 800,
            }
            for i in range(30)
        ]
        return Response({"interval_s": 5, "samples": samples})

    @post("/api/v1/vms/{vm_id:str}/actions", status_code=202)
    async def action(request: Request, vm_id: FromPath[str]) -> Response:
        if (r := guard(request)) is not None:
            return r
        body = await request.json()
        if si.fail_action:
            status, detail = si.fail_action
            return problem(status, "Conflict", detail, [{"field": "action", "message": "not allowed now"}])
        vm = si.state["vms"][vm_id]
        new = {
            "start": "running",
            "shutdown": "shutoff",
            "poweroff": "shutoff",
            "pause": "paused",
            "resume": "running",
        }.get(body["action"], vm["state"])
        vm = {**vm, "state": new}
        si.state["vms"][vm_id] = vm
        si.push("domain", "updated", vm_id, vm)
        return Response({"id": "job-1", "kind": "vm.action", "state": "succeeded"}, status_code=202)

    @get("/api/v1/hosts")
    async def hosts(request: Request) -> Response:
        return guard(request) or Response(si.state["hosts"])

    @get("/api/v1/storage/summary")
    async def storage(request: Request) -> Response:
        return guard(request) or Response(si.state["storage"])

    @get("/api/v1/health/details")
    async def health(request: Request) -> Response:
        return guard(request) or Response(si.state["health"])

    @websocket("/api/v1/events")
    async def events(socket: WebSocket) -> None:
        if user_of(socket) is None:
            await socket.close(code=4401)
            return
        await socket.accept()
        si.ws_queries.append(socket.url.query or "")
        q: asyncio.Queue = asyncio.Queue()
        si.queues.append(q)
        try:
            snap = {
                "vms": list(si.state["vms"].values()),
                "hosts": si.state["hosts"],
                "pools": [],
                "networks": [],
            }
            await socket.send_json(
                {"seq": si.seq, "host": "", "kind": "snapshot", "id": "", "type": "snapshot", "data": snap}
            )
            while True:
                msg = await q.get()
                if msg is None:
                    await socket.close(code=1012)
                    return
                await socket.send_json(msg)
        except WebSocketDisconnect:
            pass
        finally:
            si.queues.remove(q)

    @get(["/", "/{path:path}"], include_in_schema=False)
    async def spa(request: Request) -> Response:
        rel = request.url.path.lstrip("/")
        if rel.startswith("api/"):
            return problem(404, "Not Found", "No such API route in the stand-in.")
        f = (DIST / rel).resolve()
        if rel and f.is_file() and DIST.resolve() in f.parents:
            ctype = mimetypes.guess_type(f.name)[0] or "application/octet-stream"
            return Response(f.read_bytes(), media_type=ctype)
        return Response((DIST / "index.html").read_bytes(), media_type="text/html")

    return Litestar(
        route_handlers=[login, logout, me, vms, vm, metrics, action, hosts, storage, health, events, spa],
        openapi_config=None,
        signature_namespace={
            "Request": Request,
            "Response": Response,
            "WebSocket": WebSocket,
            "FromPath": FromPath,
        },
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_stand_in(port: int | None = None) -> tuple[StandIn, Any, threading.Thread]:
    import uvicorn

    si = StandIn()
    si.port = port or _free_port()
    config = uvicorn.Config(
        build_app(si), host="127.0.0.1", port=si.port, log_level="warning", ws="websockets-sansio"
    )
    server = uvicorn.Server(config)

    def run() -> None:
        loop = asyncio.new_event_loop()
        si.loop = loop
        loop.run_until_complete(server.serve())

    t = threading.Thread(target=run, daemon=True)
    t.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not t.is_alive():
            raise RuntimeError("stand-in gateway did not start")
        time.sleep(0.05)
    return si, server, t


# ---- fixtures -------------------------------------------------------------------------------------


def _ensure_dist() -> None:
    if (DIST / "index.html").exists():
        return
    npm = shutil.which("npm")
    if not npm:
        pytest.skip("frontend/dist is not built and npm is not installed")
    if not (FRONTEND / "node_modules").exists():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=FRONTEND, check=True)
    subprocess.run([npm, "run", "build"], cwd=FRONTEND, check=True)


@pytest.fixture(scope="module")
def stand_in():
    _ensure_dist()
    si, server, t = start_stand_in()
    yield si
    server.should_exit = True
    t.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture
def page(browser, stand_in):
    stand_in.reset()
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    pg = ctx.new_page()
    pg.set_default_timeout(8000)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    ctx.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def login(page, si: StandIn, path: str = "/") -> None:
    from playwright.sync_api import expect

    page.goto(si.url + path)
    page.get_by_test_id("login-username").fill("admin")
    page.get_by_test_id("login-password").fill("secret")
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("current-user")).to_contain_text("admin")


# ---- tests ----------------------------------------------------------------------------------------


def test_unauthenticated_goes_to_login(page, stand_in):
    from playwright.sync_api import expect

    page.goto(stand_in.url + "/vms")
    expect(page).to_have_url(stand_in.url + "/login?next=%2Fvms")
    expect(page.get_by_test_id("login-username")).to_be_visible()
    expect(page.get_by_test_id("login-password")).to_be_visible()
    expect(page.get_by_test_id("login-submit")).to_be_enabled()
    expect(page.get_by_test_id("error-banner")).to_have_count(0)


def test_wrong_password_shows_the_problem_detail(page, stand_in):
    from playwright.sync_api import expect

    page.goto(stand_in.url + "/login")
    page.get_by_test_id("login-username").fill("admin")
    page.get_by_test_id("login-password").fill("nope")
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("login-error")).to_have_text("Wrong user name or password.")
    expect(page).to_have_url(stand_in.url + "/login")


def test_login_returns_to_next_and_shows_shell(page, stand_in):
    from playwright.sync_api import expect

    login(page, stand_in, "/vms")
    expect(page).to_have_url(stand_in.url + "/vms")
    expect(page.get_by_test_id("current-user")).to_have_attribute("data-role", "admin")
    expect(page.get_by_test_id("live-indicator")).to_have_attribute("data-state", "live")
    for key in ("dashboard", "vms", "storage", "networks", "firewall", "hosts", "settings"):
        expect(page.get_by_test_id(f"nav-{key}")).to_be_visible()


def test_vm_list_rows_update_live(page, stand_in):
    from playwright.sync_api import expect

    login(page, stand_in, "/vms")
    row = page.get_by_test_id("vm-row-web1")
    expect(row).to_have_attribute("data-state", "running")
    expect(row.get_by_test_id("vm-state")).to_have_text("running")
    expect(row).to_contain_text("192.168.122.10")
    page.evaluate("window.__noReload = true")

    vm = copy.deepcopy(stand_in.state["vms"]["11111111-1111-1111-1111-111111111101"])
    vm["state"] = "paused"
    stand_in.push("domain", "updated", vm["id"], vm)
    expect(row).to_have_attribute("data-state", "paused")

    stand_in.push("domain", "deleted", "11111111-1111-1111-1111-111111111102", None)
    expect(page.get_by_test_id("vm-row-db1")).to_have_count(0)
    assert page.evaluate("window.__noReload") is True


def test_vm_filters(page, stand_in):
    from playwright.sync_api import expect

    login(page, stand_in, "/vms")
    expect(page.locator("[data-testid^=vm-row-]")).to_have_count(3)
    page.get_by_test_id("vm-filter-state").select_option("shutoff")
    expect(page.locator("[data-testid^=vm-row-]")).to_have_count(1)
    expect(page.get_by_test_id("vm-row-db1")).to_be_visible()
    page.get_by_test_id("vm-filter-state").select_option("")
    page.get_by_test_id("vm-search").fill("cache")
    expect(page.locator("[data-testid^=vm-row-]")).to_have_count(1)
    expect(page.get_by_test_id("vm-row-cache1")).to_be_visible()


def test_vm_action_sends_csrf_and_state_follows(page, stand_in):
    from playwright.sync_api import expect

    login(page, stand_in, "/vms")
    page.get_by_test_id("vm-row-web1").click()
    expect(page.get_by_test_id("vm-name")).to_have_text("web1")
    expect(page.get_by_test_id("vm-action-start")).to_be_disabled()
    expect(page.get_by_test_id("chart-cpu").locator("path")).to_have_count(1)

    page.get_by_test_id("vm-action-shutdown").click()
    expect(page.get_by_test_id("vm-state")).to_have_text("shutoff")
    expect(page.get_by_test_id("vm-action-start")).to_be_enabled()
    expect(page.get_by_test_id("vm-action-shutdown")).to_be_disabled()
    posts = [r for r in stand_in.requests if r["method"] == "POST" and r["path"].endswith("/actions")]
    assert posts and posts[-1]["csrf"], "the action carried no X-CSRF-Token header"


def test_metrics_events_extend_the_graphs(page, stand_in):
    from playwright.sync_api import expect

    login(page, stand_in, "/vms/11111111-1111-1111-1111-111111111101")
    legend = page.get_by_test_id("chart-cpu").locator(".legend-item b")
    expect(legend).not_to_have_text("—")
    sample = {
        "t": int(time.time()) + 5,
        "cpu_percent": 77.0,
        "memory_used_bytes": 900 * MiB,
        "disk_read_bps": 0,
        "disk_write_bps": 0,
        "net_rx_bps": 0,
        "net_tx_bps": 0,
    }
    stand_in.push("metrics", "sample", "11111111-1111-1111-1111-111111111101", sample)
    expect(legend).to_have_text("77%")


def test_api_error_detail_is_shown(page, stand_in):
    from playwright.sync_api import expect

    login(page, stand_in, "/vms/11111111-1111-1111-1111-111111111101")
    stand_in.fail_action = (409, "web1 is busy with another operation.")
    page.get_by_test_id("vm-action-reboot").click()
    banner = page.get_by_test_id("error-banner")
    expect(banner).to_contain_text("web1 is busy with another operation.")
    expect(banner).to_contain_text("not allowed now")


def test_dashboard_and_storage_agree(page, stand_in):
    from playwright.sync_api import expect

    login(page, stand_in, "/")
    dash = page.get_by_test_id("dashboard-storage-used")
    expect(dash).to_have_text("37.3 GiB / 100 GiB")
    text = dash.inner_text()
    expect(page.get_by_test_id("dashboard-host-local")).to_contain_text("running")
    page.get_by_test_id("nav-storage").click()
    expect(page.get_by_test_id("storage-overall-used")).to_have_text(text)
    expect(page.get_by_test_id("storage-pool-local-default")).to_contain_text("6.0 GiB")


def test_settings_health_and_coming_soon_pages(page, stand_in):
    from playwright.sync_api import expect

    login(page, stand_in, "/settings")
    expect(page.get_by_test_id("health-service-local-inventory")).to_have_attribute("data-ok", "true")
    expect(page.get_by_test_id("health-service-local-firewall")).to_have_attribute("data-ok", "false")
    page.get_by_test_id("nav-networks").click()
    expect(page.get_by_test_id("coming-soon")).to_contain_text("later release")
    page.get_by_test_id("nav-firewall").click()
    expect(page.get_by_test_id("coming-soon")).to_contain_text("later release")


def test_reconnect_resumes_with_since(page, stand_in):
    from playwright.sync_api import expect

    login(page, stand_in, "/vms")
    indicator = page.get_by_test_id("live-indicator")
    expect(indicator).to_have_attribute("data-state", "live")
    vm = copy.deepcopy(stand_in.state["vms"]["11111111-1111-1111-1111-111111111103"])
    vm["state"] = "running"
    stand_in.push("domain", "updated", vm["id"], vm)
    expect(page.get_by_test_id("vm-row-cache1")).to_have_attribute("data-state", "running")
    seq = stand_in.seq
    stand_in.drop_sockets()
    expect(indicator).to_have_attribute("data-state", "offline")
    expect(indicator).to_have_attribute("data-state", "live")
    assert stand_in.ws_queries[-1] == f"since={seq}"


def test_expired_session_goes_to_login(page, stand_in):
    from playwright.sync_api import expect

    login(page, stand_in, "/")
    stand_in.expire_sessions()
    page.get_by_test_id("nav-settings").click()
    expect(page).to_have_url(stand_in.url + "/login?next=%2Fsettings")
    expect(page.get_by_test_id("login-submit")).to_be_visible()


def test_logout(page, stand_in):
    from playwright.sync_api import expect

    login(page, stand_in, "/")
    page.get_by_test_id("logout").click()
    expect(page).to_have_url(stand_in.url + "/login")
    page.goto(stand_in.url + "/hosts")
    expect(page).to_have_url(stand_in.url + "/login?next=%2Fhosts")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        si, server, t = start_stand_in(int(sys.argv[2]))
        print(f"stand-in gateway on {si.url} (admin / secret); Ctrl-C to stop", flush=True)
        try:
            while t.is_alive():
                time.sleep(0.5)
        except KeyboardInterrupt:
            server.should_exit = True
    else:
        print(json.dumps({"usage": "python tests/e2e/test_ui_shell.py --serve PORT"}))
