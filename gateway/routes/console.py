"""Consoles: POST /vms/{id}/console for a ticket, then the WebSocket /console?ticket=… (gateway/console.py)."""

from __future__ import annotations

from urllib.parse import quote

import msgspec
from litestar import Request, WebSocket, post, websocket

from flint import bus, subjects
from flint.contracts.common import ServiceError
from flint.contracts.console import CONSOLE_TYPES, TicketReply, TicketRequest
from gateway import console
from gateway.deps import gw
from gateway.routes.inventory import _vm, require_up


class ConsoleRequest(msgspec.Struct, kw_only=True):
    type: str = "vnc"


class ConsoleTicket(msgspec.Struct, kw_only=True):
    ticket: str
    url: str  # same-origin WebSocket path; valid once, until expires_at
    expires_at: float
    type: str
    vm_id: str
    vm_name: str


@post("/vms/{vm_id:str}/console", tags=["consoles"], status_code=201)
async def open_console(request: Request, vm_id: str, data: ConsoleRequest) -> ConsoleTicket:
    """A single-use ticket (valid at most 30 s) for the VM's VNC or serial console."""
    if data.type not in CONSOLE_TYPES:
        raise ServiceError(422, f"type must be one of {', '.join(CONSOLE_TYPES)}", "type")
    vm = _vm(request, vm_id)
    require_up(request, vm.host)
    reply = await bus.request(
        gw(request).nc,
        subjects.request(vm.host, "console", "ticket"),
        TicketRequest(vm_id=vm_id, type=data.type, user=request.user.name),
        TicketReply,
        timeout=15,
    )
    return ConsoleTicket(
        ticket=reply.ticket,
        url=f"/api/v1/console?ticket={quote(reply.ticket)}",
        expires_at=reply.expires_at,
        type=data.type,
        vm_id=vm_id,
        vm_name=reply.vm_name,
    )


@websocket("/console")
async def console_socket(socket: WebSocket, ticket: str = "") -> None:
    await console.serve(socket, ticket)
