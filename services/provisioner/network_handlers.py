"""The provisioner's network endpoints (flint.<host>.provisioner.<verb>): thin, blocking work off the loop."""

from __future__ import annotations

from flint.bus import Endpoint
from flint.contracts.networks import (
    InterfaceList,
    InterfacesList,
    NetworkAction,
    NetworkCreate,
    NetworkDelete,
    NetworkDeleted,
    NetworkDetail,
    NetworkRef,
    NetworkUpdate,
)
from flint.service import ServiceContext
from services.provisioner import host_interfaces, networks


def network_endpoints(ctx: ServiceContext) -> list[Endpoint]:
    virt = ctx.virt

    async def get(req: NetworkRef) -> NetworkDetail:
        return await virt.call(networks.get_network, virt.conn, ctx.host, req.name)

    async def create(req: NetworkCreate) -> NetworkDetail:
        return await virt.call(networks.create_network, virt.conn, virt.uri, ctx.host, req)

    async def update(req: NetworkUpdate) -> NetworkDetail:
        return await virt.call(networks.update_network, virt.conn, virt.uri, ctx.host, req)

    async def delete(req: NetworkDelete) -> NetworkDeleted:
        return await virt.call(networks.delete_network, virt.conn, req)

    async def action(req: NetworkAction) -> NetworkDetail:
        return await virt.call(networks.network_action, virt.conn, ctx.host, req)

    async def interfaces(_: InterfacesList) -> InterfaceList:
        found = await virt.call(host_interfaces.list_interfaces, virt.conn, virt.uri)
        return InterfaceList(host=ctx.host, interfaces=found)

    return [
        Endpoint("network.get", NetworkRef, get),
        Endpoint("network.create", NetworkCreate, create),
        Endpoint("network.update", NetworkUpdate, update),
        Endpoint("network.delete", NetworkDelete, delete),
        Endpoint("network.action", NetworkAction, action),
        Endpoint("interfaces.list", InterfacesList, interfaces),
    ]
