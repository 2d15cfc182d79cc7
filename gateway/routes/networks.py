"""Virtual networks and host interfaces of a host: requests to its provisioner.

The list (GET /hosts/{host}/networks) is served from the inventory view in routes/inventory.py; one
network's full definition, and every change, go to the host. After a change the host's inventory is
asked to re-read the network, so the list and every browser show it at once (libvirt raises no event for
an autostart change).

Roles (gateway/authz.py): reads are viewer; start/stop/autostart are operator; creating, editing and
deleting networks are admin, because they act on the host itself (bridges, firewall NAT rules, DHCP).
"""

from __future__ import annotations

from typing import Any

import msgspec
import structlog
from litestar import Controller, Request, delete, get, post, put

from flint import bus, subjects
from flint.contracts.common import Empty, ServiceError
from flint.contracts.inventory import InventoryRefresh
from flint.contracts.networks import (
    Action,
    HostInterface,
    InterfaceList,
    InterfacesList,
    NetworkAction,
    NetworkCreate,
    NetworkDelete,
    NetworkDeleted,
    NetworkDetail,
    NetworkRef,
    NetworkSpec,
    NetworkUpdate,
)
from gateway.deps import gw

log = structlog.get_logger()
TIMEOUT_S = 60.0  # starting a NAT network runs dnsmasq and firewall rules; usually well under a second


class ActionBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    action: Action
    force: bool = False


def _host_ok(request: Request, host: str) -> None:
    g = gw(request)
    if host not in g.view.host_names() and host != g.settings.host:
        raise ServiceError(404, f"no host named {host!r}")
    if g.view.is_unreachable(host):
        raise ServiceError(503, f"host {host!r} is unreachable: no heartbeat in the last {subjects.HOST_HEARTBEAT_TTL_S} s")


async def _ask(request: Request, host: str, verb: str, payload: Any, reply: Any) -> Any:
    _host_ok(request, host)
    return await bus.request(gw(request).nc, subjects.request(host, "provisioner", verb), payload, reply, TIMEOUT_S)


async def _changed(request: Request, host: str, name: str) -> None:
    """Have the host's inventory re-read the network now; the periodic resync covers a failure here."""
    try:
        await bus.request(gw(request).nc, subjects.request(host, "inventory", "refresh"),
                          InventoryRefresh(kind="network", id=name), Empty, timeout=5)
    except Exception as exc:  # noqa: BLE001 - the change is done; only the list may lag until the resync
        log.info("inventory refresh after a network change failed", network=name, reason=str(exc))


class NetworksController(Controller):
    path = "/hosts/{host:str}"
    tags = ["networks"]

    @post("/networks", status_code=201)
    async def create_network(self, request: Request, host: str, data: NetworkCreate) -> NetworkDetail:
        detail = await _ask(request, host, "network.create", data, NetworkDetail)
        await _changed(request, host, detail.name)
        return detail

    @get("/networks/{name:str}")
    async def get_network(self, request: Request, host: str, name: str) -> NetworkDetail:
        return await _ask(request, host, "network.get", NetworkRef(name=name), NetworkDetail)

    @put("/networks/{name:str}", status_code=200)
    async def update_network(self, request: Request, host: str, name: str, data: NetworkSpec) -> NetworkDetail:
        """The whole definition (as in POST, without name/start/autostart). A running network keeps running
        as it was until it is restarted: `pending_restart` says when that is needed."""
        req = NetworkUpdate(name=name, **msgspec.structs.asdict(data))
        detail = await _ask(request, host, "network.update", req, NetworkDetail)
        await _changed(request, host, name)
        return detail

    @delete("/networks/{name:str}", status_code=200)
    async def delete_network(self, request: Request, host: str, name: str, force: bool = False) -> NetworkDeleted:
        done = await _ask(request, host, "network.delete", NetworkDelete(name=name, force=force), NetworkDeleted)
        await _changed(request, host, name)
        return done

    @post("/networks/{name:str}/actions", status_code=200)
    async def network_action(self, request: Request, host: str, name: str, data: ActionBody) -> NetworkDetail:
        req = NetworkAction(name=name, action=data.action, force=data.force)
        detail = await _ask(request, host, "network.action", req, NetworkDetail)
        await _changed(request, host, name)
        return detail

    @get("/interfaces")
    async def interfaces(self, request: Request, host: str) -> list[HostInterface]:
        found = await _ask(request, host, "interfaces.list", InterfacesList(), InterfaceList)
        return found.interfaces
