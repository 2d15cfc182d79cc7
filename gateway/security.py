"""Authentication and authorization for every route: one guard applied app-wide."""

from __future__ import annotations

import hmac

import structlog
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from gateway.accounts import Accounts, Principal, role_allows
from gateway.authz import PUBLIC, minimal_role

SESSION_COOKIE = "flint_session"
CSRF_COOKIE = "flint_csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}

log = structlog.get_logger()


async def authenticate(connection: ASGIConnection) -> Principal | None:
    accounts: Accounts = connection.app.state.gateway.accounts
    header = connection.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        token = await accounts.check_token(header[7:].strip())
        if token is None:
            raise NotAuthorizedException("the bearer token is invalid, expired or revoked")
        return Principal(name=token.owner, role=token.role, via="token", token_id=token.id)
    session_id = connection.cookies.get(SESSION_COOKIE)
    if session_id:
        session = await accounts.session(session_id)
        if session is not None:
            user = await accounts.get_user(session.user)
            if user is None or user.disabled or user.session_epoch != session.epoch:
                return None
            # The user's current role counts, not the one at login.
            return Principal(name=user.name, role=user.role, via="session", csrf=session.csrf)
    return None


async def require_role(connection: ASGIConnection, _handler: BaseRouteHandler) -> None:
    """Global guard: look the route up in the role table, authenticate, check role, CSRF and Origin."""
    is_ws = connection.scope["type"] == "websocket"
    method = "GET" if is_ws else connection.scope.get("method", "GET")
    template = connection.scope.get("path_template", "")
    needed = minimal_role(method, template)
    if needed is None:
        log.error("route without a role entry", method=method, path=template, handler=_handler.handler_name)
        raise PermissionDeniedException("this route has no access rule; refused")
    if needed == PUBLIC:
        return
    principal = await authenticate(connection)
    if principal is None:
        raise NotAuthorizedException("log in or send 'Authorization: Bearer <token>'")
    connection.scope["user"] = principal
    if not role_allows(principal.role, needed):
        raise PermissionDeniedException(f"this needs the {needed} role; you are {principal.role}")
    if principal.via == "session":
        if is_ws:
            _check_origin(connection)
        elif method not in SAFE_METHODS:
            sent = connection.headers.get(CSRF_HEADER, "")
            if not principal.csrf or not hmac.compare_digest(sent, principal.csrf):
                raise PermissionDeniedException(f"missing or wrong {CSRF_HEADER} header (CSRF protection)")


def _check_origin(connection: ASGIConnection) -> None:
    """A browser WebSocket must come from our own origin (no cross-site WebSocket hijacking)."""
    origin = connection.headers.get("origin")
    host = connection.headers.get("host")
    if origin is None:
        return  # not a browser
    allowed = {f"http://{host}", f"https://{host}"}
    if origin not in allowed:
        raise PermissionDeniedException(f"WebSocket origin {origin!r} is not this site")
