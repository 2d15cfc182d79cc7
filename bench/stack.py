"""A `flint up` of a bench's own (free loopback ports, a temporary data dir), or the one FLINT_URL and
FLINT_TOKEN name; and an API token on it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "bench-admin-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_stack(data: Path, poll_s: float = 0.1) -> tuple[subprocess.Popen, str, str, float]:
    """`flint up` on free loopback ports with a temporary data dir; returns when the admin can log in and
    every part is healthy, with the seconds that took (`poll_s`: how often to ask, which bounds that
    figure's precision)."""
    port, nats_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLINT_")}
    env.update(FLINT_DATA_DIR=str(data), FLINT_BIND=f"127.0.0.1:{port}", FLINT_NATS_PORT=str(nats_port),
               FLINT_ADMIN_PASSWORD=PASSWORD, FLINT_LOG_FORMAT="json")
    log = data / "up.log"
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "flint.cli.main", "up"], env=env, cwd=REPO,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=base, timeout=5)
    deadline = t0 + 120
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"flint up exited:\n{log.read_text()[-3000:]}")
            try:
                if client.get("/api/v1/health").status_code == 200 and client.post(
                    "/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}
                ).status_code == 200 and client.get("/api/v1/health/details").json().get("status") == "ok":
                    return proc, base, f"nats://127.0.0.1:{nats_port}", time.monotonic() - t0
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(poll_s)
        raise SystemExit(f"flint up not healthy within 120 s:\n{log.read_text()[-3000:]}")
    except BaseException:
        stop_stack(proc)
        raise


def stop_stack(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    except ProcessLookupError:
        pass


def admin_token(base: str, name: str, role: str = "admin") -> str:
    """A new API token, made by logging in as the stack's admin."""
    with httpx.Client(base_url=base, timeout=30) as login:
        login.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}).raise_for_status()
        login.headers["X-CSRF-Token"] = login.cookies["flint_csrf"]
        return login.post("/api/v1/auth/tokens", json={"name": name, "role": role}).json()["token"]


def stack_or_env(cleanup: contextlib.ExitStack, data: Path, token_name: str) -> tuple[str, str, float | None]:
    """(base URL, admin token, seconds to healthy or None): FLINT_URL + FLINT_TOKEN when both are set,
    else a `flint up` under `data` that `cleanup` stops."""
    if os.environ.get("FLINT_URL") and os.environ.get("FLINT_TOKEN"):
        return os.environ["FLINT_URL"].rstrip("/"), os.environ["FLINT_TOKEN"], None
    data.mkdir(parents=True, exist_ok=True)
    proc, base, _, up_s = start_stack(data)
    cleanup.callback(stop_stack, proc)
    return base, admin_token(base, token_name), up_s
