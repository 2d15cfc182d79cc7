"""Every error leaves as RFC 9457 problem details whose `detail` a user can act on."""

from __future__ import annotations

import re
import traceback

import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from nats.errors import Error as NatsError

from flint.contracts.common import ServiceError

log = structlog.get_logger()
MEDIA_TYPE = "application/problem+json"
TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    410: "Gone",
    411: "Length Required",
    412: "Precondition Failed",
    413: "Content Too Large",
    422: "Unprocessable Content",
    428: "Precondition Required",
    429: "Too Many Requests",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def problem(status: int, detail: str, errors: list[dict] | None = None, headers: dict | None = None) -> Response:
    body: dict = {"type": "about:blank", "title": TITLES.get(status, "Error"), "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    return Response(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


_AT_PATH = re.compile(r"\s*-\s*at `\$\.?([^`]*)`$")
_MISSING = re.compile(r"missing required field `([^`]+)`")
_UNKNOWN = re.compile(r"unknown field `([^`]+)`")


def _field_of(key: str, message: str) -> tuple[str, str]:
    """msgspec says where in the body it failed ("... - at `$.disks[0].size_gib`"): name that field;
    a missing or unknown field is named by its own path (``source.volume``, not ``source``)."""
    at = _AT_PATH.search(message)
    path = at.group(1) if at else ""
    text = message[: at.start()] if at else message
    named = _MISSING.search(text) or _UNKNOWN.search(text)
    if named:
        field = ".".join(p for p in (path, named.group(1)) if p)
        return field, "is required" if named.re is _MISSING else "is not a known field"
    if at:
        return path or key, text
    return key, message


def _validation(_: Request, exc: ValidationException) -> Response:
    errors = []
    for item in exc.extra or []:
        if isinstance(item, dict):
            key = str(item.get("key") or item.get("source") or "body")
            field, message = _field_of(key, str(item.get("message", "")))
            errors.append({"field": field, "message": message})
    if errors:
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    else:
        detail = exc.detail or "the request is not valid"
    return problem(400, detail, errors)


def _http(_: Request, exc: HTTPException) -> Response:
    return problem(exc.status_code, exc.detail or TITLES.get(exc.status_code, "Error"), headers=exc.headers)


def _service(_: Request, exc: ServiceError) -> Response:
    # A ServiceError may carry several field errors (`errors`, e.g. every bad rule of a ruleset at once).
    message = exc.message
    if exc.field and message.startswith(f"{exc.field}: "):  # the detail names the field; the entry need not
        message = message[len(exc.field) + 2 :]
    errors = getattr(exc, "errors", None) or ([{"field": exc.field, "message": message}] if exc.field else None)
    return problem(exc.code, exc.message, errors)


def _nats(request: Request, exc: Exception) -> Response:
    log.warning("NATS unavailable for a request", path=request.url.path, error=repr(exc))
    return problem(
        503,
        "NATS JetStream did not answer (it pauses for a few seconds while reloading its configuration, "
        "e.g. after new credentials); try again shortly",
    )


def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("unhandled error", path=request.url.path, error=repr(exc), traceback=traceback.format_exc())
    return problem(HTTP_500_INTERNAL_SERVER_ERROR, "the gateway failed unexpectedly; the error is in its log")


EXCEPTION_HANDLERS = {
    NatsError: _nats,
    ValidationException: _validation,
    HTTPException: _http,
    ServiceError: _service,
    Exception: _unexpected,
}
