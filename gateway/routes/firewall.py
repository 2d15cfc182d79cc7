"""Firewall routes: rulesets (global, KV flint-firewall, revision-checked), macros, a VM's firewall
(sent to the VM host's firewall service) and a host's nwfilters (read-only)."""

from __future__ import annotations

import re

from litestar import Controller, Request, Response, delete, get, post, put
from litestar.datastructures import State

from flint import bus, subjects
from flint.contracts.common import Empty, ServiceError
from flint.contracts.firewall import (
    Macro,
    NWFilterList,
    Ruleset,
    RulesetDoc,
    RulesetIn,
    Usage,
    VMFirewall,
    VMFirewallGet,
    VMFirewallSet,
    VMFirewallSettings,
    VMRef,
)
from gateway.deps import gw
from gateway.routes.inventory import _known_host, _vm, require_up
from services.firewall.macros import MACROS
from services.firewall.store import RulesetStore
from services.firewall.validate import check_ruleset_name, normalize_ruleset

_IF_MATCH = re.compile(r'^\s*(?:W/)?"?(\d+)"?\s*$')


async def _store(request: Request) -> RulesetStore:
    state: State = request.app.state
    store = getattr(state, "firewall_store", None)
    if store is None:
        store = RulesetStore(await gw(request).nc.jetstream().key_value(subjects.KV_FIREWALL))
        state.firewall_store = store
    return store


def _if_match(request: Request, required: bool) -> int | None:
    raw = request.headers.get("if-match")
    if raw is None:
        if required:
            raise ServiceError(428, "changing a ruleset needs If-Match: <revision> (the revision GET answers, also "
                                    "in its ETag), so that a concurrent edit is not overwritten", "If-Match")
        return None
    match = _IF_MATCH.match(raw)
    if not match:
        raise ServiceError(400, f"If-Match {raw!r} is not a ruleset revision (a number, e.g. If-Match: \"12\")",
                           "If-Match")
    return int(match.group(1))


def _users(request: Request, usages: list[Usage], name: str) -> list[VMRef]:
    """The VMs that use ruleset ``name``. An entry whose VM the inventory says is gone is ignored;
    one on a host the inventory does not know yet still counts (better refuse than break a VM)."""
    view = gw(request).view
    hosts = set(view.host_names())
    users = []
    for usage in usages:
        if name not in usage.rulesets:
            continue
        vm = view.vms.get(usage.id)
        if vm is None and usage.host in hosts and view.ready.is_set():
            continue
        users.append(VMRef(host=usage.host, id=usage.id, name=vm.name if vm else usage.name))
    return sorted(users, key=lambda r: (r.host, r.name))


def _public(doc: RulesetDoc, revision: int, users: list[VMRef]) -> Ruleset:
    return Ruleset(name=doc.name, description=doc.description, rules=doc.rules, created_at=doc.created_at,
                   updated_at=doc.updated_at, updated_by=doc.updated_by, revision=revision, used_by=users)


def _etag(revision: int) -> dict[str, str]:
    return {"ETag": f'"{revision}"'}


class FirewallController(Controller):
    path = "/firewall"
    tags = ["firewall"]

    @get("/rulesets")
    async def list_rulesets(self, request: Request) -> list[Ruleset]:
        store = await _store(request)
        usages = await store.usages()
        return [_public(doc, rev, _users(request, usages, doc.name)) for doc, rev in await store.list()]

    @post("/rulesets", status_code=201)
    async def create_ruleset(self, request: Request, data: RulesetIn) -> Response[Ruleset]:
        name, description, rules = normalize_ruleset(data)
        doc, revision = await (await _store(request)).create(name, description, rules, request.user.name)
        return Response(_public(doc, revision, []), status_code=201,
                        headers={**_etag(revision), "Location": f"/api/v1/firewall/rulesets/{name}"})

    @get("/rulesets/{name:str}")
    async def get_ruleset(self, request: Request, name: str) -> Response[Ruleset]:
        check_ruleset_name(name)
        store = await _store(request)
        found = await store.get(name)
        if found is None:
            raise ServiceError(404, f"no ruleset named {name!r}")
        doc, revision = found
        return Response(_public(doc, revision, _users(request, await store.usages(), name)), headers=_etag(revision))

    @put("/rulesets/{name:str}")
    async def update_ruleset(self, request: Request, name: str, data: RulesetIn) -> Response[Ruleset]:
        check_ruleset_name(name)
        revision = _if_match(request, required=True)
        _, description, rules = normalize_ruleset(data, name)
        store = await _store(request)
        doc, new_revision = await store.update(name, description, rules, request.user.name, revision)
        return Response(_public(doc, new_revision, _users(request, await store.usages(), name)),
                        headers=_etag(new_revision))

    @delete("/rulesets/{name:str}", status_code=204)
    async def delete_ruleset(self, request: Request, name: str) -> None:
        check_ruleset_name(name)
        revision = _if_match(request, required=False)
        store = await _store(request)
        users = _users(request, await store.usages(), name)
        if users:
            listed = ", ".join(f"{u.host}/{u.name or u.id}" for u in users)
            raise ServiceError(409, f"ruleset {name!r} is in use by {len(users)} VM(s): {listed}. "
                                    "Take it off these VMs first")
        await store.delete(name, revision)

    @get("/macros")
    async def macros(self) -> list[Macro]:
        return MACROS


class VMFirewallController(Controller):
    path = "/vms/{vm_id:str}/firewall"
    tags = ["firewall"]

    @get("/")
    async def get_vm_firewall(self, request: Request, vm_id: str) -> VMFirewall:
        vm = _vm(request, vm_id)
        require_up(request, vm.host)
        return await bus.request(gw(request).nc, subjects.request(vm.host, "firewall", "vm.get"),
                                 VMFirewallGet(id=vm_id), VMFirewall, timeout=30)

    @put("/")
    async def set_vm_firewall(self, request: Request, vm_id: str, data: VMFirewallSettings) -> VMFirewall:
        vm = _vm(request, vm_id)
        require_up(request, vm.host)
        return await bus.request(gw(request).nc, subjects.request(vm.host, "firewall", "vm.set"),
                                 VMFirewallSet(id=vm_id, settings=data, user=request.user.name), VMFirewall,
                                 timeout=60)


@get("/hosts/{host:str}/nwfilters", tags=["firewall"])
async def host_nwfilters(request: Request, host: str) -> NWFilterList:
    _known_host(request, host)
    require_up(request, host)
    return await bus.request(gw(request).nc, subjects.request(host, "firewall", "nwfilters.list"), Empty(),
                             NWFilterList, timeout=30)
