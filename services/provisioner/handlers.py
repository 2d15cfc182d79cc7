"""The provisioner's endpoints: decode, call domain code off the event loop, reply."""

from __future__ import annotations

import structlog

from flint.bus import Endpoint
from flint.contracts.inventory import VMActionReply, VMActionRequest
from flint.service import ServiceContext
from services.provisioner.lifecycle import apply_action

log = structlog.get_logger()


async def setup(ctx: ServiceContext) -> list[Endpoint]:
    async def vm_action(req: VMActionRequest) -> VMActionReply:
        structlog.contextvars.bind_contextvars(vm=req.id)
        state = await ctx.virt.call(apply_action, ctx.virt.conn, req.id, req.action)
        log.info("vm action done", action=req.action, state=state)
        return VMActionReply(id=req.id, action=req.action, state=state)

    return [Endpoint("vm.action", VMActionRequest, vm_action)]
