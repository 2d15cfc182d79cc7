"""One libvirt connection per process, kept open: reconnects when libvirtd restarts or the link drops."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import libvirt
import libvirtaio
import structlog

from flint.contracts.common import ServiceError
from flint.sshhosts import display_uri
from flint.virt.version import check_libvirt_version, format_version

log = structlog.get_logger()
T = TypeVar("T")

_event_impl_lock = threading.Lock()
_event_impl_loop: asyncio.AbstractEventLoop | None = None


def register_event_loop(loop: asyncio.AbstractEventLoop | None = None) -> None:
    """libvirt dispatches events on the asyncio loop; this must happen before the first open()."""
    global _event_impl_loop
    with _event_impl_lock:
        if _event_impl_loop is None:
            _event_impl_loop = loop or asyncio.get_running_loop()
            libvirtaio.virEventRegisterAsyncIOImpl(loop=_event_impl_loop)


def _silence_libvirt_stderr() -> None:
    # libvirt prints every error to stderr by default; we report them ourselves.
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


OnConnect = Callable[[libvirt.virConnect], Awaitable[None]]


class VirtConnection:
    """Holds the connection, reopens it with backoff, and tells subscribers each time it is (re)opened."""

    def __init__(self, uri: str, keepalive_interval: int = 5, keepalive_count: int = 3):
        self.uri = uri
        self.keepalive = (keepalive_interval, keepalive_count)
        self._conn: libvirt.virConnect | None = None
        self._closed = asyncio.Event()
        self._connected = asyncio.Event()
        self._on_connect: list[OnConnect] = []
        self.version: str | None = None
        self.last_error: str | None = None
        self.fatal: str | None = None

    def on_connect(self, callback: OnConnect) -> None:
        self._on_connect.append(callback)

    @property
    def connected(self) -> bool:
        return self._conn is not None

    @property
    def conn(self) -> libvirt.virConnect:
        if self._conn is None:
            raise ServiceError(503, f"libvirt at {display_uri(self.uri)} is not connected: {self.last_error or 'connecting'}")
        return self._conn

    async def wait_connected(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking libvirt call off the event loop; libvirt errors become ServiceErrors upstream."""
        return await asyncio.to_thread(fn, *args)

    async def run(self) -> None:
        """Open, watch and reopen the connection until cancelled."""
        register_event_loop()
        _silence_libvirt_stderr()
        delay = 0.5
        while True:
            try:
                conn = await asyncio.to_thread(libvirt.open, self.uri)
                check_libvirt_version(libvirt.getVersion())
                daemon_version = await asyncio.to_thread(conn.getLibVersion)
                check_libvirt_version(daemon_version)
            except libvirt.libvirtError as exc:
                self.last_error = exc.get_error_message() or str(exc)
                log.warning("libvirt connect failed, retrying", uri=display_uri(self.uri), error=self.last_error, retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            delay = 0.5
            self.version = format_version(daemon_version)
            self._closed.clear()
            try:
                conn.registerCloseCallback(self._close_callback, None)
                if not self.uri.startswith("test:"):
                    conn.setKeepAlive(*self.keepalive)
            except libvirt.libvirtError as exc:
                log.warning("libvirt keepalive unavailable", error=str(exc))
            self._conn = conn
            self.last_error = None
            log.info("libvirt connected", uri=display_uri(self.uri), version=self.version)
            for callback in self._on_connect:
                try:
                    await callback(conn)
                except Exception:  # noqa: BLE001 - one subscriber failing must not stop reconnects
                    log.exception("libvirt on_connect callback failed")
            self._connected.set()
            await self._closed.wait()
            self._connected.clear()
            self._conn = None
            log.warning("libvirt connection lost, reconnecting", uri=display_uri(self.uri), reason=self.last_error)
            try:
                conn.close()
            except libvirt.libvirtError:
                pass

    def _close_callback(self, _conn: libvirt.virConnect, reason: int, _opaque: Any) -> None:
        # Runs inside libvirt's event dispatch: only record and wake the reconnect loop.
        reasons = {0: "error", 1: "end of file", 2: "keepalive timeout", 3: "client closed"}
        self.last_error = f"connection closed ({reasons.get(reason, reason)})"
        self._closed.set()

    def mark_broken(self, error: str) -> None:
        """Called when a call failed in a way that means the link is gone (e.g. VIR_ERR_SYSTEM_ERROR)."""
        self.last_error = error
        self._closed.set()

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.unregisterCloseCallback()
            except libvirt.libvirtError:
                pass
            await asyncio.to_thread(conn.close)


def libvirt_error(exc: libvirt.libvirtError, what: str) -> ServiceError:
    """Turn a libvirt error into a ServiceError with libvirt's own words and a fitting code."""
    code = exc.get_error_code()
    message = exc.get_error_message() or str(exc)
    not_found = {
        libvirt.VIR_ERR_NO_DOMAIN,
        libvirt.VIR_ERR_NO_STORAGE_POOL,
        libvirt.VIR_ERR_NO_STORAGE_VOL,
        libvirt.VIR_ERR_NO_NETWORK,
        libvirt.VIR_ERR_NO_NWFILTER,
        libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT,
    }
    if code in not_found:
        return ServiceError(404, f"{what}: {message}")
    if code == libvirt.VIR_ERR_OPERATION_INVALID:
        return ServiceError(409, f"{what}: {message}")
    if code in (libvirt.VIR_ERR_INVALID_ARG, libvirt.VIR_ERR_XML_ERROR, libvirt.VIR_ERR_CONFIG_UNSUPPORTED):
        return ServiceError(422, f"{what}: {message}")
    return ServiceError(502, f"{what}: libvirt said: {message}")
