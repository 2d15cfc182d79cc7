"""Durable jobs: submitted on FLINT_JOBS, recorded in KV flint-jobs, run step by step.

Each step is idempotent and recorded when done, so a provisioner killed at any point picks the job up
again after redelivery and carries on from the step it was in. A step that fails for good (a
ServiceError, or too many attempts) rolls the finished steps back in reverse order: nothing half-made
is left behind."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import structlog
from nats.js.api import AckPolicy, ConsumerConfig
from nats.js.errors import KeyNotFoundError

from flint import bus, subjects
from flint.contracts.common import ServiceError
from flint.contracts.jobs import Job, JobRef, JobSubmit, public_view
from flint.service import ServiceContext

log = structlog.get_logger()
ACK_WAIT_S = 10.0  # how soon a job whose provisioner died is redelivered
HEARTBEAT_S = 3.0
MAX_ATTEMPTS = 3
PARALLEL_JOBS = 4
# Crash-recovery tests name a step ("vm.delete:undefine") after which the first attempt dies like a kill -9.
_CRASH_AFTER_STEP = os.environ.get("FLINT_TEST_CRASH_AFTER_STEP", "")
_job_dec = msgspec.json.Decoder(Job)
_ref_dec = msgspec.json.Decoder(JobRef)


class TransientError(Exception):
    """Try the step again later (libvirt reconnecting, a host briefly away); not a reason to roll back."""


@dataclass
class JobRun:
    """What a step sees: the service, the job, and a way to report progress."""

    ctx: ServiceContext
    job: Job
    engine: JobEngine

    @property
    def params(self) -> dict[str, Any]:
        return self.job.params

    @property
    def data(self) -> dict[str, Any]:
        """Saved with the record after every step: what the step made (names to find again, to undo)."""
        return self.job.state_data

    async def progress(self, percent: float, message: str = "") -> None:
        self.job.progress = max(self.job.progress, min(percent, 100.0))
        if message:
            self.job.message = message
        await self.engine.save(self.job)

    async def save(self) -> None:
        await self.engine.save(self.job)


StepFn = Callable[[JobRun], Awaitable[None]]


@dataclass(frozen=True)
class Step:
    name: str
    run: StepFn
    undo: StepFn | None = None
    weight: float = 1.0  # share of the progress bar


Validate = Callable[[ServiceContext, dict[str, Any]], Awaitable[tuple[dict[str, Any], str]]]


@dataclass(frozen=True)
class JobKind:
    """A kind of job: how its request is checked before anything is made, and its steps."""

    name: str
    validate: Validate  # -> (normalised params with no secrets in clear, target label); raises ServiceError 4xx
    steps: list[Step]


@dataclass
class JobEngine:
    ctx: ServiceContext
    kinds: dict[str, JobKind]
    _kv: Any = None
    _tasks: set[asyncio.Task] = field(default_factory=set)

    async def start(self) -> None:
        js = self.ctx.js
        self._kv = await js.key_value(subjects.KV_JOBS)
        self.ctx.spawn(self._consume(), "jobs")

    # submission (a request handler calls this)
    async def submit(self, req: JobSubmit) -> Job:
        kind = self.kinds.get(req.kind)
        if kind is None:
            raise ServiceError(400, f"unknown job kind {req.kind!r}", "kind")
        params, target = await kind.validate(self.ctx, req.params)
        now = time.time()
        job = Job(
            id=secrets.token_hex(8),
            host=self.ctx.host,
            kind=req.kind,
            params=params,
            target=target,
            user=req.user,
            created_at=now,
            updated_at=now,
            step=kind.steps[0].name if kind.steps else "",
            message="queued",
        )
        await self.save(job)
        await self.ctx.js.publish(
            subjects.job(self.ctx.host), bus.encode(JobRef(id=job.id, host=job.host)), headers={"Nats-Msg-Id": job.id}
        )
        return job

    async def get(self, job_id: str) -> Job | None:
        try:
            entry = await self._kv.get(f"{self.ctx.host}.{job_id}")
        except KeyNotFoundError:
            return None
        return _job_dec.decode(entry.value) if entry.value else None

    async def save(self, job: Job) -> None:
        job.updated_at = time.time()
        await self._kv.put(f"{job.host}.{job.id}", bus.encode(job))
        await self.ctx.events.publish("job", job.id, job.state, public_view(job))

    # running
    async def _consume(self) -> None:
        host = self.ctx.host
        sub = await self.ctx.js.pull_subscribe(
            subjects.job(host),
            durable=subjects.jobs_consumer(host),
            stream=subjects.JOBS_STREAM,
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=ACK_WAIT_S, max_ack_pending=64),
        )
        slots = asyncio.Semaphore(PARALLEL_JOBS)
        while True:
            await slots.acquire()
            try:
                msgs = await sub.fetch(1, timeout=5)
            except TimeoutError:
                slots.release()
                continue
            except Exception as exc:  # noqa: BLE001 - NATS hiccup: try again shortly
                slots.release()
                log.warning("job fetch failed", error=repr(exc))
                await asyncio.sleep(1)
                continue
            task = asyncio.create_task(self._handle(msgs[0], slots))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _handle(self, msg, slots: asyncio.Semaphore) -> None:
        heartbeat = asyncio.create_task(_keep_alive(msg))
        try:
            ref = _ref_dec.decode(msg.data)
            job = await self.get(ref.id)
            if job is None or job.state in ("succeeded", "failed"):
                await msg.ack()
                return
            structlog.contextvars.bind_contextvars(job=job.id, job_kind=job.kind)
            outcome = await self.execute(job)
            if outcome == "retry":
                await msg.nak(delay=5)
            else:
                await msg.ack()
        except Exception:  # noqa: BLE001 - the message is redelivered after ack_wait
            log.exception("job handling failed")
        finally:
            heartbeat.cancel()
            structlog.contextvars.unbind_contextvars("job", "job_kind")
            slots.release()

    async def execute(self, job: Job) -> str:
        """Run the job's remaining steps. Returns "done" (succeeded or rolled back) or "retry"."""
        kind = self.kinds.get(job.kind)
        if kind is None:
            job.state, job.error = "failed", f"this provisioner does not know job kind {job.kind!r}"
            await self.save(job)
            return "done"
        job.attempts += 1
        if job.attempts > MAX_ATTEMPTS:
            return await self._roll_back(kind, job, f"gave up after {MAX_ATTEMPTS} attempts at step {job.step!r}")
        job.state = "running"
        await self.save(job)
        run = JobRun(self.ctx, job, self)
        total = sum(s.weight for s in kind.steps) or 1.0
        finished = sum(s.weight for s in kind.steps if s.name in job.done_steps)
        for step in kind.steps:
            if step.name in job.done_steps:
                continue
            job.step = step.name
            job.progress = max(job.progress, 100.0 * finished / total)
            await self.save(job)
            try:
                await step.run(run)
            except TransientError as exc:
                job.message = f"waiting to retry {step.name}: {exc}"
                job.attempts -= 1  # not the job's fault
                await self.save(job)
                return "retry"
            except ServiceError as exc:
                if exc.code == 503:
                    job.message = f"waiting to retry {step.name}: {exc.message}"
                    job.attempts -= 1
                    await self.save(job)
                    return "retry"
                return await self._roll_back(kind, job, exc.message)
            except Exception as exc:  # noqa: BLE001 - reported to the user in words, logged in full
                log.exception("job step failed", step=step.name)
                return await self._roll_back(kind, job, f"{step.name} failed: {exc}")
            job.done_steps.append(step.name)
            finished += step.weight
            job.progress = 100.0 * finished / total
            await self.save(job)
            if _CRASH_AFTER_STEP == f"{job.kind}:{step.name}" and job.attempts == 1:
                os._exit(137)
        job.state, job.progress, job.step, job.message = "succeeded", 100.0, "", "done"
        await self.save(job)
        return "done"

    async def _roll_back(self, kind: JobKind, job: Job, reason: str) -> str:
        run = JobRun(self.ctx, job, self)
        job.message = f"rolling back: {reason}"
        await self.save(job)
        problems = []
        for step in reversed(kind.steps):
            if step.undo is None:
                continue
            # Undo the finished steps and the one that failed (it may have made something before failing).
            if step.name in job.done_steps or step.name == job.step:
                try:
                    await step.undo(run)
                except Exception as exc:  # noqa: BLE001 - keep undoing the rest; say what is left
                    log.exception("undo failed", step=step.name)
                    problems.append(f"{step.name}: {exc}")
        job.state = "failed"
        job.error = reason
        job.rolled_back = not problems
        job.message = "rolled back" if not problems else f"rollback incomplete: {'; '.join(problems)}"
        await self.save(job)
        return "done"


async def _keep_alive(msg) -> None:
    """Tell JetStream we are still working, so a long step is not redelivered to someone else."""
    while True:
        await asyncio.sleep(HEARTBEAT_S)
        try:
            await msg.in_progress()
        except Exception:  # noqa: BLE001 - the next beat may get through
            pass
