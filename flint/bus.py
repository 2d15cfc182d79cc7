"""The NATS side of every process: connect, serve endpoints, request, publish events, streams and KV."""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, TypeVar

import msgspec
import structlog
from nats.aio.client import Client as NATS
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext, JetStreamManager
from nats.js.api import DiscardPolicy, KeyValueConfig, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NoStreamResponseError, NotFoundError, ServiceUnavailableError
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


FAILOVER_S = 20.0  # how long a JetStream write or API call is retried while a cluster elects new leaders
ORDERED_HEARTBEAT_S = 1.0  # idle heartbeat of ordered consumers: two missed and the consumer is recreated


def _idempotent(api_subject: str) -> bool:
    """JetStream API calls that may be sent again when the first got no answer (it may have landed)."""
    # A nameless consumer create (ordered subscriptions) resent after silence may leave a second
    # ephemeral consumer behind if the first landed: churn the ordered subscription recovers from by a
    # sequence reset, while not resending it failed whole event feeds after a failover.
    return not any(f".{verb}." in api_subject for verb in ("DELETE", "PURGE", "SNAPSHOT", "RESTORE"))


class _FailoverApi:
    """JetStream API calls retried while a cluster elects new leaders: on 503 (no leader, no responders)
    always; on silence only when sending again is harmless (info, create with the same config, get)."""

    async def _api_request(self, req_subject: str, req: bytes = b"", timeout: float = 5) -> dict[str, Any]:
        retry_on = (ServiceUnavailableError, NatsTimeout) if _idempotent(req_subject) else (ServiceUnavailableError,)
        return await _retried(lambda: super(_FailoverApi, self)._api_request(req_subject, req, timeout), retry_on)


class _FailoverManager(_FailoverApi, JetStreamManager):
    pass


class _FailoverJetStream(_FailoverApi, JetStreamContext):
    """JetStream that rides out a NATS cluster failover. When a node dies, the streams it led have no
    leader for a few seconds (raft election) and writes meet "no responders" or time out: publishes (KV
    puts go through here too) are retried for up to FAILOVER_S with a Nats-Msg-Id (a caller's own, such as
    a job id, is kept), so a retry of a write that did land is stored once. Reads and API calls are retried too, including
    the consumer an ordered subscription (KV watch, event feed) recreates after missing heartbeats. Any
    other error, and a failover that outlasts FAILOVER_S, raises as before."""

    @property
    def _jsm(self) -> JetStreamManager:
        return _FailoverManager(conn=self._nc, prefix=self._prefix, timeout=self._timeout)

    async def publish(self, subject: str, payload: bytes = b"", timeout: float | None = None,
                      stream: str | None = None, headers: dict[str, Any] | None = None, **kwargs: Any):
        headers = dict(headers or {})
        headers.setdefault("Nats-Msg-Id", self._nc._nuid.next().decode())

        async def once():
            return await JetStreamContext.publish(self, subject, payload, timeout=timeout, stream=stream,
                                                  headers=headers, **kwargs)

        return await _retried(once, (NoStreamResponseError, NatsTimeout, ServiceUnavailableError), subject)

    async def subscribe(self, subject: str, *args: Any, **kwargs: Any):
        """An ordered subscription (KV watch, event feed) notices a consumer lost with its node after two
        missed heartbeats and recreates it from where it was: with nats-py's 5 s that is 10-15 s of
        silence, with ORDERED_HEARTBEAT_S about 2 s (then the retried consumer create waits for a leader)."""
        config = kwargs.get("config")
        # Not for KV keys() (headers only): a short-lived listing must not be reset under it when a busy
        # machine delays two heartbeats; a reset mid-listing gave empty key lists (a ruleset in use deleted).
        if (kwargs.get("ordered_consumer") and not kwargs.get("idle_heartbeat") and not kwargs.get("headers_only")
                and not (config and config.idle_heartbeat)):
            kwargs["idle_heartbeat"] = ORDERED_HEARTBEAT_S
        return await JetStreamContext.subscribe(self, subject, *args, **kwargs)

    async def get_msg(self, *args: Any, **kwargs: Any):
        """Reads (KV get goes through here) are idempotent: retried on silence too."""
        return await _retried(lambda: JetStreamContext.get_msg(self, *args, **kwargs),
                              (ServiceUnavailableError, NoRespondersError, NatsTimeout))


