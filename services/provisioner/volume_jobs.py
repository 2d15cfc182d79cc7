"""Job volume.import, and what it shares with volume.upload (services/provisioner/volume_upload.py): bytes
from an http(s) URL written into a new volume through a libvirt stream, with progress; undone completely
when it fails.

volume.import: download (volume made from the server's Content-Length, sha256 computed on the fly) →
verify (the sha256 asked for; the format asked for). A mismatch fails the job naming both sums, and the
rollback deletes the volume. A provisioner that dies mid-download starts it over after redelivery.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import libvirt
import msgspec
import structlog

from flint.contracts.common import ServiceError
from flint.service import ServiceContext
from flint.virt.connection import libvirt_error
from flint.xml import StorageVolume
from services.provisioner.jobs import JobKind, JobRun, Step
from services.provisioner.pools import ensure_image_pool, lookup_pool, refresh_quietly, require_active
from services.provisioner.storage_spec import IMAGE_POOL, TYPES
from services.provisioner.volumes import (
    _fmt_bytes,
    check_volume_name,
    lookup_volume,
    pool_type,
    volume_exists,
    volume_info,
    write_stream,
)

log = structlog.get_logger()
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
IMPORT_FORMATS = ("qcow2", "raw", "iso")
WRITE_CHUNK = 1024 * 1024
_image_pool_lock = asyncio.Lock()


def _fail(field: str, message: str, code: int = 422) -> ServiceError:
    return ServiceError(code, f"{field}: {message}", field)


async def ensure_library(ctx: ServiceContext) -> None:
    async with _image_pool_lock:
        path = str((ctx.settings.data_dir / "images").absolute())
        await ctx.virt.call(ensure_image_pool, ctx.virt.conn, ctx.host, path)


async def check_target(ctx: ServiceContext, pool_name: str, name: str, size: int | None) -> str:
    """The pool exists and runs, the name is free, ``size`` bytes fit. Returns the pool's type."""
    if pool_name == IMAGE_POOL:
        await ensure_library(ctx)

    def blocking() -> str:
        pool = lookup_pool(ctx.virt.conn, pool_name)
        require_active(pool)
        if volume_exists(pool, name):
            raise ServiceError(409, f"storage pool {pool_name!r} already has a volume named {name!r}", "name")
        available = pool.info()[3]
        if size is not None and size > available:
            raise ServiceError(413, f"{_fmt_bytes(size)} does not fit: storage pool {pool_name!r} has "
                                    f"{_fmt_bytes(available)} free", "size")
        return pool_type(pool)

    return await ctx.virt.call(blocking)


def _span(kind: JobKind, step: str) -> tuple[float, float]:
    total = sum(s.weight for s in kind.steps) or 1.0
    before = 0.0
    for s in kind.steps:
        if s.name == step:
            return 100 * before / total, 100 * (before + s.weight) / total
        before += s.weight
    return 0.0, 100.0


def _progress(run: JobRun, kind: JobKind, step: str, total: int | None, verb: str):
    lo, hi = _span(kind, step)
    started = time.monotonic()

    async def report(done: int) -> None:
        rate = done / max(time.monotonic() - started, 1e-6) / 1e6
        if total:
            await run.progress(lo + (hi - lo) * min(done / total, 1.0),
                               f"{verb} {_fmt_bytes(done)} of {_fmt_bytes(total)} ({rate:.1f} MB/s)")
        else:
            await run.progress(lo, f"{verb} {_fmt_bytes(done)} ({rate:.1f} MB/s)")

    return report


async def _rechunk(chunks: AsyncIterator[bytes], size: int = WRITE_CHUNK) -> AsyncIterator[bytes]:
    buf = bytearray()
    async for data in chunks:
        buf += data
        if len(buf) >= size:
            yield bytes(buf)
            buf.clear()
    if buf:
        yield bytes(buf)


class VolumeTaken(Exception):
    """Someone else made a volume of the job's name between the check at submit and the job's create."""


