"""NATS as a secured surface: users with bcrypt passwords and per-role permissions, a generated
nats-server configuration, and credentials files for clients.

Roles
- system: the gateway, the supervisor and the services of hosts run by `flint up` on this machine.
- agent (per host): serves and publishes only its own host's subjects and KV keys.
- subscriber: reads events (flint.evt.>, flint.live.>), publishes nothing of Flint's.
Anonymous connections are refused. A listener beyond loopback serves TLS."""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

import bcrypt

from flint import subjects
from flint.config import HOST_NAME_RE

ROLES = ("system", "agent", "subscriber")
USER_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,80}$")
# JetStream API calls an agent or subscriber never needs: they could destroy or rewrite shared state.
JS_ADMIN_DENY = [
    "$JS.API.STREAM.CREATE.>", "$JS.API.STREAM.UPDATE.>", "$JS.API.STREAM.DELETE.>", "$JS.API.STREAM.PURGE.>",
    "$JS.API.STREAM.MSG.DELETE.>", "$JS.API.STREAM.RESTORE.>", "$JS.API.STREAM.SNAPSHOT.>",
    "$JS.API.CONSUMER.DELETE.>", "$JS.API.ACCOUNT.PURGE.>", "$JS.API.SERVER.>", "$JS.API.META.>",
]


@dataclass
class NatsUser:
    user: str
    role: str
    host: str | None
    password_bcrypt: str


