from __future__ import annotations

import msgspec


class LibvirtStatus(msgspec.Struct):
    connected: bool
    uri: str
    version: str | None = None
    virt_type: str | None = None
    virt_type_reason: str | None = None
    detail: str | None = None


class HealthReply(msgspec.Struct):
    service: str
    host: str
    ok: bool
    version: str
    pid: int
    started_at: float
    libvirt: LibvirtStatus | None = None
    detail: str | None = None
