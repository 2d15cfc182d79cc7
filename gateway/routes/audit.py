from __future__ import annotations

from typing import Annotated

from litestar import Request, get
from litestar.params import Parameter

from flint.contracts.audit import AuditRecord
from gateway import audit
from gateway.deps import gw


@get("/audit", tags=["audit"])
async def audit_log(
    request: Request,
    since: Annotated[float | None, Parameter(description="unix time; default: the last 7 days")] = None,
    user: str | None = None,
    limit: Annotated[int, Parameter(ge=1, le=5000)] = 500,
) -> list[AuditRecord]:
    """Who changed what, from where, with what result: newest first."""
    return await audit.read(gw(request).nc, since, user, limit)
