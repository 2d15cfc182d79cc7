"""python -m gateway: serve the Litestar app with uvicorn on FLINT_BIND (TLS beyond loopback)."""

from __future__ import annotations

import sys

import uvicorn

from flint.config import load_settings
from flint.log import setup_logging
from gateway.app import create_app
from gateway.tls import ensure_certificate


def main() -> None:
    try:
        settings = load_settings()
    except ValueError as exc:
        print(f"flint gateway: {exc}", file=sys.stderr)
        sys.exit(2)
    setup_logging(settings.log_format, service="gateway", host=settings.host)
    ssl: dict = {}
    if not settings.is_loopback:
        cert, key = ensure_certificate(settings)
        ssl = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
    uvicorn.run(
        create_app(settings),
        host=settings.bind_host,
        port=settings.bind_port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        ws="websockets-sansio",
        proxy_headers=False,
        **ssl,
    )


if __name__ == "__main__":
    main()
