"""Reads served from the in-memory inventory view; lifecycle actions sent to the host's provisioner."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.params import Parameter

from flint import bus, subjects
from flint.contracts.common import ServiceError
from flint.contracts.inventory import (
    VM,
    HostFacts,
    MetricsRequest,
    Network,
    Pool,
    StorageSummary,
    VMActionReply,
    VMActionRequest,
    VMMetrics,
)
from gateway.deps import gw
from services.inventory.storage import summarize

VM_ACTIONS = ("start", "shutdown", "reboot", "reset", "poweroff", "pause", "resume")
STATES = ("running", "paused", "shutoff", "crashed", "pmsuspended", "blocked", "shutdown", "nostate")


class VMPage(msgspec.Struct):
    items: list[VM]
    total: int
    offset: int
    limit: int


class ActionRequest(msgspec.Struct):
    action: str


def _vm(request: Request, vm_id: str) -> VM:
    vm = gw(request).view.vms.get(vm_id)
    if vm is None:
        raise ServiceError(404, f"no VM with id {vm_id!r}")
    return vm


def _known_host(request: Request, host: str) -> None:
    g = gw(request)
    if host not in g.view.host_names() and host != g.settings.host:
        raise ServiceError(404, f"no host named {host!r}")


def require_up(request: Request, host: str) -> None:
    """Fail fast with a clear reason instead of waiting for a request timeout."""
    if gw(request).view.is_unreachable(host):
        raise ServiceError(503, f"host {host!r} is unreachable: no heartbeat in the last {subjects.HOST_HEARTBEAT_TTL_S} s")


class InventoryController(Controller):
    tags = ["inventory"]

    @get("/hosts")
    async def hosts(self, request: Request) -> list[HostFacts]:
        view = gw(request).view
        return [h for h in (view.host(n) for n in view.host_names()) if h is not None]

    @get("/hosts/{host:str}")
    async def host(self, request: Request, host: str) -> HostFacts:
        facts = gw(request).view.host(host)
        if facts is None:
            raise ServiceError(404, f"no host named {host!r}")
        return facts

    @get("/vms")
    async def vms(
        self,
        request: Request,
        host: str | None = None,
        q: Annotated[str | None, Parameter(description="substring of the name or an address")] = None,
        vm_state: Annotated[str | None, Parameter(query="state", description="running, shutoff, ...")] = None,
        offset: Annotated[int, Parameter(ge=0)] = 0,
        limit: Annotated[int, Parameter(ge=1, le=5000)] = 1000,
    ) -> VMPage:
        if vm_state is not None and vm_state not in STATES:
            raise ServiceError(400, f"state must be one of {', '.join(STATES)}", "state")
        items = gw(request).view.vms_of(host)
        if vm_state:
            items = [v for v in items if v.state == vm_state]
        if q:
            needle = q.lower()
            items = [v for v in items if needle in v.name.lower() or any(needle in a for n in v.nics for a in n.addresses)]
        return VMPage(items=items[offset : offset + limit], total=len(items), offset=offset, limit=limit)

    @get("/vms/{vm_id:str}")
    async def vm(self, request: Request, vm_id: str) -> Response:
        _vm(request, vm_id)
        return Response(gw(request).view.vm_json[vm_id], media_type="application/json")

    @get("/vms/{vm_id:str}/metrics")
    async def vm_metrics(self, request: Request, vm_id: str) -> VMMetrics:
        vm = _vm(request, vm_id)
        require_up(request, vm.host)
        return await bus.request(
            gw(request).nc, subjects.request(vm.host, "inventory", "metrics"), MetricsRequest(id=vm_id), VMMetrics
        )

    @post("/vms/{vm_id:str}/actions", status_code=200)
    async def vm_action(self, request: Request, vm_id: str, data: ActionRequest) -> VMActionReply:
        if data.action not in VM_ACTIONS:
            raise ServiceError(400, f"action must be one of {', '.join(VM_ACTIONS)}", "action")
        vm = _vm(request, vm_id)
        require_up(request, vm.host)
        return await bus.request(
            gw(request).nc,
            subjects.request(vm.host, "provisioner", "vm.action"),
            VMActionRequest(id=vm_id, action=data.action),
            VMActionReply,
            timeout=60,
        )

    @get("/storage/summary")
    async def storage_summary(self, request: Request) -> StorageSummary:
        view = gw(request).view
        return summarize(view.pools_of(), view.host_names())

    @get("/hosts/{host:str}/pools")
    async def pools(self, request: Request, host: str) -> list[Pool]:
        _known_host(request, host)
        return gw(request).view.pools_of(host)

    @get("/hosts/{host:str}/networks")
    async def networks(self, request: Request, host: str) -> list[Network]:
        _known_host(request, host)
        return gw(request).view.networks_of(host)
