"""Settings from FLINT_* environment variables, falling back to flint.toml, then defaults."""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

HOST_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def default_data_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/flint")
    return Path.home() / ".local" / "share" / "flint"


def _toml_settings() -> dict:
    path = Path(os.environ.get("FLINT_CONFIG", "flint.toml"))
    if not path.is_file():
        return {}
    with path.open("rb") as f:
        data = tomllib.load(f)
    # Keys in flint.toml are the variable names without the prefix, lower case: bind = "..."
    return {f"FLINT_{k.upper()}": str(v) for k, v in data.items()}


@dataclass(frozen=True)
class Settings:
    bind: str = "127.0.0.1:5550"
    libvirt_uri: str = "qemu:///system"
    host: str = "local"
    nats_url: str | None = None
    data_dir: Path = field(default_factory=default_data_dir)
    admin_password: str | None = None
    virt_type: str | None = None
    log_format: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    stream_replicas: int = 1
    console_ticket_ttl: float = 30.0  # seconds a console ticket stays valid (1-30)
    console_relay: str = "auto"  # auto: proxy to a same-machine websockify, else over NATS; nats: always NATS
    nats_creds: str | None = None  # a credentials file (flint nats credentials create)
    nats_bind: str = "127.0.0.1"  # where the embedded nats-server listens; beyond loopback it serves TLS
    agentless: bool = False  # set by `flint up` for the services of a host added through POST /api/v1/hosts

    @property
    def bind_host(self) -> str:
        host, _, _ = self.bind.rpartition(":")
        return host.strip("[]") or "127.0.0.1"

    @property
    def bind_port(self) -> int:
        return int(self.bind.rpartition(":")[2])

    @property
    def is_loopback(self) -> bool:
        return self.bind_host in ("127.0.0.1", "localhost", "::1") or self.bind_host.startswith("127.")

    @property
    def effective_nats_url(self) -> str:
        return self.nats_url or "nats://127.0.0.1:4222"


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Read settings; raise ValueError naming the variable when one is malformed."""
    merged = _toml_settings()
    merged.update(os.environ if env is None else env)

    def get(name: str) -> str | None:
        value = merged.get(name)
        return value if value not in (None, "") else None

    host = get("FLINT_HOST") or "local"
    if not HOST_NAME_RE.match(host):
        raise ValueError(f"FLINT_HOST={host!r}: a host name is 1-63 of a-z, 0-9 and '-', starting alphanumeric")
    bind = get("FLINT_BIND") or "127.0.0.1:5550"
    if not re.match(r"^(\[[0-9a-fA-F:]+\]|[^:\s]+):\d{1,5}$", bind):
        raise ValueError(f"FLINT_BIND={bind!r}: expected ADDRESS:PORT, e.g. 127.0.0.1:5550")
    virt_type = get("FLINT_VIRT_TYPE")
    if virt_type not in (None, "auto", "kvm", "qemu"):
        raise ValueError(f"FLINT_VIRT_TYPE={virt_type!r}: expected kvm, qemu or auto")
    replicas = get("FLINT_STREAM_REPLICAS") or "1"
    if not replicas.isdigit() or not 1 <= int(replicas) <= 5:
        raise ValueError(f"FLINT_STREAM_REPLICAS={replicas!r}: expected a number from 1 to 5")
    ticket_ttl = get("FLINT_CONSOLE_TICKET_TTL") or "30"
    try:
        console_ticket_ttl = float(ticket_ttl)
    except ValueError:
        console_ticket_ttl = 0.0
    if not 1 <= console_ticket_ttl <= 30:
        raise ValueError(f"FLINT_CONSOLE_TICKET_TTL={ticket_ttl!r}: expected seconds from 1 to 30")
    console_relay = get("FLINT_CONSOLE_RELAY") or "auto"
    if console_relay not in ("auto", "nats"):
        raise ValueError(f"FLINT_CONSOLE_RELAY={console_relay!r}: expected auto or nats")
    data_dir = get("FLINT_DATA_DIR")
    return Settings(
        bind=bind,
        libvirt_uri=get("FLINT_LIBVIRT_URI") or "qemu:///system",
        host=host,
        nats_url=get("FLINT_NATS_URL"),
        data_dir=Path(data_dir) if data_dir else default_data_dir(),
        admin_password=get("FLINT_ADMIN_PASSWORD"),
        virt_type=None if virt_type in (None, "auto") else virt_type,
        log_format=get("FLINT_LOG_FORMAT"),
        tls_cert=get("FLINT_TLS_CERT"),
        tls_key=get("FLINT_TLS_KEY"),
        stream_replicas=int(replicas),
        console_ticket_ttl=console_ticket_ttl,
        console_relay=console_relay,
        nats_creds=get("FLINT_NATS_CREDS"),
        nats_bind=get("FLINT_NATS_BIND") or "127.0.0.1",
        agentless=get("FLINT_AGENTLESS") == "1",
    )
