"""Test helpers shared by the integration and e2e tiers: real processes on loopback ports."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


class NatsServer:
    def __init__(self, store: Path):
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(store)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class Proc:
    """A Flint process (service, gateway, or `flint up`) with its output kept in a file for failures."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path):
        self.log_path = log_path
        self.log = log_path.open("wb")
        self.proc = subprocess.Popen(argv, env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=REPO,
                                     start_new_session=True)

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()
        return self.proc.returncode


def flint_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLINT_")}
    env.update({"FLINT_LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1"})
    env.update(overrides)
    return env


def python_module(module: str) -> list[str]:
    return [sys.executable, "-m", module]


def wait_http(url: str, timeout: float = 30.0, proc: Proc | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.proc.poll() is not None:
            raise RuntimeError(f"process exited ({proc.proc.returncode}):\n{proc.output()[-4000:]}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout} s" + (f":\n{proc.output()[-4000:]}" if proc else ""))


def login(base: str, username: str = "admin", password: str = "correct-horse-battery") -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=30)
    resp = client.post("/api/v1/auth/login", json={"username": username, "password": password})
    resp.raise_for_status()
    client.headers["X-CSRF-Token"] = client.cookies["flint_csrf"]
    return client


def token_client(base: str, admin_password: str, name: str, role: str, timeout: float = 30) -> httpx.Client:
    """A client holding a new API token of `role`, made by the admin (how scripts use the API)."""
    admin = login(base, password=admin_password)
    token = admin.post("/api/v1/auth/tokens", json={"name": name, "role": role}).json()["token"]
    admin.close()
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=timeout)


def eventually(check, timeout: float = 10.0, interval: float = 0.1, what: str = "condition"):
    """Poll `check` until it returns a truthy value (tests only: the product pushes, tests wait)."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - retried until the deadline
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"{what} not reached within {timeout} s" + (f" (last error: {last_exc!r})" if last_exc else ""))


def run_async(coro):
    """Run a coroutine to completion from a sync test, in a thread of its own: this thread may hold
    Playwright's running loop or the loop pytest-asyncio keeps, which asyncio.run must not touch."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()
