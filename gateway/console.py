"""Console sessions in the gateway: claim the ticket, pick the relay, pump bytes, end on stop or lost access.

Relays (docs/console.md has the measurements):
- direct: the host's websockify listens on a loopback we share (same machine and network namespace):
  WebSocket to WebSocket, the fast path for VNC on the gateway's own machine.
- nats: a flint.channel.Channel to the host's console service, which runs the session (serial through
  libvirt's console stream; VNC over TCP from the host itself). Works wherever NATS reaches.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from dataclasses import dataclass

import structlog
import websockets
from litestar import WebSocket
from litestar.exceptions import NotAuthorizedException

from flint import bus, subjects
from flint.channel import Channel, ChannelClosed, loopback_namespace
from flint.contracts.audit import AuditRecord
from flint.contracts.common import ServiceError
from flint.contracts.console import AttachReply, AttachRequest, TicketRecord
from flint.tickets import (
    CLOSE_EXPIRED,
    CLOSE_NOT_RUNNING,
    CLOSE_REFUSED,
    CLOSE_UNAVAILABLE,
    TicketRefused,
    TicketStore,
)
from gateway import audit
from gateway.accounts import Principal, role_allows
from gateway.deps import gw
from gateway.security import authenticate

log = structlog.get_logger()

CONSOLE_ROLE = "operator"
ACTIVE_STATES = ("running", "paused", "blocked", "pmsuspended")
CHECK_VM_EVERY_S = 0.5
CHECK_ACCESS_EVERY_S = 2.0
_NETNS = loopback_namespace()
_CODE_OF_STATUS = {403: CLOSE_REFUSED, 404: 4404, 409: CLOSE_NOT_RUNNING, 410: CLOSE_EXPIRED}


@dataclass
class Ended(Exception):
    code: int
    reason: str


async def ticket_store(socket) -> TicketStore:
    state = socket.app.state
    store = getattr(state, "console_tickets", None)
    if store is None:
        store = TicketStore(await gw(socket).nc.jetstream().key_value(subjects.KV_CONSOLE))
        state.console_tickets = store
    return store


def _audit(socket: WebSocket, principal: Principal, record: TicketRecord | None, action: str, status: int,
           result: str) -> None:
    client = socket.scope.get("client") or ("", 0)
    target = {"vm_id": record.vm_id, "type": record.type} if record else {}
    audit.publish_later(gw(socket).nc, AuditRecord(
        ts=time.time(), user=principal.name, via=principal.via, token_id=principal.token_id,
        remote=str(client[0]), action=action, target=target, status=status, result=result,
        host=record.host if record else "",
    ))


async def serve(socket: WebSocket, ticket: str) -> None:
    """The whole life of one console WebSocket. The global guard already checked the role (and, for a
    session cookie, the Origin); the Origin check here covers every client that sends one."""
    principal: Principal = socket.scope["user"]
    origin = socket.headers.get("origin")
    host_header = socket.headers.get("host")
    if origin is not None and origin not in (f"http://{host_header}", f"https://{host_header}"):
        _audit(socket, principal, None, "CONSOLE refused", 403, "refused")
        await socket.close(code=CLOSE_REFUSED, reason="foreign origin")  # before accept: HTTP 403
        return
    offered = [p.strip() for p in socket.headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
    await socket.accept(subprotocols="binary" if "binary" in offered else None)
    store = await ticket_store(socket)
    try:
        record = await store.claim(ticket, user=principal.name)
    except TicketRefused as exc:
        _audit(socket, principal, None, "CONSOLE refused", 403, "refused")
        await _close(socket, exc.code, exc.reason)
        return
    g = gw(socket)
    vm = g.view.vms.get(record.vm_id)
    if vm is not None and vm.state not in ACTIVE_STATES:
        await _close(socket, CLOSE_NOT_RUNNING, f"VM {record.vm_name!r} is not running")
        return
    direct = (
        record.type == "vnc" and g.settings.console_relay == "auto" and record.relay.port
        and record.relay.netns and record.relay.netns == _NETNS
    )
    structlog.contextvars.bind_contextvars(vm=record.vm_id, console=record.type)
    try:
        backend = await (_open_direct(record, ticket) if direct else _open_channel(g, record, ticket))
    except Ended as exc:
        if exc.code == CLOSE_UNAVAILABLE and (v := g.view.vms.get(record.vm_id)) is not None and v.state not in ACTIVE_STATES:
            exc = Ended(CLOSE_NOT_RUNNING, f"VM {record.vm_name!r} is not running")
        _audit(socket, principal, record, "CONSOLE open", 502, "failed")
        await _close(socket, exc.code, exc.reason)
        return
    _audit(socket, principal, record, "CONSOLE open", 101, "ok")
    log.info("console opened", user=principal.name, vm_name=record.vm_name, relay="direct" if direct else "nats")
    code, reason = await _relay(socket, backend, record, principal)
    log.info("console closed", user=principal.name, vm_name=record.vm_name, code=code, reason=reason)
    await _close(socket, code, reason)


async def _close(socket: WebSocket, code: int, reason: str) -> None:
    with contextlib.suppress(Exception):
        await socket.close(code=code, reason=reason.encode()[:120].decode(errors="ignore"))  # 123 bytes at most


class _Direct:
    """WebSocket to the host's websockify on our shared loopback."""

    def __init__(self, ws):
        self.ws = ws

    async def send(self, data: bytes) -> None:
        await self.ws.send(data)

    async def recv(self) -> bytes:
        try:
            data = await self.ws.recv()
        except websockets.ConnectionClosed as exc:
            raise Ended(1000, "the VNC server closed the connection") from exc
        return data if isinstance(data, bytes) else data.encode()

    async def close(self) -> None:
        await self.ws.close()