def _create_volume_blocking(conn: libvirt.virConnect, pool_name: str, name: str, capacity: int,
                            retry: bool = False) -> None:
    """A raw volume to write into (dir pools re-detect the format of what was written on refresh). An
    existing one is this job's own only on a retry; otherwise it is somebody else's and is not touched."""
    pool = lookup_pool(conn, pool_name)
    if volume_exists(pool, name):
        if retry:
            return
        raise VolumeTaken(name)
    kind = TYPES.get(pool_type(pool))
    file_pool = kind is not None and kind.file_volumes
    vol = StorageVolume(name=name, capacity=max(capacity, 1), allocation=0 if file_pool else capacity)
    if file_pool:
        vol.format = "raw"
    try:
        pool.createXML(vol.to_xml(), 0)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_STORAGE_VOL_EXIST and not retry:
            raise VolumeTaken(name) from None
        raise libvirt_error(exc, f"create volume {pool_name}/{name}") from exc


def _delete_volume_blocking(conn: libvirt.virConnect, pool_name: str, name: str) -> None:
    try:
        pool = conn.storagePoolLookupByName(pool_name)
        pool.storageVolLookupByName(name).delete(0)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() in (libvirt.VIR_ERR_NO_STORAGE_VOL, libvirt.VIR_ERR_NO_STORAGE_POOL):
            return
        raise libvirt_error(exc, f"delete volume {pool_name}/{name}") from exc
    refresh_quietly(pool)


async def _make_volume(run: JobRun, capacity: int) -> None:
    """Create the job's volume; marked as ours before libvirt is asked, so a crash right after still
    lets the rollback find it (validation made sure the name was free)."""
    p = run.params
    retry = bool(run.data.get("volume_ours"))
    run.data["volume_ours"] = True
    await run.save()
    try:
        await run.ctx.virt.call(_create_volume_blocking, run.ctx.virt.conn, p["pool"], p["name"], capacity, retry)
    except VolumeTaken:
        # Two uploads of one name at once, or a volume made meanwhile: the rollback must not delete it.
        run.data["volume_ours"] = False
        await run.save()
        raise ServiceError(409, f"name: a volume named {p['name']!r} was made in {p['pool']} while this job "
                                "waited; it was left alone", "name") from None


async def _undo_volume(run: JobRun) -> None:
    if run.data.get("volume_ours"):
        await run.ctx.virt.call(_delete_volume_blocking, run.ctx.virt.conn, run.params["pool"], run.params["name"])


async def _finish_volume(run: JobRun) -> dict[str, Any]:
    p = run.params

    def blocking():
        pool = lookup_pool(run.ctx.virt.conn, p["pool"])
        refresh_quietly(pool)
        return volume_info(p["pool"], lookup_volume(pool, p["name"]))

    info = await run.ctx.virt.call(blocking)
    run.job.result["volume"] = msgspec.to_builtins(info)
    return run.job.result["volume"]


# ---- volume.upload -----------------------------------------------------------------------------------

# ---- volume.import -----------------------------------------------------------------------------------

def check_url(url: Any) -> str:
    if not isinstance(url, str) or not url:
        raise _fail("url", "is required: an http:// or https:// address")
    if len(url) > 2048 or any(c.isspace() or ord(c) < 32 for c in url):
        raise _fail("url", "is longer than 2048 characters or contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _fail("url", f"is not a valid address: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise _fail("url", f"only http and https addresses can be imported, not {parts.scheme or 'a relative path'!r}")
    if not parts.hostname:
        raise _fail("url", "has no host name")
    if parts.username is not None or parts.password is not None:
        raise _fail("url", "must not carry a user name or password (they would be stored with the job)")
    del port
    return url


def check_sha256(value: Any) -> str | None:
    if value in (None, ""):
        return None
    text = str(value).strip().lower().removeprefix("sha256:")
    if not _SHA256.match(text):
        raise _fail("sha256", "must be 64 hexadecimal digits (the file's SHA-256)")
    return text


def name_from_url(url: str) -> str:
    return unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1])


