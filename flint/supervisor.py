"""`flint up` and `flint agent`: run nats-server (embedded), the four services and the gateway as
child processes; wait until all are healthy; restart a child that dies, with backoff; stop all cleanly."""

from __future__ import annotations

import asyncio
import ctypes
import os
import secrets
import shutil
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from flint import bus, subjects
from flint.config import Settings
from flint.contracts.common import Empty, ServiceError
from flint.contracts.health import HealthReply

log = structlog.get_logger()
DEMO_XML = Path(__file__).resolve().parent / "virt" / "demo-host.xml"
RESTART_BACKOFF = (0.3, 1.0, 2.0, 5.0, 10.0)
STABLE_AFTER_S = 30.0


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    proc: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    failures: int = 0
    restarts: int = 0
    retired: bool = False  # stopped for good (its agentless host was removed): not restarted

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, env=self.env, start_new_session=True, preexec_fn=_die_with_parent
        )
        self.started_at = time.monotonic()

    async def stop(self, grace: float = 10.0) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the supervisor dies, even by SIGKILL, so no service is orphaned."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass  # not Linux/glibc: children are still stopped on a clean shutdown


@dataclass
class Supervisor:
    settings: Settings
    children: list[Child] = field(default_factory=list)
    nats: Child | None = None
    stopping: bool = False

    def child_env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env["FLINT_NATS_URL"] = self.settings.effective_nats_url
        if self.settings.nats_creds:
            env["FLINT_NATS_CREDS"] = self.settings.nats_creds
        env.setdefault("FLINT_LOG_FORMAT", "json")
        env.update(extra)
        return env

    async def supervise(self, child: Child) -> None:
        """Keep one child running until we stop."""
        while not self.stopping and not child.retired:
            await child.start()
            code = await child.proc.wait()
            if self.stopping or child.retired:
                return
            lived = time.monotonic() - child.started_at
            child.failures = 0 if lived > STABLE_AFTER_S else child.failures + 1
            delay = RESTART_BACKOFF[min(child.failures, len(RESTART_BACKOFF) - 1)]
            child.restarts += 1
            log.warning("child exited; restarting", child=child.name, code=code, restart_in=delay)
            await asyncio.sleep(delay)


def python_child(name: str, module: str, env: dict[str, str]) -> Child:
    return Child(name=name, argv=[sys.executable, "-m", module], env=env)


def service_children(sup: Supervisor, host: str, uri: str, **extra: str) -> list[Child]:
    env = sup.child_env(FLINT_HOST=host, FLINT_LIBVIRT_URI=uri, **extra)
    return [python_child(f"{s}@{host}", f"services.{s}", env) for s in subjects.SERVICES]


def embedded_nats(settings: Settings, port: int) -> tuple[Child, Settings]:
    """nats-server with JetStream under the data dir, users and permissions, anonymous access off.
    Returns the child and the settings the other processes connect with (URL and system credentials)."""
    from dataclasses import replace

    from flint.natsauth import NatsAuth, prepare_server

    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    store = settings.data_dir / "nats"
    store.mkdir(parents=True, exist_ok=True, mode=0o700)
    prepared = prepare_server(settings.data_dir, settings.nats_bind, port, store)
    auth = NatsAuth(settings.data_dir)
    argv = [binary, "-c", str(prepared.config), "-P", str(auth.dir / "nats-server.pid")]
    child = Child(name="nats-server", argv=argv, env=dict(os.environ))
    return child, replace(settings, nats_url=prepared.url, nats_creds=str(prepared.creds))


