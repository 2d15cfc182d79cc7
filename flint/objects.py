"""Large payloads over NATS: a JetStream Object Store bucket written and read as streams.

For a payload that must outlive the connection that brought it: the writer can take it at network speed
and hand on a durable reference, a reader that restarts starts over from the stored object, an agent on
another machine reads it over the NATS connection it already has, and nothing holds the whole payload in
memory. The cost is one pass through JetStream's file store (disk space while it is kept; the bucket's
TTL removes what a crash left).

Volume uploads used this until they measured 0.13 x `virsh vol-upload` (two passes over the bytes); they
now stream straight into the volume (services/provisioner/volume_upload.py) and do not use this module.

nats-py's ``ObjectStore.put/get`` read a synchronous file or build the object in memory, so the same
on-the-wire format (chunks on ``$O.<bucket>.C.<nuid>``, a rolled-up JSON record on ``$O.<bucket>.M.<name>``)
is written here from an async iterator with pipelined publishes, and read back with a pull consumer,
so ``nats object`` tools and nats-py can still list, inspect and delete these objects.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from nats.js import api
from nats.js.errors import NotFoundError, ObjectNotFoundError
from nats.js.kv import MSG_ROLLUP_SUBJECT
from nats.js.object_store import ObjectStore

from flint import subjects

CHUNK_SIZE = 512 * 1024  # under nats-server's default max_payload of 1 MiB
PUBLISH_WINDOW = 16  # chunks in flight before waiting for the oldest acknowledgement
FETCH_BATCH = 8


class TooLarge(Exception):
    """The stream carried more bytes than the caller allowed."""


def _stream(bucket: str) -> str:
    return f"OBJ_{bucket}"


def _meta_subject(bucket: str, name: str) -> str:
    return f"$O.{bucket}.M.{base64.urlsafe_b64encode(name.encode()).decode()}"


def _chunk_subject(bucket: str, nuid: str) -> str:
    return f"$O.{bucket}.C.{nuid}"


async def open_bucket(js, bucket: str = subjects.OBJ_UPLOADS, replicas: int = 1) -> ObjectStore:
    """The bucket, created on first use (file storage; objects older than the TTL are dropped)."""
    try:
        return await js.object_store(bucket)
    except NotFoundError:
        return await js.create_object_store(
            bucket,
            api.ObjectStoreConfig(
                description="Flint volume uploads in transit",
                ttl=float(subjects.OBJ_UPLOADS_TTL_S),
                storage=api.StorageType.FILE,
                replicas=replicas,
            ),
        )


async def put_stream(
    js, name: str, chunks: AsyncIterator[bytes], limit: int | None = None, bucket: str = subjects.OBJ_UPLOADS
) -> tuple[int, str]:
    """Store what ``chunks`` yields as object ``name``. Returns (size, sha256 hex). More than ``limit``
    bytes raises TooLarge; any failure removes the chunks already stored."""
    nuid = js._nc._nuid.next().decode()
    chunk_subject = _chunk_subject(bucket, nuid)
    digest = hashlib.sha256()
    pending: collections.deque = collections.deque()
    buf = bytearray()
    size = sent = 0

    async def send(payload: bytes) -> None:
        nonlocal sent
        pending.append(await js.publish_async(chunk_subject, payload))
        sent += 1
        if len(pending) >= PUBLISH_WINDOW:
            await pending.popleft()

    try:
        async for data in chunks:
            if not data:
                continue
            size += len(data)
            if limit is not None and size > limit:
                raise TooLarge(f"more than {limit} bytes")
            digest.update(data)
            buf += data
            while len(buf) >= CHUNK_SIZE:
                await send(bytes(buf[:CHUNK_SIZE]))
                del buf[:CHUNK_SIZE]
        if buf:
            await send(bytes(buf))
        while pending:
            await pending.popleft()
        info = api.ObjectInfo(
            name=name,
            bucket=bucket,
            nuid=nuid,
            size=size,
            chunks=sent,
            mtime=datetime.now(UTC).isoformat(),
            digest="SHA-256=" + base64.urlsafe_b64encode(digest.digest()).decode(),
            options=api.ObjectMetaOptions(max_chunk_size=CHUNK_SIZE),
        )
        await js.publish(
            _meta_subject(bucket, name),
            json.dumps(info.as_dict()).encode(),
            headers={api.Header.ROLLUP: MSG_ROLLUP_SUBJECT},
        )
    except BaseException:
        for fut in pending:
            fut.cancel()
        try:
            await js.purge_stream(_stream(bucket), subject=chunk_subject)
        except Exception:  # noqa: BLE001 - the bucket TTL removes what could not be purged now
            pass
        raise
    return size, digest.hexdigest()


async def info(js, name: str, bucket: str = subjects.OBJ_UPLOADS) -> api.ObjectInfo | None:
    store = await open_bucket(js, bucket)
    try:
        return await store.get_info(name)
    except ObjectNotFoundError:
        return None


async def read_stream(js, name: str, bucket: str = subjects.OBJ_UPLOADS) -> AsyncIterator[bytes]:
    """Yield the object's chunks in order, a few at a time (a pull consumer: the reader sets the pace).
    The digest is checked at the end; a mismatch raises ValueError."""
    obj = await info(js, name, bucket)
    if obj is None:
        raise FileNotFoundError(f"no object {name!r} in bucket {bucket}")
    if not obj.size:
        return
    sub = await js.pull_subscribe(
        _chunk_subject(bucket, obj.nuid),
        durable=None,
        stream=_stream(bucket),
        config=api.ConsumerConfig(
            ack_policy=api.AckPolicy.NONE,
            deliver_policy=api.DeliverPolicy.ALL,
            inactive_threshold=60.0,
        ),
    )
    digest = hashlib.sha256()
    got = 0
    last_seq = 0
    try:
        while got < obj.size:
            for msg in await sub.fetch(FETCH_BATCH, timeout=30):
                seq = msg.metadata.sequence.stream
                if seq <= last_seq:
                    continue  # a redelivered chunk
                last_seq = seq
                got += len(msg.data)
                digest.update(msg.data)
                yield msg.data
    finally:
        await sub.unsubscribe()
    expected = (obj.digest or "").removeprefix("SHA-256=")
    if got != obj.size or (expected and base64.urlsafe_b64decode(expected) != digest.digest()):
        raise ValueError(f"object {name!r} is damaged: read {got} of {obj.size} bytes or its digest differs")


async def delete(js, name: str, bucket: str = subjects.OBJ_UPLOADS) -> bool:
    """Remove the object and its chunks; False when it was not there."""
    store = await open_bucket(js, bucket)
    try:
        await store.delete(name)
    except ObjectNotFoundError:
        return False
    return True
