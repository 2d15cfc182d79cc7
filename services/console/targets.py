"""What a console connects to, read from a domain's live XML (pure: no libvirt calls here)."""

from __future__ import annotations

from urllib.parse import urlsplit

from flint.contracts.common import ServiceError
from flint.contracts.console import CONSOLE_TYPES, VncTargetReply
from flint.xml.domain import Domain

ACTIVE_STATES = ("running", "paused", "blocked", "pmsuspended")


def check_console(xml: str, kind: str, name: str, state: str) -> None:
    """Refuse, with a sentence the user can act on, a console that cannot open."""
    if kind not in CONSOLE_TYPES:
        raise ServiceError(422, f"console type must be one of {', '.join(CONSOLE_TYPES)}", "type")
    if state not in ACTIVE_STATES:
        raise ServiceError(409, f"VM {name!r} is not running (it is {state}): start it to open its console")
    dom = Domain.parse(xml)
    if kind == "vnc":
        vnc_target(dom, name)
    elif not dom.consoles and not dom.serials:
        raise ServiceError(409, f"VM {name!r} has no serial console device; add a <serial> device to use it")


def vnc_target(xml: str | Domain, name: str) -> VncTargetReply:
    """The running VM's VNC server: an address and port, or a Unix socket."""
    dom = xml if isinstance(xml, Domain) else Domain.parse(xml)
    graphics = [g for g in dom.graphics if g.type == "vnc"]
    if not graphics:
        other = ", ".join(sorted({g.type for g in dom.graphics if g.type}))
        hint = f" (it has {other}, which the browser console does not show)" if other else ""
        raise ServiceError(409, f"VM {name!r} has no VNC display{hint}; use its serial console or add a VNC display")
    g = graphics[0]
    if g.listen_socket:
        return VncTargetReply(host="unix_socket", path=g.listen_socket)
    if g.port is None or g.port <= 0:
        raise ServiceError(409, f"VM {name!r} has a VNC display without a port yet; try again in a moment")
    listen = g.listen or "127.0.0.1"
    if listen in ("0.0.0.0", "", "*"):
        listen = "127.0.0.1"
    elif listen in ("::", "[::]"):
        listen = "::1"
    return VncTargetReply(host=listen, port=g.port)


def is_remote_uri(uri: str) -> bool:
    """A libvirt URI naming another machine (qemu+ssh://host/system): its VNC ports are not ours to reach."""
    host = urlsplit(uri).hostname
    return bool(host) and host not in ("localhost", "127.0.0.1", "::1")