async def wait_port(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection(host, port)
            writer.close()
            return True
        except OSError:
            await asyncio.sleep(0.05)
    return False


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex((host, port)) == 0


async def wait_healthy(settings: Settings, hosts: list[str], timeout: float, gateway: bool) -> list[str]:
    """Until every service of every host and the gateway answer; returns what is still not healthy."""
    nc = await bus.connect(settings.effective_nats_url, name="flint-supervisor", creds=settings.nats_creds)
    deadline = time.monotonic() + timeout
    missing: list[str] = []
    try:
        while time.monotonic() < deadline:
            missing = []
            for host in hosts:
                for service in subjects.SERVICES:
                    try:
                        reply = await bus.request(nc, subjects.health(host, service), Empty(), HealthReply, 1.0)
                        if not reply.ok:
                            missing.append(f"{service}@{host} ({reply.libvirt.detail if reply.libvirt else 'not ready'})")
                    except ServiceError:
                        missing.append(f"{service}@{host} (not answering)")
            if gateway and not await wait_port(settings.bind_host, settings.bind_port, 0.01):
                missing.append("gateway")
            if not missing:
                return []
            await asyncio.sleep(0.1)
        return missing
    finally:
        await nc.close()


def admin_password(settings: Settings) -> tuple[str | None, Path | None, bool]:
    """The first admin's password: FLINT_ADMIN_PASSWORD, else one generated once and kept 0600 in the data dir."""
    if settings.admin_password:
        return settings.admin_password, None, False
    path = settings.data_dir / "initial-admin-password"
    if path.is_file():
        return path.read_text().strip(), path, False
    password = secrets.token_urlsafe(12)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(password + "\n")
    return password, path, True


async def run_up(settings: Settings, demo: bool, nats_port: int, wait_timeout: float = 60.0) -> int:
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    sup = Supervisor(settings)
    uri = f"test://{DEMO_XML}" if demo else settings.libvirt_uri
    if settings.nats_url is None:
        if port_in_use("127.0.0.1", nats_port):
            print(
                f"flint up: port {nats_port} is taken (another nats-server or flint up?). "
                "Stop it, set FLINT_NATS_PORT, or point FLINT_NATS_URL at a running NATS.",
                file=sys.stderr,
            )
            return 1
        sup.nats, settings = embedded_nats(settings, nats_port)
        sup.settings = settings
    password, password_file, created = admin_password(settings)
    services = service_children(sup, settings.host, uri)
    gateway_env = sup.child_env(FLINT_HOST=settings.host, FLINT_LIBVIRT_URI=uri)
    if password:
        gateway_env["FLINT_ADMIN_PASSWORD"] = password
    sup.children = [*services, python_child("gateway", "gateway", gateway_env)]

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    t0 = time.monotonic()
    tasks: list[asyncio.Task] = []
    if sup.nats is not None:
        tasks.append(asyncio.create_task(sup.supervise(sup.nats)))
        if not await wait_port("127.0.0.1", nats_port, 10):
            print("flint up: nats-server did not start; see its output above", file=sys.stderr)
            sup.stopping = True
            await sup.nats.stop()
            return 1
    tasks += [asyncio.create_task(sup.supervise(c)) for c in sup.children]
    from flint.agentless import AgentlessHosts

    agentless = asyncio.create_task(AgentlessHosts(sup).run())  # registered SSH hosts (POST /api/v1/hosts)
    health = asyncio.create_task(wait_healthy(settings, [settings.host], wait_timeout, gateway=True))
    await asyncio.wait({health, asyncio.create_task(stop.wait())}, return_when=asyncio.FIRST_COMPLETED)
    if not health.done():  # stopped while still starting
        health.cancel()
    missing = health.result() if health.done() and not health.cancelled() else []
    scheme = "http" if settings.is_loopback else "https"
    if stop.is_set():
        pass
    elif missing:
        print(f"flint up: still not healthy after {wait_timeout:g} s: {', '.join(missing)}", file=sys.stderr)
        print("  run `flint doctor` to see what is missing", file=sys.stderr)
    else:
        shown = settings.bind
        if settings.bind_host in ("0.0.0.0", "::"):  # every address: show one a browser can open
            shown = f"{socket.gethostname()}:{settings.bind_port}"
        print(f"Flint is up in {time.monotonic() - t0:.1f} s: {scheme}://{shown}/", flush=True)
        if created:
            print(f"  log in as admin with password {password} (kept in {password_file})", flush=True)
        elif password_file:
            print(f"  log in as admin; the first password is in {password_file}", flush=True)
        else:
            print("  log in as admin with FLINT_ADMIN_PASSWORD", flush=True)
        if demo:
            print("  demo mode: libvirt's test driver, no real VMs", flush=True)
    await stop.wait()
    print("flint up: stopping", flush=True)
    sup.stopping = True
    agentless.cancel()  # stops the agentless hosts' services
    await asyncio.gather(agentless, return_exceptions=True)
    await asyncio.gather(*(c.stop() for c in sup.children))
    if sup.nats is not None:
        await sup.nats.stop()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return 0


async def run_agent(settings: Settings, host: str, uri: str) -> int:
    """The four services of one host joined to an existing NATS (no gateway, no embedded NATS)."""
    sup = Supervisor(settings)
    sup.children = service_children(sup, host, uri)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(sup.supervise(c)) for c in sup.children]
    health = asyncio.create_task(wait_healthy(settings, [host], 60, gateway=False))
    await asyncio.wait({health, asyncio.create_task(stop.wait())}, return_when=asyncio.FIRST_COMPLETED)
    missing = health.result() if health.done() else []
    if not health.done():
        health.cancel()
    elif missing:
        print(f"flint agent: still not healthy: {', '.join(missing)}", file=sys.stderr)
    elif not stop.is_set():
        print(f"flint agent: host {host} ({uri}) is serving on {settings.effective_nats_url}", flush=True)
    await stop.wait()
    sup.stopping = True
    await asyncio.gather(*(c.stop() for c in sup.children))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return 0

