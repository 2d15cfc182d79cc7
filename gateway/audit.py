"""An audit record for every change: written after the response, from what the request and response say."""

from __future__ import annotations

import asyncio
import time

import msgspec
import structlog
from nats.js.api import ConsumerConfig, DeliverPolicy

from flint import bus, subjects
from flint.contracts.audit import AuditRecord

log = structlog.get_logger()
SAFE = {"GET", "HEAD", "OPTIONS"}
_pending: set[asyncio.Task] = set()
_dec = msgspec.json.Decoder(AuditRecord)


def record_from(scope, status: int, headers: list[tuple[bytes, bytes]]) -> AuditRecord | None:
    if scope.get("type") != "http" or scope.get("method") in SAFE:
        return None
    principal = scope.get("user")
    user = getattr(principal, "name", None) or scope.get("audit_user") or "anonymous"
    via = getattr(principal, "via", "anonymous")
    job_id = None
    for key, value in headers:
        if key.lower() == b"location" and value.startswith(b"/api/v1/jobs/"):
            job_id = value.decode().rsplit("/", 1)[-1]
    params = {k: str(v) for k, v in (scope.get("path_params") or {}).items()}
    client = scope.get("client") or ("", 0)
    result = "ok" if status < 400 else ("refused" if status < 500 else "failed")
    return AuditRecord(
        ts=time.time(),
        user=str(user),
        via=via,
        token_id=getattr(principal, "token_id", None),
        remote=str(client[0]),
        action=f"{scope['method']} {scope.get('path_template') or scope.get('path')}",
        target=params,
        status=status,
        result=result,
        job_id=job_id,
        host=params.get("host", ""),
    )


def publish_later(nc, rec: AuditRecord) -> None:
    """Off the response path; a failure to audit is logged loudly, never silent."""

    async def publish() -> None:
        try:
            await nc.jetstream().publish(subjects.audit(rec.host or "gateway"), bus.encode(rec))
        except Exception as exc:  # noqa: BLE001
            log.error("audit record lost", error=repr(exc), action=rec.action, user=rec.user)

    task = asyncio.create_task(publish())
    _pending.add(task)
    task.add_done_callback(_pending.discard)


async def read(nc, since: float | None, user: str | None, limit: int) -> list[AuditRecord]:
    """Newest first. Reads the stream from `since` (default: the last 7 days)."""
    js = nc.jetstream()
    start = since if since is not None else time.time() - 7 * 86400
    from datetime import UTC, datetime

    info = await js.stream_info(subjects.AUDIT_STREAM)
    if info.state.messages == 0:
        return []
    sub = await js.subscribe(
        subjects.AUDIT_ALL,
        stream=subjects.AUDIT_STREAM,
        ordered_consumer=True,
        config=ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_TIME,
            opt_start_time=datetime.fromtimestamp(start, UTC).isoformat().replace("+00:00", "Z"),
        ),
    )
    records: list[AuditRecord] = []
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=0.5)
            except Exception:  # noqa: BLE001 - TimeoutError: nothing more to read
                break
            rec = _dec.decode(msg.data)
            if user is None or rec.user == user:
                records.append(rec)
            if msg.metadata.num_pending == 0:
                break
    finally:
        await sub.unsubscribe()
    return list(reversed(records))[:limit]
