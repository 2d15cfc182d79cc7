"""The NATS side of every process: connect, serve endpoints, request, publish events, streams and KV."""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
import nats
import structlog
from nats.aio.client import Client as NATS
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import DiscardPolicy, KeyValueConfig, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, BucketNotFoundError, NotFoundError
from nats.micro import ServiceConfig, add_service
from nats.micro.service import Request

from flint import subjects
from flint.contracts.common import ErrorReply, ServiceError
from flint.contracts.events import Event

log = structlog.get_logger()

T = TypeVar("T")
ERROR_CODE_HEADER = "Nats-Service-Error-Code"
ERROR_HEADER = "Nats-Service-Error"

_encoder = msgspec.json.Encoder()
_decoders: dict[Any, msgspec.json.Decoder] = {}


def encode(value: Any) -> bytes:
    return _encoder.encode(value)


def decoder(kind: Any) -> msgspec.json.Decoder:
    """Decoders are built once per type and reused."""
    dec = _decoders.get(kind)
    if dec is None:
        dec = _decoders[kind] = msgspec.json.Decoder(kind)
    return dec


def decode(kind: type[T], data: bytes) -> T:
    return decoder(kind).decode(data)


def credential_options(creds_path: str | None) -> dict[str, Any]:
    """user/password (and the CA of a self-signed server) from a credentials file."""
    if not creds_path:
        return {}
    import ssl

    from flint.natsauth import load_credentials

    creds = load_credentials(creds_path)
    options: dict[str, Any] = {"user": creds.user, "password": creds.password}
    if creds.ca:
        options["tls"] = ssl.create_default_context(cafile=creds.ca)
    return options


