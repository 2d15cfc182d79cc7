from __future__ import annotations

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post
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


class UserPatch(msgspec.Struct):
    role: str | None = None
    disabled: bool | None = None
    password: str | None = None


class PasswordChange(msgspec.Struct):
    current_password: str
    new_password: str


class UserInfo(msgspec.Struct):
    name: str
    role: str
    disabled: bool
    created_at: float


def _session_cookies(g, session_id: str, csrf: str) -> list[Cookie]:
    secure = not g.settings.is_loopback
    return [
        Cookie(key=SESSION_COOKIE, value=session_id, httponly=True, samesite="strict", secure=secure, path="/"),
        # Readable by our own scripts, which echo it in X-CSRF-Token on every write.
        Cookie(key=CSRF_COOKIE, value=csrf, httponly=False, samesite="strict", secure=secure, path="/"),
    ]


def _user_info(u) -> UserInfo:
    return UserInfo(name=u.name, role=u.role, disabled=u.disabled, created_at=u.created_at)


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
        request.scope["audit_user"] = data.username[:64]
        user = await g.accounts.verify_password(data.username, data.password)
        if user is None:
            g.throttle.failed(*keys)
            raise ServiceError(401, "wrong user name or password")
        g.throttle.succeeded(*keys)
        session_id, session = await g.accounts.open_session(user)
        return Response(Me(username=user.name, role=user.role), cookies=_session_cookies(g, session_id, session.csrf))

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

    @post("/logout-all", status_code=200)
    async def logout_everywhere(self, request: Request) -> Response[dict]:
        """End every session of the calling user, this one included."""
        await gw(request).accounts.end_all_sessions(request.user.name)
        return Response(
            {"detail": "logged out everywhere"},
            cookies=[
                Cookie(key=SESSION_COOKIE, value="", max_age=0, path="/"),
                Cookie(key=CSRF_COOKIE, value="", max_age=0, path="/"),
            ],
        )

    @post("/password", status_code=200)
    async def change_password(self, request: Request, data: PasswordChange) -> Response[Me]:
        """Change one's own password; every other session ends, this one gets a new cookie."""
        g = gw(request)
        p: Principal = request.user
        if p.via != "session":
            raise ServiceError(403, "change a password from a logged-in session, not with a token")
        if await g.accounts.verify_password(p.name, data.current_password) is None:
            raise ServiceError(403, "the current password is wrong", "current_password")
        user = await g.accounts.update_user(p.name, password=data.new_password)
        session_id, session = await g.accounts.open_session(user)
        return Response(Me(username=user.name, role=user.role), cookies=_session_cookies(g, session_id, session.csrf))

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
        return [_user_info(u) for u in await gw(request).accounts.list_users()]

    @post("/", status_code=201)
    async def create_user(self, request: Request, data: UserCreate) -> UserInfo:
        return _user_info(await gw(request).accounts.create_user(data.name, data.password, data.role))

    @patch("/{name:str}")
    async def update_user(self, request: Request, name: str, data: UserPatch) -> UserInfo:
        """Role, disabled, password. Disabling or a new password ends the user's sessions."""
        return _user_info(await gw(request).accounts.update_user(name, data.role, data.disabled, data.password))

    @delete("/{name:str}", status_code=204)
    async def delete_user(self, request: Request, name: str) -> None:
        """The user and their tokens. The last enabled admin cannot be removed."""
        await gw(request).accounts.delete_user(name)
