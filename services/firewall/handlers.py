"""The firewall service's endpoints: a VM's firewall settings and the host's nwfilters. Rulesets are
written by the gateway into KV; this service follows them (see engine.py)."""

from __future__ import annotations

import structlog

from flint import subjects
from flint.bus import Endpoint
from flint.contracts.common import Empty
from flint.contracts.firewall import NWFilterList, VMFirewall, VMFirewallGet, VMFirewallSet
from flint.service import ServiceContext
from services.firewall.engine import FirewallEngine
from services.firewall.store import RulesetStore


async def setup(ctx: ServiceContext) -> list[Endpoint]:
    store = RulesetStore(await ctx.js.key_value(subjects.KV_FIREWALL))
    engine = FirewallEngine(ctx, store)
    engine.start()

    async def vm_get(req: VMFirewallGet) -> VMFirewall:
        structlog.contextvars.bind_contextvars(vm=req.id)
        return await engine.vm_get(req.id)

    async def vm_set(req: VMFirewallSet) -> VMFirewall:
        structlog.contextvars.bind_contextvars(vm=req.id)
        return await engine.vm_set(req)

    async def nwfilters(_: Empty) -> NWFilterList:
        return await engine.nwfilters()

    return [
        Endpoint("vm.get", VMFirewallGet, vm_get),
        Endpoint("vm.set", VMFirewallSet, vm_set),
        Endpoint("nwfilters.list", Empty, nwfilters),
    ]
