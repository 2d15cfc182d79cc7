"""Users, sessions and API tokens, stored in JetStream KV (users/tokens in flint-auth, sessions in flint-sessions)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time

import msgspec
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from flint.contracts.common import ServiceError
from flint.kvlist import kv_items

ROLES = ("viewer", "operator", "admin")
ROLE_RANK = {role: rank for rank, role in enumerate(ROLES)}
USER_NAME_RE = re.compile(r"^[a-z][a-z0-9_.-]{0,31}$")
SESSION_IDLE_S = 2 * 3600
SESSION_TOUCH_EVERY_S = 60

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# Verifying against this when a user does not exist keeps the time of a failed login the same.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class User(msgspec.Struct, kw_only=True):
    name: str
    role: str
    password_hash: str
    disabled: bool = False
    created_at: float = 0.0
    # Bumped by "log out everywhere" and password changes: sessions made before no longer count.
    session_epoch: int = 0


class Session(msgspec.Struct, kw_only=True):
    user: str
    role: str
    csrf: str
    created_at: float
    last_seen: float
    epoch: int = 0


class Token(msgspec.Struct, kw_only=True):
    id: str
    name: str
    role: str
    owner: str
    secret_sha256: str
    created_at: float
    expires_at: float | None = None


class Principal(msgspec.Struct, frozen=True):
    """Who is calling: a user through a session, or a token acting with its own role."""

    name: str
    role: str
    via: str  # "session" | "token"
    csrf: str | None = None
    token_id: str | None = None


def role_allows(role: str, minimal: str) -> bool:
    return ROLE_RANK.get(role, -1) >= ROLE_RANK[minimal]


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class Accounts:
    def __init__(self, auth_kv: KeyValue, sessions_kv: KeyValue):
        self.auth = auth_kv
        self.sessions = sessions_kv
        self._user_dec = msgspec.json.Decoder(User)
        self._session_dec = msgspec.json.Decoder(Session)
        self._token_dec = msgspec.json.Decoder(Token)
        self._enc = msgspec.json.Encoder()

    # users
    async def get_user(self, name: str) -> User | None:
        if not USER_NAME_RE.match(name):
            return None
        try:
            entry = await self.auth.get(f"user.{name}")
        except KeyNotFoundError:
            return None
        return self._user_dec.decode(entry.value) if entry.value else None

    async def list_users(self) -> list[User]:
        keys = [item.key for item in await kv_items(self.auth._js, self.auth._name, with_values=False)]
        users = [await self.get_user(k.removeprefix("user.")) for k in keys if k.startswith("user.")]
        return [u for u in users if u is not None]

    async def create_user(self, name: str, password: str, role: str) -> User:
        if not USER_NAME_RE.match(name):
            raise ServiceError(422, "a user name is 1-32 of a-z, 0-9, '_', '.', '-', starting with a letter", "name")
        if role not in ROLES:
            raise ServiceError(422, f"role must be one of {', '.join(ROLES)}", "role")
        if len(password) < 8:
            raise ServiceError(422, "a password needs at least 8 characters", "password")
        user = User(name=name, role=role, password_hash=_hasher.hash(password), created_at=time.time())
        try:
            await self.auth.create(f"user.{name}", self._enc.encode(user))
        except Exception as exc:  # KeyWrongLastSequenceError when it exists
            raise ServiceError(409, f"user {name!r} already exists", "name") from exc
        return user

    async def ensure_admin(self, password: str | None) -> bool:
        """On first start with no users, create `admin` with the given password. True if created."""
        if not password or await self.list_users():
            return False
        await self.create_user("admin", password, "admin")
        return True

    async def _update_user(self, name: str, change) -> User:
        """Read-modify-write with the KV revision, so two admins editing at once cannot lose a change."""
        for _ in range(5):
            try:
                entry = await self.auth.get(f"user.{name}")
            except KeyNotFoundError:
                raise ServiceError(404, f"no user {name!r}") from None
            if not entry.value:
                raise ServiceError(404, f"no user {name!r}")
            user = self._user_dec.decode(entry.value)
            change(user)
            try:
                await self.auth.update(f"user.{name}", self._enc.encode(user), last=entry.revision)
                return user
            except Exception:  # noqa: BLE001 - KeyWrongLastSequenceError: someone else wrote; try again
                continue
        raise ServiceError(409, f"user {name!r} is being changed by someone else; try again")

    async def _enabled_admins(self) -> list[str]:
        return [u.name for u in await self.list_users() if u.role == "admin" and not u.disabled]

    async def update_user(
        self, name: str, role: str | None = None, disabled: bool | None = None, password: str | None = None
    ) -> User:
        if role is not None and role not in ROLES:
            raise ServiceError(422, f"role must be one of {', '.join(ROLES)}", "role")
        if password is not None and len(password) < 8:
            raise ServiceError(422, "a password needs at least 8 characters", "password")
        demotes = (role is not None and role != "admin") or disabled is True
        if demotes and await self._enabled_admins() == [name]:
            raise ServiceError(409, f"{name!r} is the last enabled admin; make another admin first")
        new_hash = _hasher.hash(password) if password is not None else None

        def change(user: User) -> None:
            if role is not None:
                user.role = role
            if disabled is not None:
                user.disabled = disabled
            if new_hash is not None:
                user.password_hash = new_hash
            if new_hash is not None or disabled:
                user.session_epoch += 1  # a new password or a disabled account ends every session

        return await self._update_user(name, change)

    async def delete_user(self, name: str) -> None:
        user = await self.get_user(name)
        if user is None:
            raise ServiceError(404, f"no user {name!r}")
        if await self._enabled_admins() == [name]:
            raise ServiceError(409, f"{name!r} is the last enabled admin; make another admin first")
        await self.auth.delete(f"user.{name}")
        for token in await self.list_tokens():
            if token.owner == name:
                await self.auth.delete(f"token.{token.id}")

    async def end_all_sessions(self, name: str) -> User:
        def change(user: User) -> None:
            user.session_epoch += 1

        return await self._update_user(name, change)

    async def verify_password(self, name: str, password: str) -> User | None:
        user = await self.get_user(name)
        try:
            _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
        except (VerificationError, InvalidHashError):
            return None
        if user is None or user.disabled:
            return None
        return user

    # sessions
    async def open_session(self, user: User) -> tuple[str, Session]:
        session_id = secrets.token_urlsafe(32)
        now = time.time()
        session = Session(
            user=user.name, role=user.role, csrf=secrets.token_urlsafe(24), created_at=now, last_seen=now,
            epoch=user.session_epoch,
        )
        await self.sessions.put(f"s.{_sha256(session_id)}", self._enc.encode(session))
        return session_id, session

    async def session(self, session_id: str) -> Session | None:
        key = f"s.{_sha256(session_id)}"
        try:
            entry = await self.sessions.get(key)
        except KeyNotFoundError:
            return None
        if not entry.value:
            return None
        session = self._session_dec.decode(entry.value)
        now = time.time()
        if now - session.last_seen > SESSION_IDLE_S:
            await self.sessions.delete(key)
            return None
        if now - session.last_seen > SESSION_TOUCH_EVERY_S:
            session.last_seen = now
            await self.sessions.put(key, self._enc.encode(session))
        return session

    async def close_session(self, session_id: str) -> None:
        await self.sessions.delete(f"s.{_sha256(session_id)}")

    # tokens: "flint_<id>_<secret>"; only the secret's sha256 is stored (it is random, so no slow hash is needed)
    async def create_token(self, owner: User | Principal, name: str, role: str, ttl_days: float | None) -> tuple[Token, str]:
        if not name or len(name) > 64:
            raise ServiceError(422, "a token needs a name of 1-64 characters", "name")
        if role not in ROLES:
            raise ServiceError(422, f"role must be one of {', '.join(ROLES)}", "role")
        if not role_allows(owner.role, role):
            raise ServiceError(403, f"a {owner.role} cannot create a token with role {role}", "role")
        if ttl_days is not None and not 0 < ttl_days <= 3650:
            raise ServiceError(422, "expires_in_days must be between 0 and 3650", "expires_in_days")
        token_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        now = time.time()
        token = Token(
            id=token_id,
            name=name,
            role=role,
            owner=owner.name,
            secret_sha256=_sha256(secret),
            created_at=now,
            expires_at=now + ttl_days * 86400 if ttl_days else None,
        )
        await self.auth.put(f"token.{token_id}", self._enc.encode(token))
        return token, f"flint_{token_id}_{secret}"

    async def check_token(self, raw: str) -> Token | None:
        parts = raw.split("_", 2)
        if len(parts) != 3 or parts[0] != "flint" or not re.fullmatch(r"[0-9a-f]{16}", parts[1]):
            return None
        try:
            entry = await self.auth.get(f"token.{parts[1]}")
        except KeyNotFoundError:
            return None
        if not entry.value:
            return None
        token = self._token_dec.decode(entry.value)
        if not hmac.compare_digest(token.secret_sha256, _sha256(parts[2])):
            return None
        if token.expires_at is not None and token.expires_at < time.time():
            return None
        owner = await self.get_user(token.owner)
        if owner is None or owner.disabled:
            return None
        return token

    async def list_tokens(self) -> list[Token]:
        keys = [item.key for item in await kv_items(self.auth._js, self.auth._name, with_values=False)]
        tokens = []
        for key in keys:
            if key.startswith("token."):
                try:
                    entry = await self.auth.get(key)
                except KeyNotFoundError:
                    continue
                if entry.value:
                    tokens.append(self._token_dec.decode(entry.value))
        return tokens

    async def revoke_token(self, token_id: str) -> None:
        if not re.fullmatch(r"[0-9a-f]{16}", token_id):
            raise ServiceError(404, f"no token {token_id!r}")
        try:
            await self.auth.get(f"token.{token_id}")
        except KeyNotFoundError:
            raise ServiceError(404, f"no token {token_id!r}") from None
        await self.auth.delete(f"token.{token_id}")
