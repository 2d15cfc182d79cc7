"""Jobs: submitting long work to a host's provisioner (202 + the job) and following it."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get
from litestar.params import Parameter

from flint import bus, subjects
from flint.contracts.common import ServiceError
from flint.contracts.jobs import JOB_STATES, JobSubmit, PublicJob
from gateway.deps import gw


async def submit_job(request: Request, host: str, kind: str, params: dict[str, Any]) -> Response[PublicJob]:
    """Send a job to the host's provisioner, which validates it before anything is made; answer 202."""
    g = gw(request)
    if g.view.is_unreachable(host):
        raise ServiceError(503, f"host {host!r} is unreachable: no heartbeat in the last {subjects.HOST_HEARTBEAT_TTL_S} s")
    job = await bus.request(
        g.nc,
        subjects.request(host, "provisioner", "jobs.submit"),
        JobSubmit(kind=kind, params=params, user=request.user.name),
        PublicJob,
        timeout=30,
    )
    return Response(job, status_code=202, headers={"Location": f"/api/v1/jobs/{job.id}"})


class JobsController(Controller):
    path = "/jobs"
    tags = ["jobs"]

    @get("/")
    async def list_jobs(
        self,
        request: Request,
        host: str | None = None,
        job_state: Annotated[str | None, Parameter(query="state")] = None,
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 200,
    ) -> list[PublicJob]:
        if job_state is not None and job_state not in JOB_STATES:
            raise ServiceError(400, f"state must be one of {', '.join(JOB_STATES)}", "state")
        jobs = [j for j in gw(request).view.jobs.values()
                if (host is None or j.host == host) and (job_state is None or j.state == job_state)]
        jobs.sort(key=lambda j: j.created_at, reverse=True)
        return jobs[:limit]

    @get("/{job_id:str}")
    async def get_job(self, request: Request, job_id: str) -> PublicJob:
        job = gw(request).view.jobs.get(job_id)
        if job is None:
            raise ServiceError(404, f"no job {job_id!r}")
        return job
