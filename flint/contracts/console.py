"""Console tickets and sessions: what the gateway and a host's console service say to each other.

A ticket lives in KV flint-console under ``t.<sha256 of the ticket>`` (never the ticket itself) and goes
issued -> claimed (by the gateway that checked the user, the Origin and the role) -> consumed (deleted by
the console service that opens the session). Both steps are revision-checked writes, so a ticket opens
at most one session however many processes race for it."""

from __future__ import annotations

import msgspec

CONSOLE_TYPES = ("vnc", "serial")
TICKET_MAX_TTL_S = 30.0
CLAIM_TTL_S = 10.0  # a claimed ticket must be consumed this soon (the gateway connects at once)


class Relay(msgspec.Struct, kw_only=True, frozen=True):
    """Where the host's websockify listens (loopback) and which network namespace that loopback is in:
    the gateway proxies to it only when it shares the namespace, else it relays over NATS."""

    port: int = 0
    netns: str = ""


class TicketRecord(msgspec.Struct, kw_only=True):
    user: str
    vm_id: str
    vm_name: str
    host: str
    type: str  # vnc | serial
    issued_at: float
    expires_at: float
    relay: Relay = Relay()
    state: str = "issued"  # issued | claimed
    claimed_at: float = 0.0


class TicketRequest(msgspec.Struct, kw_only=True):
    vm_id: str
    type: str
    user: str


class TicketReply(msgspec.Struct, kw_only=True):
    ticket: str
    expires_at: float
    vm_name: str


class VncTargetRequest(msgspec.Struct, kw_only=True):
    """From a websockify connection process (over the console service's Unix socket): consume this claimed
    ticket and say where the VNC server is."""

    ticket: str


class VncTargetReply(msgspec.Struct, kw_only=True):
    host: str  # an address, or "unix_socket" with the socket path in ``path``
    port: int = 0
    path: str = ""


class VncLookupReply(msgspec.Struct, kw_only=True):
    target: VncTargetReply | None = None
    code: int = 0  # set when refused
    message: str = ""


class AttachRequest(msgspec.Struct, kw_only=True):
    """From the gateway: consume this claimed ticket and open the session on channel ``channel``."""

    ticket: str
    channel: str


class AttachReply(msgspec.Struct, kw_only=True):
    type: str
    vm_name: str