async def _retried(call: Callable[[], Awaitable[T]], retry_on: tuple[type[Exception], ...], what: str = "") -> T:
    deadline = time.monotonic() + FAILOVER_S
    delay = 0.05
    while True:
        try:
            return await call()
        except retry_on as exc:
            if time.monotonic() + delay > deadline:
                raise
            if what:
                log.info("jetstream write not answered, retrying", subject=what, error=repr(exc))
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)


class FlintNATS(NATS):
    """A nats-py client whose JetStream contexts (and the KV and object stores made from them) ride out
    a cluster failover."""

    def jetstream(self, **opts: Any) -> JetStreamContext:
        return _FailoverJetStream(self, **opts)


def server_list(url: str) -> str | list[str]:
    """FLINT_NATS_URL may name several servers of one cluster, comma-separated: the client starts with
    whichever answers and fails over to the others (and to those the cluster announces)."""
    urls = [u.strip() for u in url.split(",") if u.strip()]
    return urls[0] if len(urls) == 1 else urls


async def connect(url: str, name: str, creds: str | None = None, **options: Any) -> NATS:
    """Connect, retrying forever with backoff, and reconnect forever after that."""
    options.update(credential_options(creds))
    servers = server_list(url)

    async def on_disconnect() -> None:
        log.warning("nats disconnected", url=url)

    async def on_reconnect() -> None:
        log.info("nats reconnected", url=url)

    async def on_error(err: Exception) -> None:
        log.warning("nats error", error=str(err))

    delay = 0.2
    while True:
        try:
            nc = FlintNATS()
            await nc.connect(
                servers,
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
            return nc
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
            info = await js.stream_info(cfg.name)
            await _raise_replicas(js, info, replicas)
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
            await _raise_replicas(js, await js.stream_info(f"KV_{kv.bucket}"), replicas)
        except NotFoundError:
            await js.create_key_value(kv)
    names = [c.name for c in streams] + [f"KV_{kv.bucket}" for kv in buckets]
    await _wait_for_leaders(js, names)


async def _wait_for_leaders(js, names: list[str], timeout: float = 15.0) -> None:
    """In a cluster a stream just made (or just given more replicas) has no leader for a moment, and a
    publish then gets no answer: return once each has one (at once on a single server)."""
    deadline = time.monotonic() + timeout
    waiting = list(names)
    while waiting:
        info = await js.stream_info(waiting[0])
        if info.cluster is None or info.cluster.leader:
            waiting.pop(0)
            continue
        if time.monotonic() > deadline:
            log.warning("streams still without a leader", streams=waiting)
            return
        await asyncio.sleep(0.05)


async def _raise_replicas(js, info, replicas: int) -> None:
    """A stream made with fewer replicas than FLINT_STREAM_REPLICAS asks for (a single server that became a
    cluster) gets more; never fewer (an agent left at the default of 1 must not shrink the cluster's).
    Only the system role may change streams: anyone else logs and carries on."""
    have = info.config.num_replicas or 1
    if have >= replicas:
        return
    try:
        await js.update_stream(replace(info.config, num_replicas=replicas))
        log.info("stream replicas raised", stream=info.config.name, replicas=replicas, were=have)
    except Exception as exc:  # noqa: BLE001 - permission or cluster size: say so, keep what there is
        log.warning("could not raise stream replicas", stream=info.config.name, replicas=replicas, were=have,
                    error=str(exc))
