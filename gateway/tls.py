"""The gateway's certificate: FLINT_TLS_CERT/FLINT_TLS_KEY, else self-signed on first run."""

from __future__ import annotations

from pathlib import Path

from flint.config import Settings
from flint.tls import self_signed


def ensure_certificate(settings: Settings) -> tuple[Path, Path]:
    if settings.tls_cert and settings.tls_key:
        return Path(settings.tls_cert), Path(settings.tls_key)
    return self_signed(settings.data_dir / "tls", "gateway", {settings.bind_host})
