from __future__ import annotations

import msgspec


class AuditRecord(msgspec.Struct, kw_only=True):
    """One change someone asked for, kept in stream FLINT_AUDIT (subject flint.audit.<host>)."""

    ts: float
    user: str  # who (for a failed login: the name that was tried)
    via: str  # session | token | anonymous
    token_id: str | None = None
    remote: str  # from where
    action: str  # "POST /api/v1/vms/{vm_id}/actions"
    target: dict[str, str] = {}  # path parameters: vm_id, host, pool, ...
    status: int  # the HTTP status answered
    result: str  # ok | refused | failed
    job_id: str | None = None
    host: str = ""
