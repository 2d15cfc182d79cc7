"""The Litestar application: routes, the global guard, problem details, and the lifespan's connections."""

from __future__ import annotations

from contextlib import asynccontextmanager

import structlog
from litestar import Litestar, Router
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin

from flint import __version__, bus, subjects
from flint.config import Settings
from gateway import audit
from gateway.accounts import Accounts
from gateway.deps import Gateway
from gateway.eventhub import EventHub
from gateway.problems import EXCEPTION_HANDLERS
from gateway.routes import frontend, prometheus
from gateway.routes.audit import audit_log
from gateway.routes.auth import AuthController, UsersController
from gateway.routes.console import console_socket, open_console
from gateway.routes.events import events
from gateway.routes.firewall import FirewallController, VMFirewallController, host_nwfilters
from gateway.routes.health import HealthController
from gateway.routes.hosts import HostsController
from gateway.routes.inventory import InventoryController
from gateway.routes.jobs import JobsController
from gateway.routes.networks import NetworksController
from gateway.routes.storage import StorageController
from gateway.routes.vm_edit import VMEditController
from gateway.routes.vms import VMWritesController
from gateway.security import require_role
from gateway.throttle import LoginThrottle
from gateway.view import InventoryView

log = structlog.get_logger()

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data: blob:; "
        "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"
    ),
}


def create_app(settings: Settings) -> Litestar:
    @asynccontextmanager
    async def lifespan(app: Litestar):
        nc = await bus.connect(settings.effective_nats_url, name="flint-gateway", creds=settings.nats_creds)
        await bus.ensure_streams(nc, settings.stream_replicas)
        js = nc.jetstream()
        accounts = Accounts(await js.key_value(subjects.KV_AUTH), await js.key_value(subjects.KV_SESSIONS))
        if await accounts.ensure_admin(settings.admin_password):
            log.info("created the first user 'admin' from FLINT_ADMIN_PASSWORD")
        view = InventoryView()
        await view.start(nc)
        hub = EventHub()
        await hub.start(nc)
        app.state.gateway = Gateway(
            settings=settings, nc=nc, accounts=accounts, view=view, hub=hub, throttle=LoginThrottle()
        )
        log.info("gateway ready", bind=settings.bind)
        try:
            yield
        finally:
            await hub.stop()
            await view.stop()
            await nc.drain()

    api = Router(
        path="/api/v1",
        route_handlers=[
            HealthController,
            AuthController,
            UsersController,
            InventoryController,
            HostsController,
            VMWritesController,
            VMEditController,
            JobsController,
            StorageController,
            NetworksController,
            events,
            FirewallController,
            VMFirewallController,
            host_nwfilters,
            open_console,
            console_socket,
            audit_log,
        ],
    )
    headers = dict(SECURITY_HEADERS)
    if not settings.is_loopback:
        headers["Strict-Transport-Security"] = "max-age=31536000"

    async def on_response_start(message, scope) -> None:
        if message["type"] == "http.response.start":
            rec = audit.record_from(scope, message["status"], message.get("headers", []))
            if rec is not None and hasattr(scope["app"].state, "gateway"):
                audit.publish_later(scope["app"].state.gateway.nc, rec)
            existing = {k.lower() for k, _ in message.get("headers", [])}
            for k, v in headers.items():
                if k.lower().encode() not in existing:
                    message.setdefault("headers", []).append((k.lower().encode(), v.encode()))

    return Litestar(
        route_handlers=[api, prometheus.metrics, frontend.index, frontend.spa],
        guards=[require_role],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[lifespan],
        before_send=[on_response_start],
        openapi_config=OpenAPIConfig(
            title="Flint",
            version=__version__,
            path="/api/v1/schema",
            render_plugins=[JsonRenderPlugin()],
        ),
        debug=False,
    )
