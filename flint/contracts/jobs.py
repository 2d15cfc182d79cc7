"""Long work as durable jobs: what a job record holds, how one is submitted, and what it answers."""

from __future__ import annotations

from typing import Any

import msgspec

JOB_STATES = ("queued", "running", "succeeded", "failed")


class Job(msgspec.Struct, kw_only=True):
    """The record in KV flint-jobs (key <host>.<id>), published as kind "job" events on every change."""

    id: str
    host: str
    kind: str  # vm.create, vm.delete, vm.clone, volume.import, ...
    state: str = "queued"
    progress: float = 0.0  # percent
    step: str = ""
    message: str = ""
    error: str | None = None
    rolled_back: bool = False
    result: dict[str, Any] = {}
    target: str = ""  # what it acts on, for lists: a VM name, pool/volume, ...
    user: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0
    attempts: int = 0
    # Progress bookkeeping the steps read back after a redelivery: which steps finished and what they made.
    done_steps: list[str] = []
    state_data: dict[str, Any] = {}
    params: dict[str, Any] = {}


class JobSubmit(msgspec.Struct, kw_only=True):
    kind: str
    params: dict[str, Any]
    user: str = ""


class JobRef(msgspec.Struct, kw_only=True):
    """What goes on stream FLINT_JOBS: only the id; the record in KV is the truth."""

    id: str
    host: str


class PublicJob(msgspec.Struct, kw_only=True):
    id: str
    host: str
    kind: str
    state: str
    progress: float
    step: str
    message: str
    error: str | None
    rolled_back: bool
    result: dict[str, Any]
    target: str
    user: str
    created_at: float
    updated_at: float


class JobGet(msgspec.Struct, kw_only=True):
    id: str


def public_view(job: Job) -> PublicJob:
    """What users and events see: no parameters (they may hold secrets) and no bookkeeping."""
    return PublicJob(
        id=job.id, host=job.host, kind=job.kind, state=job.state, progress=round(job.progress, 1), step=job.step,
        message=job.message, error=job.error, rolled_back=job.rolled_back, result=job.result, target=job.target,
        user=job.user, created_at=job.created_at, updated_at=job.updated_at,
    )
