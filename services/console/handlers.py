"""The console service's endpoints: issue tickets, hand websockify its VNC target, attach NATS sessions.

    console.ticket  {vm_id, type, user}  -> {ticket, expires_at, vm_name}   (from the gateway)
    console.attach  {ticket, channel}    -> {type, vm_name}                 (from the gateway, NATS relay)
and, on a Unix socket for websockify's connection processes (services/console/proxy.py):
    {ticket} -> {target: {host, port | path}} or {code, message}
"""

from __future__ import annotations

import asyncio

import libvirt
import structlog

from flint import subjects
from flint.bus import Endpoint
from flint.channel import Channel, loopback_namespace
from flint.contracts.common import ServiceError
from flint.contracts.console import (
    AttachReply,
    AttachRequest,
    Relay,
    TicketReply,
    TicketRequest,
    VncTargetReply,
)
from flint.service import ServiceContext
from flint.sshhosts import ssh_params
from flint.tickets import TicketRefused, TicketStore
from flint.virt.connection import libvirt_error
from services.console.proxy import VncProxy
from services.console.sessions import SerialSession, vnc_over_channel
from services.console.targets import check_console, is_remote_uri, vnc_target
from services.console.tunnel import SshTunnel
from services.provisioner.lifecycle import state_name

log = structlog.get_logger()


def _lookup(conn: libvirt.virConnect, vm_id: str) -> tuple[libvirt.virDomain, str, str]:
    """Blocking: the domain, its state and its live XML."""
    try:
        dom = conn.lookupByUUIDString(vm_id)
        return dom, state_name(dom), dom.XMLDesc(0)
    except libvirt.libvirtError as exc:
        raise libvirt_error(exc, f"VM {vm_id}") from exc


def _refused(exc: TicketRefused) -> ServiceError:
    return ServiceError(410 if exc.code == 4408 else 403, exc.reason)


async def setup(ctx: ServiceContext) -> list[Endpoint]:
    store = TicketStore(await ctx.js.key_value(subjects.KV_CONSOLE))
    ssh = ssh_params(ctx.settings.libvirt_uri)
    tunnel = SshTunnel(ssh) if ssh else None  # VNC of an SSH host: through an SSH tunnel (tunnel.py)
    if tunnel is not None:
        ctx.spawn(_close_on_stop(tunnel), "ssh-tunnel")
    remote = tunnel is None and is_remote_uri(ctx.settings.libvirt_uri)
    sessions: set[asyncio.Task] = set()

    async def reach(target: VncTargetReply, vm_name: str) -> VncTargetReply:
        return await tunnel.local_target(target, vm_name) if tunnel else target

    async def vnc_target_of(ticket: str) -> VncTargetReply:
        """For websockify's connection processes (through proxy.py's Unix socket)."""
        try:
            record = await store.consume(ticket, host=ctx.host, type="vnc")
        except TicketRefused as exc:
            raise _refused(exc) from None
        _, state, xml = await ctx.virt.call(_lookup, ctx.virt.conn, record.vm_id)
        check_console(xml, "vnc", record.vm_name, state)
        target = await reach(vnc_target(xml, record.vm_name), record.vm_name)
        log.info("vnc console opened", user=record.user, vm_name=record.vm_name, via="websockify",
                 tunnel=tunnel is not None)
        return target

    proxy = VncProxy(vnc_target_of)
    ctx.spawn(proxy.run(), "websockify")
    relay = Relay(port=proxy.port, netns=loopback_namespace())

    async def ticket(req: TicketRequest) -> TicketReply:
        structlog.contextvars.bind_contextvars(vm=req.vm_id)
        dom, state, xml = await ctx.virt.call(_lookup, ctx.virt.conn, req.vm_id)
        name = dom.name()
        check_console(xml, req.type, name, state)
        if ctx.settings.libvirt_uri.startswith("test:"):
            # Its VNC ports are made up: 127.0.0.1:5900 may well be some real VM's screen.
            raise ServiceError(501, f"{name!r} lives in libvirt's test driver (flint up --demo), which has no consoles")
        if req.type == "vnc" and remote:
            raise ServiceError(
                501, f"the VNC console of {name!r} on host {ctx.host!r} is on another machine that Flint reaches "
                "neither by SSH nor by an agent: use the serial console, or run `flint agent` on that host",
            )
        token, record = await store.issue(
            user=req.user, vm_id=req.vm_id, vm_name=name, host=ctx.host, type=req.type,
            ttl=ctx.settings.console_ticket_ttl, relay=relay,
        )
        log.info("console ticket issued", user=req.user, type=req.type, vm_name=name)
        return TicketReply(ticket=token, expires_at=record.expires_at, vm_name=name)

    async def attach(req: AttachRequest) -> AttachReply:
        try:
            record = await store.consume(req.ticket, host=ctx.host)
        except TicketRefused as exc:
            raise _refused(exc) from None
        dom, state, xml = await ctx.virt.call(_lookup, ctx.virt.conn, record.vm_id)
        check_console(xml, record.type, record.vm_name, state)
        channel = await Channel(ctx.nc, ctx.host, req.channel, side="host").open()
        try:
            if record.type == "serial":
                try:
                    session = await ctx.virt.call(SerialSession.open, ctx.virt.conn, dom, channel, record.vm_name)
                except libvirt.libvirtError as exc:
                    raise libvirt_error(exc, f"open the serial console of {record.vm_name!r}") from exc
                work = session.run()
            else:
                target = await reach(vnc_target(xml, record.vm_name), record.vm_name)
                work = vnc_over_channel(target, channel, record.vm_name)
        except BaseException:
            await channel.close(4502, "the console could not open")
            raise
        task = asyncio.create_task(work, name=f"console-{record.type}-{req.channel}")
        sessions.add(task)
        task.add_done_callback(sessions.discard)
        log.info(f"{record.type} console opened", user=record.user, vm_name=record.vm_name, via="nats")
        return AttachReply(type=record.type, vm_name=record.vm_name)

    return [
        Endpoint("ticket", TicketRequest, ticket),
        Endpoint("attach", AttachRequest, attach),
    ]


async def _close_on_stop(tunnel: SshTunnel) -> None:
    """Lives as long as the service: its cancellation at stop closes the tunnel and removes its sockets."""
    try:
        await asyncio.Event().wait()
    finally:
        await tunnel.close()
