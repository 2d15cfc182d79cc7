"""What every service process shares: settings, logging, NATS, libvirt, health, clean shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog
from nats.aio.client import Client as NATS

from flint import __version__, bus
from flint.config import Settings, load_settings
from flint.contracts.common import Empty
from flint.contracts.health import HealthReply, LibvirtStatus
from flint.log import setup_logging
from flint.sshhosts import display_uri
from flint.virt.connection import VirtConnection
from flint.virt.kvm import detect_virt_type
from flint.virt.version import LibvirtTooOld


@dataclass
class ServiceContext:
    name: str
    settings: Settings
    nc: NATS
    virt: VirtConnection
    events: bus.EventPublisher
    virt_type: str
    virt_type_reason: str
    started_at: float = field(default_factory=time.time)
    background: list[asyncio.Task] = field(default_factory=list)

    @property
    def host(self) -> str:
        return self.settings.host

    @property
    def js(self):
        return self.nc.jetstream()

    def spawn(self, coro: Awaitable[None], name: str) -> None:
        """A background task whose crash is logged and ends the process (the supervisor restarts it)."""
        task = asyncio.create_task(coro, name=name)

        def done(t: asyncio.Task) -> None:
            if not t.cancelled() and t.exception() is not None:
                structlog.get_logger().error("background task died", task=name, error=repr(t.exception()))
                os._exit(70)

        task.add_done_callback(done)
        self.background.append(task)

    def health(self) -> HealthReply:
        virt = self.virt
        return HealthReply(
            service=self.name,
            host=self.host,
            ok=virt.connected,
            version=__version__,
            pid=os.getpid(),
            started_at=self.started_at,
            libvirt=LibvirtStatus(
                connected=virt.connected,
                uri=display_uri(virt.uri),
                version=virt.version,
                virt_type=self.virt_type,
                virt_type_reason=self.virt_type_reason,
                detail=virt.last_error or virt.fatal,
            ),
        )


Setup = Callable[[ServiceContext], Awaitable[list[bus.Endpoint]]]


def run(name: str, setup: Setup) -> None:
    """Entry point of `python -m services.<name>`."""
    try:
        settings = load_settings()
    except ValueError as exc:
        print(f"flint {name}: {exc}", file=sys.stderr)
        sys.exit(2)
    log = setup_logging(settings.log_format, service=name, host=settings.host)
    try:
        asyncio.run(_main(name, settings, setup))
    except LibvirtTooOld as exc:
        log.error("libvirt too old", error=str(exc))
        print(f"flint {name}: {exc}", file=sys.stderr)
        sys.exit(78)
    except KeyboardInterrupt:
        pass


async def _main(name: str, settings: Settings, setup: Setup) -> None:
    log = structlog.get_logger()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    report = detect_virt_type(settings.virt_type)
    nc = await bus.connect(settings.effective_nats_url, name=f"flint-{name}-{settings.host}", creds=settings.nats_creds)
    await bus.ensure_streams(nc, settings.stream_replicas)
    virt = VirtConnection(settings.libvirt_uri)
    ctx = ServiceContext(
        name=name,
        settings=settings,
        nc=nc,
        virt=virt,
        events=bus.EventPublisher(nc, settings.host),
        virt_type=report.virt_type,
        virt_type_reason=report.reason,
    )

    async def health(_: Empty) -> HealthReply:
        return ctx.health()

    endpoints = [bus.Endpoint("health", Empty, health), *await setup(ctx)]
    svc = await bus.serve(nc, settings.host, name, __version__, endpoints)
    virt_task = asyncio.create_task(virt.run(), name="libvirt")
    log.info("service started", uri=display_uri(settings.libvirt_uri), virt_type=report.virt_type)

    stop_wait = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({stop_wait, virt_task}, return_when=asyncio.FIRST_COMPLETED)
    if virt_task in done and virt_task.exception() is not None:
        exc = virt_task.exception()
        if isinstance(exc, LibvirtTooOld):
            raise exc
        log.error("libvirt task died", error=repr(exc))
    log.info("service stopping")
    for task in [virt_task, *ctx.background]:
        task.cancel()
    await asyncio.gather(virt_task, *ctx.background, return_exceptions=True)
    await svc.stop()
    await virt.close()
    await nc.drain()
