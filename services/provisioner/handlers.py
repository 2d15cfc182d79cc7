"""The provisioner's endpoints: decode, call domain code off the event loop, reply."""

from __future__ import annotations

import structlog

from flint.bus import Endpoint
from flint.contracts.common import ServiceError
from flint.contracts.inventory import VMActionReply, VMActionRequest
from flint.contracts.jobs import JobGet, JobSubmit, PublicJob, public_view
from flint.service import ServiceContext
from services.provisioner.jobs import JobEngine
from services.provisioner.kinds import job_kinds
from services.provisioner.lifecycle import apply_action
from services.provisioner.network_handlers import network_endpoints
from services.provisioner.storage_handlers import storage_endpoints
from services.provisioner.vm_edit_handlers import vm_edit_endpoints

log = structlog.get_logger()


async def setup(ctx: ServiceContext) -> list[Endpoint]:
    engine = JobEngine(ctx, job_kinds())
    await engine.start()

    async def vm_action(req: VMActionRequest) -> VMActionReply:
        structlog.contextvars.bind_contextvars(vm=req.id)
        state = await ctx.virt.call(apply_action, ctx.virt.conn, req.id, req.action)
        log.info("vm action done", action=req.action, state=state)
        return VMActionReply(id=req.id, action=req.action, state=state)

    async def submit(req: JobSubmit) -> PublicJob:
        job = await engine.submit(req)
        log.info("job submitted", job=job.id, kind=job.kind, target=job.target, user=job.user)
        return public_view(job)

    async def get(req: JobGet) -> PublicJob:
        job = await engine.get(req.id)
        if job is None:
            raise ServiceError(404, f"no job {req.id!r} on host {ctx.host}")
        return public_view(job)

    return [
        Endpoint("vm.action", VMActionRequest, vm_action),
        Endpoint("jobs.submit", JobSubmit, submit),
        Endpoint("jobs.get", JobGet, get),
        *storage_endpoints(ctx),
        *network_endpoints(ctx),
        *vm_edit_endpoints(ctx),
    ]