async def connect(url: str, name: str, creds: str | None = None, **options: Any) -> NATS:
    """Connect, retrying forever with backoff, and reconnect forever after that."""
    options.update(credential_options(creds))

    async def on_disconnect() -> None:
        log.warning("nats disconnected", url=url)

    async def on_reconnect() -> None:
        log.info("nats reconnected", url=url)

    async def on_error(err: Exception) -> None:
        log.warning("nats error", error=str(err))

    delay = 0.2
    while True:
        try:
            return await nats.connect(
                url,
                name=name,
                max_reconnect_attempts=-1,
                reconnect_time_wait=1,
                allow_reconnect=True,
                connect_timeout=2,
                disconnected_cb=on_disconnect,
                reconnected_cb=on_reconnect,
                error_cb=on_error,
                **options,
            )
        except Exception as exc:  # noqa: BLE001 - any failure to connect is retried
            if "authorization" in str(exc).lower():
                log.error("nats refused the credentials", url=url, creds=creds, error=str(exc))
            log.warning("nats connect failed, retrying", url=url, error=str(exc), retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


Handler = Callable[[Any], Awaitable[Any]]


class Endpoint(msgspec.Struct, frozen=True):
    """One verb of a service: its request type and the coroutine that answers it."""

    verb: str
    request_type: Any
    handler: Handler


async def serve(nc: NATS, host: str, service: str, version: str, endpoints: list[Endpoint]):
    """Serve `flint.<host>.<service>.<verb>` for each endpoint as one nats micro service."""
    svc = await add_service(
        nc,
        ServiceConfig(
            name=f"flint-{service}",
            version=version,
            description=f"Flint {service} for host {host}",
            metadata={"host": host},
            queue_group=f"flint-{service}-{host}",
        ),
    )
    for ep in endpoints:
        await svc.add_endpoint(
            name=ep.verb.replace(".", "-"),
            subject=subjects.request(host, service, ep.verb),
            handler=_wrap(ep, host, service),
        )
    return svc


def _wrap(ep: Endpoint, host: str, service: str):
    dec = decoder(ep.request_type)

    async def handle(req: Request) -> None:
        structlog.contextvars.bind_contextvars(subject=req.subject)
        try:
            payload = dec.decode(req.data or b"{}")
        except msgspec.ValidationError as exc:
            await _respond_error(req, ServiceError(400, f"invalid request: {exc}"))
            return
        try:
            result = await ep.handler(payload)
        except ServiceError as exc:
            await _respond_error(req, exc)
            return
        except Exception:  # noqa: BLE001 - logged in full, answered without internals
            log.error("handler failed", verb=ep.verb, traceback=traceback.format_exc())
            await _respond_error(req, ServiceError(500, f"{service} failed on host {host}; see its log"))
            return
        finally:
            structlog.contextvars.unbind_contextvars("subject")
        await req.respond(encode(result) if result is not None else b"{}")

    return handle


async def _respond_error(req: Request, err: ServiceError) -> None:
    body = encode(ErrorReply(code=err.code, message=err.message, field=err.field))
    await req.respond_error(str(err.code), err.message[:1000].replace("\r", " ").replace("\n", " "), data=body)


async def request(nc: NATS, subject: str, payload: Any, reply_type: type[T], timeout: float = 10.0) -> T:
    """Ask a service; its ServiceError comes back as a ServiceError, silence as 503/504."""
    try:
        msg = await nc.request(subject, encode(payload), timeout=timeout)
    except NoRespondersError as exc:
        raise ServiceError(503, f"nothing answers {subject}: the service or its host is down") from exc
    except NatsTimeout as exc:
        raise ServiceError(504, f"{subject} did not answer within {timeout:g} s") from exc
    headers = msg.headers or {}
    if ERROR_CODE_HEADER in headers:
        try:
            err = decode(ErrorReply, msg.data)
            raise ServiceError(err.code, err.message, err.field)
        except msgspec.DecodeError:
            raise ServiceError(int(headers[ERROR_CODE_HEADER]), headers.get(ERROR_HEADER, "")) from None
    return decode(reply_type, msg.data)


class EventPublisher:
    """Publishes events into FLINT_EVENTS (acknowledged) and live-only samples on plain subjects."""

    def __init__(self, nc: NATS, host: str):
        self.nc = nc
        self.js = nc.jetstream()
        self.host = host

    async def publish(self, kind: str, ident: str, type_: str, data: Any = None) -> None:
        evt = Event(host=self.host, kind=kind, id=ident, type=type_, ts=time.time(), data=data)
        await self.js.publish(subjects.event(self.host, kind, ident), encode(evt))

    async def publish_live(self, kind: str, ident: str, type_: str, data: Any = None) -> None:
        """Not kept in the stream: high-rate samples that are only worth seeing now."""
        evt = Event(host=self.host, kind=kind, id=ident, type=type_, ts=time.time(), data=data)
        await self.nc.publish(subjects.live(self.host, kind, ident), encode(evt))


async def ensure_streams(nc: NATS, replicas: int = 1) -> None:
    """Create the streams and KV buckets every part relies on; safe to call from every process."""
    js = nc.jetstream()
    streams = [
        StreamConfig(
            name=subjects.EVENTS_STREAM,
            subjects=[subjects.EVENTS_ALL],
            retention=RetentionPolicy.LIMITS,
            max_age=subjects.EVENTS_MAX_AGE_S,
            max_bytes=512 * 1024 * 1024,
            discard=DiscardPolicy.OLD,
            storage=StorageType.FILE,
            num_replicas=replicas,
        ),
        StreamConfig(
            name=subjects.JOBS_STREAM,
            subjects=[subjects.JOBS_ALL],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            num_replicas=replicas,
        ),
        StreamConfig(
            name=subjects.AUDIT_STREAM,
            subjects=[subjects.AUDIT_ALL],
            retention=RetentionPolicy.LIMITS,
            max_age=365 * 24 * 3600,
            storage=StorageType.FILE,
            num_replicas=replicas,
        ),
    ]
    for cfg in streams:
        try:
            await js.stream_info(cfg.name)
            continue  # exists: whoever made it keeps it (agents may not change streams)
        except NotFoundError:
            pass
        try:
            await js.add_stream(cfg)
        except BadRequestError:
            await js.update_stream(cfg)
    buckets = [
        KeyValueConfig(bucket=subjects.KV_INVENTORY, storage=StorageType.FILE, replicas=replicas),
        KeyValueConfig(bucket=subjects.KV_HOSTS, storage=StorageType.FILE, replicas=replicas),
        KeyValueConfig(bucket=subjects.KV_JOBS, storage=StorageType.FILE, history=5, replicas=replicas),
        KeyValueConfig(bucket=subjects.KV_CONSOLE, storage=StorageType.FILE, ttl=60, replicas=replicas),
        KeyValueConfig(bucket=subjects.KV_AUTH, storage=StorageType.FILE, history=5, replicas=replicas),
        KeyValueConfig(
            bucket=subjects.KV_SESSIONS,
            storage=StorageType.FILE,
            ttl=subjects.SESSION_ABSOLUTE_TTL_S,
            replicas=replicas,
        ),
        KeyValueConfig(bucket=subjects.KV_FIREWALL, storage=StorageType.FILE, history=10, replicas=replicas),
    ]
    for kv in buckets:
        try:
            await js.key_value(kv.bucket)
        except BucketNotFoundError:
            await js.create_key_value(kv)
