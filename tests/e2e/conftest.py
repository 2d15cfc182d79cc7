"""The e2e tier: the real libvirtd (qemu:///system, TCG guests), the stack started as `flint up` starts it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time

import pytest

from tests.helpers import Proc, flint_env, free_port, wait_http

ADMIN_PASSWORD = "e2e-admin-password"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


def _libvirtd_answers() -> bool:
    try:
        return subprocess.run(["virsh", "-c", "qemu:///system", "version"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class Stack:
    def __init__(self, proc: Proc, base: str, nats_url: str, data_dir):
        self.proc = proc
        self.base = base
        self.nats_url = nats_url
        self.data_dir = data_dir


def start_stack(data, bind_host: str = "127.0.0.1", **extra_env: str) -> Stack:
    """`flint up` as a user runs it, on free ports with its own data dir (TLS when not on loopback)."""
    if not _libvirtd_answers():
        pytest.fail("libvirtd does not answer at qemu:///system: run `bash deploy/setup.sh` (make test does)")
    port, nats_port = free_port(), free_port()
    env = flint_env(
        FLINT_DATA_DIR=str(data),
        FLINT_BIND=f"{bind_host}:{port}",
        FLINT_NATS_PORT=str(nats_port),
        FLINT_ADMIN_PASSWORD=ADMIN_PASSWORD,
        FLINT_HOST="local",
        **extra_env,
    )
    proc = Proc([sys.executable, "-m", "flint.cli.main", "up"], env, data / "flint-up.log")
    scheme = "http" if bind_host.startswith("127.") else "https"
    base = f"{scheme}://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not re.search(r"Flint is up in", proc.output()):
        if proc.proc.poll() is not None:
            pytest.fail(f"flint up exited:\n{proc.output()[-5000:]}")
        time.sleep(0.1)
    if scheme == "http":
        wait_http(f"{base}/api/v1/health", proc=proc, timeout=5)
    return Stack(proc, base, f"nats://127.0.0.1:{nats_port}", data)


def stop_stack(stack: Stack) -> None:
    code = stack.proc.stop(timeout=30)
    assert code == 0, f"flint up did not stop cleanly ({code}):\n{stack.proc.output()[-3000:]}"


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    stack = start_stack(tmp_path_factory.mktemp("flint-data"))
    yield stack
    stop_stack(stack)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()