@dataclass
class Credentials:
    url: str
    user: str
    password: str
    ca: str | None = None

    def dump(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"


def load_credentials(path: str | Path) -> Credentials:
    data = json.loads(Path(path).read_text())
    return Credentials(**{k: data.get(k) for k in ("url", "user", "password", "ca")})


def permissions(role: str, host: str | None) -> dict:
    """What each role may publish and subscribe to (nats-server permission blocks)."""
    if role == "system":
        return {"publish": {"allow": [">"]}, "subscribe": {"allow": [">"]}}
    if role == "agent":
        assert host
        kv = lambda bucket, key: f"$KV.{bucket}.{key}"  # noqa: E731
        return {
            "publish": {
                "allow": [
                    f"flint.evt.{host}.>", f"flint.live.{host}.>", subjects.job(host), subjects.audit(host),
                    kv(subjects.KV_INVENTORY, f"{host}.>"), kv(subjects.KV_HOSTS, host), kv(subjects.KV_JOBS, f"{host}.>"), kv(subjects.KV_CONSOLE, ">"),
                    kv(subjects.KV_FIREWALL, f"{subjects.KV_FW_USAGE_PREFIX}{host}.>"),  # its VMs' ruleset usage
                    "$JS.API.>", "$JS.ACK.>", "$SRV.>", "_INBOX.>",
                ],
                "deny": JS_ADMIN_DENY,
            },
            # its own requests, and its own host's events (the firewall follows its VMs' domain events)
            "subscribe": {"allow": [f"flint.{host}.>", f"flint.evt.{host}.>", "$SRV.>", "_INBOX.>"]},
            "allow_responses": True,
        }
    if role == "subscriber":
        return {
            "publish": {
                "allow": [
                    f"$JS.API.STREAM.INFO.{subjects.EVENTS_STREAM}",
                    f"$JS.API.CONSUMER.CREATE.{subjects.EVENTS_STREAM}",
                    f"$JS.API.CONSUMER.CREATE.{subjects.EVENTS_STREAM}.>",
                    f"$JS.API.CONSUMER.INFO.{subjects.EVENTS_STREAM}.>",
                    f"$JS.API.CONSUMER.MSG.NEXT.{subjects.EVENTS_STREAM}.>",
                    f"$JS.ACK.{subjects.EVENTS_STREAM}.>",
                    f"$JS.FC.{subjects.EVENTS_STREAM}.>",
                ],
            },
            "subscribe": {"allow": [subjects.EVENTS_ALL, subjects.LIVE_ALL, "_INBOX.>"]},
        }
    raise ValueError(f"role must be one of {', '.join(ROLES)}")


class NatsAuth:
    """Users and the generated server configuration, kept under <data dir>/nats-auth (0700)."""

    def __init__(self, data_dir: Path):
        self.dir = data_dir / "nats-auth"
        self.users_file = self.dir / "users.json"
        self.config_file = self.dir / "nats-server.conf"

    def _users(self) -> list[NatsUser]:
        if not self.users_file.is_file():
            return []
        return [NatsUser(**u) for u in json.loads(self.users_file.read_text())]

    def write_private(self, path: Path, text: str) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)

    def add_user(self, role: str, host: str | None, url: str, ca: str | None = None, name: str | None = None) -> Credentials:
        """A new user with a random password; the password exists in clear only in what this returns."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        if role == "agent" and (not host or not HOST_NAME_RE.match(host)):
            raise ValueError("an agent needs --host NAME (1-63 of a-z, 0-9, '-')")
        name = name or f"{role}-{host + '-' if role == 'agent' else ''}{secrets.token_hex(4)}"
        if not USER_RE.match(name):
            raise ValueError(f"bad NATS user name {name!r}")
        password = secrets.token_urlsafe(32)
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=11)).decode()
        users = [u for u in self._users() if u.user != name]
        users.append(NatsUser(user=name, role=role, host=host if role == "agent" else None, password_bcrypt=hashed))
        self.write_private(self.users_file, json.dumps([asdict(u) for u in users], indent=2))
        return Credentials(url=url, user=name, password=password, ca=ca)

    def remove_user(self, name: str) -> bool:
        users = self._users()
        kept = [u for u in users if u.user != name]
        self.write_private(self.users_file, json.dumps([asdict(u) for u in kept], indent=2))
        return len(kept) != len(users)

    def users(self) -> list[NatsUser]:
        return self._users()

    def write_server_config(self, host: str, port: int, store_dir: Path, tls: tuple[Path, Path] | None) -> Path:
        """nats-server accepts JSON as configuration: built with json, never by string formatting."""
        conf: dict = {
            "host": host,
            "port": port,
            "server_name": "flint",
            "jetstream": {"store_dir": str(store_dir)},
            "authorization": {
                "users": [
                    {"user": u.user, "password": u.password_bcrypt, "permissions": permissions(u.role, u.host)}
                    for u in self._users()
                ]
            },
        }
        if tls is not None:
            conf["tls"] = {"cert_file": str(tls[0]), "key_file": str(tls[1])}
        self.write_private(self.config_file, json.dumps(conf, indent=2))
        return self.config_file


@dataclass
class PreparedServer:
    config: Path  # nats-server -c <config>
    creds: Path  # the system user's credentials file
    url: str  # where this machine's Flint processes connect


def prepare_server(data_dir: Path, bind: str, port: int, store_dir: Path, url: str | None = None,
                   tls_names: set[str] = frozenset()) -> PreparedServer:
    """The system user (created once, password kept), its credentials file and the server configuration.

    Shared by `flint up` (embedded nats-server) and `flint nats init` (a nats-server run elsewhere, as in
    compose). Beyond loopback the server serves TLS with a self-signed certificate for `tls_names`."""
    from flint.tls import self_signed

    auth = NatsAuth(data_dir)
    auth.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    auth.dir.chmod(0o700)  # before the TLS key lands under it
    loopback = bind.startswith("127.") or bind in ("localhost", "::1")
    tls = None if loopback else self_signed(auth.dir / "tls", "nats", {bind, *tls_names} - {"0.0.0.0", "::"})
    url = url or f"{'nats' if loopback else 'tls'}://127.0.0.1:{port}"
    ca = None if tls is None else str(tls[0])
    creds_path = auth.dir / "system.creds"
    if creds_path.is_file() and any(u.user == "flint-system" for u in auth.users()):
        creds = load_credentials(creds_path)  # keep the password; refresh where to connect
        creds.url, creds.ca = url, ca
    else:
        creds = auth.add_user("system", None, url, ca, name="flint-system")
    auth.write_private(creds_path, creds.dump())
    config = auth.write_server_config(bind, port, store_dir, tls)
    return PreparedServer(config=config, creds=creds_path, url=url)