async def validate_import(ctx: ServiceContext, params: dict[str, Any]) -> tuple[dict[str, Any], str]:
    url = check_url(params.get("url"))
    raw_name = params.get("name") or name_from_url(url)
    if not raw_name:
        raise _fail("name", "is required (the address does not end in a file name)")
    try:
        name = check_volume_name(str(raw_name))
    except ServiceError as exc:
        if params.get("name"):
            raise
        raise _fail("name", f"the file name in the address is not a volume name ({exc.message}); give a name") from None
    sha256 = check_sha256(params.get("sha256"))
    fmt = params.get("format") or None
    if fmt is not None and fmt not in IMPORT_FORMATS:
        raise _fail("format", f"{fmt!r} is not one of {', '.join(IMPORT_FORMATS)}")
    pool = str(params.get("pool") or IMAGE_POOL)
    await check_target(ctx, pool, name, None)
    return {"pool": pool, "name": name, "url": url, "sha256": sha256, "format": fmt}, f"{pool}/{name}"


async def import_download(run: JobRun) -> None:
    p = run.params
    if run.data.get("volume_ours"):  # a retry after a crash: start the write over on a fresh volume
        await _undo_volume(run)
    timeout = httpx.Timeout(30.0, read=120.0)
    digest = hashlib.sha256()
    try:
        async with httpx.AsyncClient(follow_redirects=True, timeout=timeout, max_redirects=5) as client:
            async with client.stream("GET", p["url"], headers={"Accept-Encoding": "identity"}) as resp:
                if resp.status_code != 200:
                    raise ServiceError(502, f"{p['url']} answered {resp.status_code} {resp.reason_phrase}")
                length = _content_length(resp)
                kind = await run.ctx.virt.call(_pool_kind_and_space, run.ctx.virt.conn, p["pool"], length)
                if length is None and not TYPES[kind].file_volumes:
                    raise ServiceError(422, f"{p['url']} does not say its size (no Content-Length); a {kind} pool "
                                            "needs it: import into a directory pool")
                await _make_volume(run, length or 0)
                report = _progress(run, VOLUME_IMPORT, "download", length, "downloaded")

                async def hashed() -> AsyncIterator[bytes]:
                    async for data in _rechunk(resp.aiter_raw()):
                        digest.update(data)
                        yield data

                written = await write_stream(run.ctx.virt, p["pool"], p["name"], length or 0, hashed(), report)
    except httpx.HTTPError as exc:
        raise ServiceError(502, f"downloading {p['url']} failed: {exc.__class__.__name__}: {exc}") from exc
    if length is not None and written != length:
        raise ServiceError(502, f"{p['url']} sent {written} bytes, not the {length} it announced")
    run.data["sha256"] = digest.hexdigest()
    run.data["bytes"] = written


def _content_length(resp: httpx.Response) -> int | None:
    value = resp.headers.get("content-length")
    if value is None or resp.headers.get("content-encoding", "identity") != "identity":
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _pool_kind_and_space(conn: libvirt.virConnect, pool_name: str, length: int | None) -> str:
    pool = lookup_pool(conn, pool_name)
    require_active(pool)
    available = pool.info()[3]
    if length is not None and length > available:
        raise ServiceError(422, f"the download is {_fmt_bytes(length)}; storage pool {pool_name!r} has "
                                f"{_fmt_bytes(available)} free")
    return pool_type(pool)


async def import_verify(run: JobRun) -> None:
    p = run.params
    actual, expected = run.data.get("sha256"), p.get("sha256")
    if expected and actual != expected:
        raise ServiceError(422, f"sha256 mismatch for {p['url']}: expected {expected}, got {actual}; "
                                "the downloaded volume is deleted")
    info = await _finish_volume(run)
    if p.get("format") and info.get("type") == "file" and info.get("format") != p["format"]:
        raise ServiceError(422, f"{p['url']} is {info.get('format') or 'of unknown format'}, not {p['format']}")
    run.job.result.update({"sha256": actual, "bytes": run.data.get("bytes"), "url": p["url"]})


VOLUME_IMPORT = JobKind(
    name="volume.import",
    validate=validate_import,
    steps=[
        Step("download", import_download, undo=_undo_volume, weight=19),
        Step("verify", import_verify, weight=1),
    ],
)