class _Nats:
    def __init__(self, channel: Channel):
        self.channel = channel

    async def send(self, data: bytes) -> None:
        await self.channel.send(data)

    async def recv(self) -> bytes:
        try:
            return await self.channel.recv()
        except ChannelClosed as exc:
            raise Ended(exc.code, exc.reason) from exc

    async def close(self) -> None:
        await self.channel.close(1000, "closed by the viewer")


async def _open_direct(record: TicketRecord, ticket: str) -> _Direct:
    url = f"ws://127.0.0.1:{record.relay.port}/?token={ticket}"
    try:
        ws = await websockets.connect(
            url, subprotocols=["binary"], compression=None, max_size=None, ping_interval=None, open_timeout=10,
            proxy=None,
        )
    except (OSError, websockets.WebSocketException, TimeoutError) as exc:
        log.warning("console relay refused", error=repr(exc))
        raise Ended(CLOSE_UNAVAILABLE, f"the console of {record.vm_name!r} could not open; see the console service's log") from exc
    return _Direct(ws)


async def _open_channel(g, record: TicketRecord, ticket: str) -> _Nats:
    channel_id = secrets.token_hex(8)
    channel = await Channel(g.nc, record.host, channel_id, side="gateway").open()
    try:
        await bus.request(
            g.nc, subjects.request(record.host, "console", "attach"),
            AttachRequest(ticket=ticket, channel=channel_id), AttachReply, timeout=15,
        )
    except ServiceError as exc:
        await channel.close(1000, "")
        raise Ended(_CODE_OF_STATUS.get(exc.code, CLOSE_UNAVAILABLE), exc.message) from exc
    return _Nats(channel)


async def _relay(socket: WebSocket, backend, record: TicketRecord, principal: Principal) -> tuple[int, str]:
    async def up() -> None:
        while True:
            msg = await socket.receive()
            if msg["type"] == "websocket.disconnect":
                raise Ended(1000, "closed by the viewer")
            data = msg.get("bytes")
            if data is None:
                data = (msg.get("text") or "").encode()
            if data:
                await backend.send(data)

    async def down() -> None:
        while True:
            data = await backend.recv()
            await socket.send({"type": "websocket.send", "bytes": data})

    tasks = [asyncio.create_task(up()), asyncio.create_task(down()), asyncio.create_task(_guard(socket, record, principal))]
    code, reason = 1000, "closed"
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        exc = next(iter(done)).exception()
        if isinstance(exc, Ended):
            code, reason = exc.code, exc.reason
        elif exc is not None and not isinstance(exc, ChannelClosed):
            log.warning("console relay failed", error=repr(exc))
            code, reason = 1011, "the console relay failed"
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await backend.close()
    return code, reason


async def _guard(socket: WebSocket, record: TicketRecord, principal: Principal) -> None:
    """End the session when the VM stops or goes away, or the user loses access (session ended, account
    disabled, role lowered, token revoked)."""
    g = gw(socket)
    last_auth = time.monotonic()
    while True:
        await asyncio.sleep(CHECK_VM_EVERY_S)
        vm = g.view.vms.get(record.vm_id)
        if vm is None:
            raise Ended(4404, f"VM {record.vm_name!r} no longer exists")
        if vm.state not in ACTIVE_STATES:
            raise Ended(CLOSE_NOT_RUNNING, f"VM {record.vm_name!r} stopped")
        if time.monotonic() - last_auth >= CHECK_ACCESS_EVERY_S:
            last_auth = time.monotonic()
            try:
                now = await authenticate(socket)
            except NotAuthorizedException:
                now = None
            except Exception as exc:  # noqa: BLE001 - NATS busy or reconnecting: ask again next time
                log.warning("console access check failed; retrying", error=repr(exc))
                continue
            if now is None or now.name != principal.name:
                raise Ended(CLOSE_REFUSED, "your session ended")
            if not role_allows(now.role, CONSOLE_ROLE):
                raise Ended(CLOSE_REFUSED, f"your role is now {now.role}: consoles need {CONSOLE_ROLE}")
