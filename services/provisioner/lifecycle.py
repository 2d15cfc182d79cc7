"""VM lifecycle actions: which libvirt call each one is, and when it makes sense."""

from __future__ import annotations

import libvirt

from flint.contracts.common import ServiceError
from flint.virt.connection import libvirt_error

STATE_NAMES = {
    libvirt.VIR_DOMAIN_NOSTATE: "nostate",
    libvirt.VIR_DOMAIN_RUNNING: "running",
    libvirt.VIR_DOMAIN_BLOCKED: "blocked",
    libvirt.VIR_DOMAIN_PAUSED: "paused",
    libvirt.VIR_DOMAIN_SHUTDOWN: "shutdown",
    libvirt.VIR_DOMAIN_SHUTOFF: "shutoff",
    libvirt.VIR_DOMAIN_CRASHED: "crashed",
    libvirt.VIR_DOMAIN_PMSUSPENDED: "pmsuspended",
}

# action -> (states it applies to, what it calls)
ACTIONS: dict[str, tuple[set[str], str]] = {
    "start": ({"shutoff", "crashed"}, "create"),
    "shutdown": ({"running", "blocked", "paused"}, "shutdown"),
    "reboot": ({"running", "blocked"}, "reboot"),
    "reset": ({"running", "blocked", "paused"}, "reset"),
    "poweroff": ({"running", "blocked", "paused", "shutdown", "crashed", "pmsuspended"}, "destroy"),
    "pause": ({"running", "blocked"}, "suspend"),
    "resume": ({"paused"}, "resume"),
}


def state_name(dom: libvirt.virDomain) -> str:
    return STATE_NAMES.get(dom.state()[0], "nostate")


def apply_action(conn: libvirt.virConnect, vm_id: str, action: str) -> str:
    """Run one action on a domain (blocking; call in a thread). Returns the state afterwards."""
    if action not in ACTIONS:
        raise ServiceError(400, f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}", "action")
    try:
        dom = conn.lookupByUUIDString(vm_id)
    except libvirt.libvirtError as exc:
        raise libvirt_error(exc, f"VM {vm_id}") from exc
    allowed, method = ACTIONS[action]
    current = state_name(dom)
    if current not in allowed:
        raise ServiceError(409, f"cannot {action} VM {dom.name()!r} while it is {current}")
    try:
        if method == "reboot":
            dom.reboot(0)
        elif method == "reset":
            dom.reset(0)
        else:
            getattr(dom, method)()
    except libvirt.libvirtError as exc:
        raise libvirt_error(exc, f"{action} VM {dom.name()!r}") from exc
    return state_name(dom)
