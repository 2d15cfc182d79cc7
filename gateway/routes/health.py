from __future__ import annotations

import asyncio

import msgspec
from litestar import Controller, Request, get

from flint import bus, subjects
from flint.contracts.common import Empty, ServiceError
from flint.contracts.health import HealthReply
from gateway.deps import gw


class Health(msgspec.Struct):
    status: str


class Check(msgspec.Struct):
    ok: bool
    detail: str | None = None


class NatsCheck(msgspec.Struct):
    ok: bool
    url: str
    detail: str | None = None
    server_version: str | None = None


class LibvirtCheck(msgspec.Struct):
    ok: bool
    version: str | None = None
    uri: str | None = None
    detail: str | None = None


class HostHealth(msgspec.Struct):
    name: str
    uri: str
    ok: bool
    libvirt: LibvirtCheck
    virt_type: str | None
    virt_type_reason: str | None
    services: dict[str, Check]


class HealthDetails(msgspec.Struct):
    status: str
    nats: NatsCheck
    hosts: list[HostHealth]


async def _ask(nc, host: str, service: str) -> HealthReply | ServiceError:
    try:
        return await bus.request(nc, subjects.health(host, service), Empty(), HealthReply, timeout=2.0)
    except ServiceError as exc:
        return exc


async def host_health(nc, host: str) -> HostHealth:
    replies = await asyncio.gather(*(_ask(nc, host, s) for s in subjects.SERVICES))
    services: dict[str, Check] = {}
    libvirt_check = LibvirtCheck(ok=False, detail="no service of this host answered")
    virt_type = reason = None
    uri = ""
    for service, reply in zip(subjects.SERVICES, replies, strict=True):
        if isinstance(reply, ServiceError):
            services[service] = Check(ok=False, detail=reply.message)
            continue
        lv = reply.libvirt
        detail = None if reply.ok else (lv.detail if lv else reply.detail) or "not ready"
        services[service] = Check(ok=reply.ok, detail=detail)
        if lv is not None and (lv.connected or not libvirt_check.ok):
            libvirt_check = LibvirtCheck(ok=lv.connected, version=lv.version, uri=lv.uri, detail=lv.detail)
            virt_type, reason, uri = lv.virt_type, lv.virt_type_reason, lv.uri
    ok = libvirt_check.ok and all(c.ok for c in services.values())
    return HostHealth(
        name=host, uri=uri, ok=ok, libvirt=libvirt_check, virt_type=virt_type, virt_type_reason=reason, services=services
    )


class HealthController(Controller):
    path = "/health"
    tags = ["health"]

    @get("/")
    async def health(self) -> Health:
        """Minimal liveness, no authentication: says nothing about the inside."""
        return Health(status="ok")

    @get("/details")
    async def details(self, request: Request) -> HealthDetails:
        g = gw(request)
        nc = g.nc
        nats = NatsCheck(
            ok=nc.is_connected,
            url=g.settings.effective_nats_url,
            server_version=nc._server_info.get("version") if nc.is_connected else None,
            detail=None if nc.is_connected else "the gateway is not connected to NATS",
        )
        names = sorted(set(g.view.host_names()) | {g.settings.host})
        hosts = list(await asyncio.gather(*(host_health(nc, h) for h in names)))
        status = "ok" if nats.ok and all(h.ok for h in hosts) else "degraded"
        return HealthDetails(status=status, nats=nats, hosts=hosts)
