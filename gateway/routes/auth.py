from __future__ import annotations

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.datastructures import Cookie

from flint.contracts.common import ServiceError
from gateway.accounts import Principal, Token
from gateway.deps import gw
from gateway.security import CSRF_COOKIE, SESSION_COOKIE


class LoginRequest(msgspec.Struct):
    username: str
    password: str


class Me(msgspec.Struct):
    username: str
    role: str
    via: str = "session"


class TokenRequest(msgspec.Struct):
    name: str
    role: str = "viewer"
    expires_in_days: float | None = None


class TokenCreated(msgspec.Struct):
    id: str
    name: str
    role: str
    token: str
    expires_at: float | None


class TokenInfo(msgspec.Struct):
    id: str
    name: str
    role: str
    owner: str
    created_at: float
    expires_at: float | None


class UserCreate(msgspec.Struct):
    name: str
    password: str
    role: str = "viewer"


class UserInfo(msgspec.Struct):
    name: str
    role: str
    disabled: bool
    created_at: float


def _token_info(t: Token) -> TokenInfo:
    return TokenInfo(id=t.id, name=t.name, role=t.role, owner=t.owner, created_at=t.created_at, expires_at=t.expires_at)


class AuthController(Controller):
    path = "/auth"
    tags = ["auth"]

    @post("/login", status_code=200)
    async def login(self, request: Request, data: LoginRequest) -> Response[Me]:
        g = gw(request)
        client = request.client.host if request.client else "unknown"
        keys = (f"user:{data.username.lower()}", f"addr:{client}")
        wait = g.throttle.retry_after(*keys)
        if wait:
            raise ServiceError(429, f"too many failed logins; try again in {wait} s")
        user = await g.accounts.verify_password(data.username, data.password)
        if user is None:
            g.throttle.failed(*keys)
            raise ServiceError(401, "wrong user name or password")
        g.throttle.succeeded(*keys)
        session_id, session = await g.accounts.open_session(user)
        secure = not g.settings.is_loopback
        cookies = [
            Cookie(key=SESSION_COOKIE, value=session_id, httponly=True, samesite="strict", secure=secure, path="/"),
            # Readable by our own scripts, which echo it in X-CSRF-Token on every write.
            Cookie(key=CSRF_COOKIE, value=session.csrf, httponly=False, samesite="strict", secure=secure, path="/"),
        ]
        return Response(Me(username=user.name, role=user.role), cookies=cookies)

    @post("/logout", status_code=200)
    async def logout(self, request: Request) -> Response[dict]:
        session_id = request.cookies.get(SESSION_COOKIE)
        if session_id:
            await gw(request).accounts.close_session(session_id)
        return Response(
            {"detail": "logged out"},
            cookies=[
                Cookie(key=SESSION_COOKIE, value="", max_age=0, path="/"),
                Cookie(key=CSRF_COOKIE, value="", max_age=0, path="/"),
            ],
        )

    @get("/me")
    async def me(self, request: Request) -> Me:
        p: Principal = request.user
        return Me(username=p.name, role=p.role, via=p.via)

    @post("/tokens", status_code=201)
    async def create_token(self, request: Request, data: TokenRequest) -> TokenCreated:
        token, raw = await gw(request).accounts.create_token(request.user, data.name, data.role, data.expires_in_days)
        return TokenCreated(id=token.id, name=token.name, role=token.role, token=raw, expires_at=token.expires_at)

    @get("/tokens")
    async def list_tokens(self, request: Request) -> list[TokenInfo]:
        p: Principal = request.user
        tokens = await gw(request).accounts.list_tokens()
        return [_token_info(t) for t in tokens if p.role == "admin" or t.owner == p.name]

    @delete("/tokens/{token_id:str}", status_code=204)
    async def revoke_token(self, request: Request, token_id: str) -> None:
        p: Principal = request.user
        accounts = gw(request).accounts
        tokens = {t.id: t for t in await accounts.list_tokens()}
        token = tokens.get(token_id)
        if token is None or (p.role != "admin" and token.owner != p.name):
            raise ServiceError(404, f"no token {token_id!r}")
        await accounts.revoke_token(token_id)


class UsersController(Controller):
    path = "/users"
    tags = ["users"]

    @get("/")
    async def list_users(self, request: Request) -> list[UserInfo]:
        users = await gw(request).accounts.list_users()
        return [UserInfo(name=u.name, role=u.role, disabled=u.disabled, created_at=u.created_at) for u in users]

    @post("/", status_code=201)
    async def create_user(self, request: Request, data: UserCreate) -> UserInfo:
        u = await gw(request).accounts.create_user(data.name, data.password, data.role)
        return UserInfo(name=u.name, role=u.role, disabled=u.disabled, created_at=u.created_at)
