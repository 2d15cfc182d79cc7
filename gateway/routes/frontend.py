"""The built frontend with SPA fallback: any unknown non-API path gets index.html."""

from __future__ import annotations

from pathlib import Path

from litestar import Response, get
from litestar.response import File

from flint.contracts.common import ServiceError

DIST = Path(__file__).resolve().parents[2] / "frontend" / "dist"
NOT_BUILT = (
    "<!doctype html><title>Flint</title><p>The web interface is not built. "
    "Run <code>make run</code> (or <code>cd frontend && npm ci && npm run build</code>).</p>"
)


def _serve(path: str) -> Response | File:
    if path.startswith(("api/", "metrics")):
        raise ServiceError(404, f"no such API path: /{path}")
    root = DIST.resolve()
    if path:
        candidate = (root / path).resolve()
        # Only files inside dist/, never a path that climbs out of it.
        if candidate.is_relative_to(root) and candidate.is_file():
            cache = "public, max-age=31536000, immutable" if "/assets/" in f"/{path}" else "no-cache"
            return File(candidate, filename=candidate.name, headers={"Cache-Control": cache},
                        content_disposition_type="inline")
    index = root / "index.html"
    if not index.is_file():
        return Response(NOT_BUILT, media_type="text/html", status_code=503)
    return File(index, filename="index.html", headers={"Cache-Control": "no-cache"}, content_disposition_type="inline")


@get("/", include_in_schema=False)
async def index() -> Response | File:
    return _serve("")


@get("/{path:path}", include_in_schema=False)
async def spa(path: str) -> Response | File:
    return _serve(path.lstrip("/"))
