"""Agentless hosts: validate a registration (name, URI, SSH key, known_hosts), keep its key material under
<data dir>/hosts/<name>/ (0700, files 0600), check the host key before accepting, and build the libvirt URI
the host's services use.

libvirt reaches the host through its default `ssh` transport (the OpenSSH client): `keyfile=` names the
key, `no_tty=1` makes ssh run in BatchMode (never asks; an unknown key fails) and `no_verify=0` keeps host
key checking on. libvirt passes ssh no known_hosts file of ours (its `known_hosts=` parameter is for the
libssh/libssh2 transports only), so `command=` points at a small wrapper in the host's directory that runs
/usr/bin/ssh with `-F none`, `UserKnownHostsFile=<our file>`, `GlobalKnownHostsFile=/dev/null`,
`StrictHostKeyChecking=yes` and `IdentitiesOnly=yes`. The libssh transport (`qemu+libssh://…
?known_hosts=…&known_hosts_verify=normal`) reads the file directly but crashed (SIGSEGV) libvirt 9.0's
client here under concurrent calls from several threads, as every Flint service makes them.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

from flint.config import HOST_NAME_RE
from flint.contracts.common import ServiceError

SSH_SCHEMES = ("qemu+ssh", "qemu+libssh", "qemu+libssh2")
USER_RE = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
DNS_RE = re.compile(r"^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$")
MAX_TEXT = 64 * 1024
CONNECT_TIMEOUT_S = 10.0


def field_error(field: str, message: str, code: int = 422) -> ServiceError:
    return ServiceError(code, f"{field}: {message}", field)


def check_name(name: str, local: str = "local") -> str:
    if not isinstance(name, str) or not HOST_NAME_RE.match(name):
        raise field_error("name", "a host name is 1-63 of a-z, 0-9 and '-', starting with a letter or digit")
    if name == local:
        raise field_error("name", f"{name!r} is this machine's own host", 409)
    return name


@dataclass(frozen=True)
class SshTarget:
    user: str
    host: str  # a DNS name or an IP address (IPv6 without brackets)
    port: int = 22

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user}@{host}:{self.port}"

    @property
    def known_hosts_name(self) -> str:
        """How known_hosts names this host: `host`, or `[host]:port` off port 22."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    @property
    def uri(self) -> str:
        return f"qemu+ssh://{self.netloc}/system"


def parse_uri(uri: str) -> SshTarget | str:
    """`qemu+ssh://user@host[:port]/system` → SshTarget; `test:///abs/file.xml` (libvirt's test driver,
    no key needed) → the URI itself. Anything else is refused naming the field `uri`."""
    if not isinstance(uri, str) or not uri or len(uri) > 1024 or any(c.isspace() or ord(c) < 32 for c in uri):
        raise field_error("uri", "give a libvirt URI like qemu+ssh://root@host.example/system")
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError as exc:
        raise field_error("uri", f"{uri!r} is not a valid URI ({exc})") from None
    if parts.scheme == "test":
        if parts.netloc or parts.query or parts.fragment or not parts.path.startswith("/"):
            raise field_error("uri", "a test driver URI is test:///<absolute path of an XML file>")
        if not re.match(r"^/[A-Za-z0-9_./-]+$", parts.path) or "/../" in parts.path:
            raise field_error("uri", "the test driver file's path may hold only letters, digits, '_', '.', '-' and '/'")
        if not parts.path.endswith(".xml"):
            raise field_error("uri", "a test driver URI names an .xml file")
        if not _is_test_driver_file(Path(parts.path)):
            # one answer for missing, unreadable and foreign files: nothing about other files leaks
            raise field_error("uri", f"{parts.path} is not a libvirt test driver file (<node> root) here")
        return uri
    if parts.scheme != "qemu+ssh":
        raise field_error("uri", "only qemu+ssh://user@host[:port]/system (or test:///file.xml) can be added; "
                          "for other hosts run `flint agent` there")
    if parts.query or parts.fragment:
        raise field_error("uri", "leave out ?parameters: Flint sets the key, known_hosts and transport itself")
    if parts.path != "/system":
        raise field_error("uri", "the path must be /system (Flint manages the system libvirtd)")
    if parts.password is not None:
        raise field_error("uri", "no password in the URI: give ssh_private_key")
    user = parts.username
    if not user or not USER_RE.match(user):
        raise field_error("uri", "name the SSH user: qemu+ssh://USER@host/system (a-z, 0-9, '_', '.', '-')")
    host = parts.hostname or ""
    if "%" in host:
        raise field_error("uri", "an IPv6 zone id (%…) cannot be used in a libvirt URI: give a routable address")
    try:
        host = str(ipaddress.ip_address(host))
    except ValueError:
        if not DNS_RE.match(host):
            raise field_error("uri", f"{host!r} is not a host name or IP address") from None
    if port is not None and not 1 <= port <= 65535:
        raise field_error("uri", "the port must be 1-65535")
    return SshTarget(user=user, host=host.lower(), port=port or 22)


def _is_test_driver_file(path: Path) -> bool:
    """A readable XML file whose root is libvirt's test driver `<node>` (at most 64 MiB)."""
    from lxml import etree

    try:
        if not path.is_file() or path.stat().st_size > 64 << 20:
            return False
        return etree.parse(str(path), etree.XMLParser(resolve_entities=False, no_network=True)).getroot().tag == "node"
    except (OSError, etree.XMLSyntaxError):
        return False


def load_private_key(text: str):
    """The asyncssh key, or 422 on ssh_private_key. Encrypted keys are refused: nothing could type the
    passphrase when a service reconnects at night."""
    import asyncssh

    if not isinstance(text, str) or not text.strip():
        raise field_error("ssh_private_key", "is required for a qemu+ssh host (an OpenSSH or PEM private key)")
    if len(text) > MAX_TEXT:
        raise field_error("ssh_private_key", "is too long for a private key")
    try:
        key = asyncssh.import_private_key(text.strip() + "\n")
    except asyncssh.KeyImportError as exc:
        reason = str(exc)
        if "assphrase" in reason:
            raise field_error("ssh_private_key", "is encrypted: give a key without a passphrase "
                              "(ssh-keygen -p -N '' -f KEY removes it from a copy)") from None
        raise field_error("ssh_private_key", f"is not a private key asyncssh can read ({reason})") from None
    except Exception as exc:  # noqa: BLE001 - asyncssh raises OverflowError and others on mangled blobs
        raise field_error("ssh_private_key", f"is not a private key ({type(exc).__name__})") from None
    return key


def host_key_lines(text: str, target: SshTarget) -> list[str]:
    """The known_hosts lines Flint keeps for this host: every plain key the given text trusts for it,
    written as `[host]:port type base64` so libssh and asyncssh read it alike. 422 on known_hosts."""
    import asyncssh

    if not isinstance(text, str) or not text.strip():
        raise field_error("known_hosts", f"is required: the host's key as a known_hosts line, e.g. from "
                          f"`ssh-keyscan -p {target.port} {target.host}` checked against the host")
    if len(text) > MAX_TEXT:
        raise field_error("known_hosts", "is too long")
    try:
        known = asyncssh.import_known_hosts(text)
    except (ValueError, asyncssh.KeyImportError) as exc:
        raise field_error("known_hosts", f"cannot be read as known_hosts ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - asyncssh raises OverflowError and others on mangled blobs
        raise field_error("known_hosts", f"cannot be read as known_hosts ({type(exc).__name__})") from None
    addr = target.host if _is_ip(target.host) else ""
    host_keys, ca_keys, *_ = known.match(target.host, addr, target.port)
    if not host_keys:
        hint = " (certificate authorities are not supported: give the host's own key)" if ca_keys else ""
        raise field_error("known_hosts", f"has no key for {target.known_hosts_name}{hint}")
    lines: list[str] = []
    for key in host_keys:  # a key may match both as name and as address: keep it once
        public = key.export_public_key("openssh").decode().split()
        line = f"{target.known_hosts_name} {public[0]} {public[1]}"
        if line not in lines:
            lines.append(line)
    return lines


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


async def check_host(target: SshTarget, key, known_hosts: Path, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Log in once with the key, trusting only the given known_hosts. A different host key, a refused key
    or an unreachable host is a 422 naming the field to fix; nothing is accepted silently."""
    import asyncssh

    try:
        conn = await asyncssh.connect(
            target.host, target.port, username=target.user, client_keys=[key], known_hosts=str(known_hosts),
            agent_path=None, config=None, password=None, kbdint_auth=False, gss_auth=False,
            connect_timeout=timeout, login_timeout=timeout,
        )
    except asyncssh.HostKeyNotVerifiable:
        offered = await _offered_key(target)
        raise field_error("known_hosts", f"the host key of {target.known_hosts_name} does not match known_hosts"
                          f"{offered}: refused (check the host's key out of band before changing known_hosts)") from None
    except asyncssh.PermissionDenied:
        raise field_error("ssh_private_key", f"{target.user}@{target.known_hosts_name} refused this key "
                          "(add its public key to the user's authorized_keys)") from None
    except (OSError, asyncssh.Error, TimeoutError) as exc:
        raise field_error("uri", f"cannot reach {target.known_hosts_name} over SSH: {exc or type(exc).__name__}") from None
    conn.close()
    await conn.wait_closed()


async def _offered_key(target: SshTarget) -> str:
    import asyncssh

    try:
        key = await asyncio.wait_for(asyncssh.get_server_host_key(target.host, target.port), 5)
    except Exception:  # noqa: BLE001 - only for the message
        return ""
    return f" (it offered {key.get_algorithm()} {key.get_fingerprint()})" if key else ""


class HostFiles:
    """<data dir>/hosts/<name>/: `id` (the private key, 0600), `known_hosts` (0600); the directory 0700."""

    def __init__(self, data_dir: Path, name: str):
        if not HOST_NAME_RE.match(name):
            raise ValueError(f"bad host name {name!r}")
        self.dir = Path(data_dir) / "hosts" / name
        self.key = self.dir / "id"
        self.known_hosts = self.dir / "known_hosts"
        self.ssh = self.dir / "ssh"  # the wrapper libvirt runs as its ssh binary

    def write(self, key_text: str, known_hosts_lines: list[str]) -> None:
        (self.dir.parent).mkdir(parents=True, exist_ok=True, mode=0o700)
        self.dir.mkdir(exist_ok=True, mode=0o700)
        os.chmod(self.dir, 0o700)
        _write_private(self.key, key_text)
        _write_private(self.known_hosts, "\n".join(known_hosts_lines) + "\n")
        self.write_wrapper()

    def write_wrapper(self) -> None:
        ssh = shutil.which("ssh") or "/usr/bin/ssh"
        argv = [ssh, "-F", "none", "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
                "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes", "-o", "ServerAliveInterval=15"]
        script = "#!/bin/sh\n# made by Flint: ssh with this host's own known_hosts, nothing else\n"
        _write_private(self.ssh, script + "exec " + " ".join(shlex.quote(a) for a in argv) + ' "$@"\n', mode=0o700)

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def libvirt_uri(self, target: SshTarget) -> str:
        """What the services open: ssh with our key and known_hosts (the wrapper), host keys checked strictly."""
        if not self.ssh.exists():  # registered by an older version: make it
            self.write_wrapper()
        query = "&".join(f"{k}={quote(v, safe='/')}" for k, v in (
            ("keyfile", str(self.key)), ("known_hosts", str(self.known_hosts)), ("command", str(self.ssh)),
            ("no_verify", "0"), ("no_tty", "1"),
        ))
        return f"qemu+ssh://{target.netloc}/system?{query}"


def _write_private(path: Path, text: str, mode: int = 0o600) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


@dataclass(frozen=True)
class SshParams:
    """How to reach a libvirt URI's machine over SSH (for the console tunnel)."""

    user: str | None
    host: str
    port: int
    keyfile: str | None
    known_hosts: str | None


def ssh_params(uri: str) -> SshParams | None:
    """The SSH side of a libvirt URI (qemu+ssh, qemu+libssh, qemu+libssh2), else None."""
    parts = urlsplit(uri)
    if parts.scheme not in SSH_SCHEMES or not parts.hostname:
        return None
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    return SshParams(user=parts.username, host=parts.hostname, port=parts.port or 22,
                     keyfile=query.get("keyfile"), known_hosts=query.get("known_hosts"))


def display_uri(uri: str) -> str:
    """A libvirt URI as users wrote it: no query (paths of key files)."""
    parts = urlsplit(uri)
    if parts.scheme not in SSH_SCHEMES:
        return uri
    return f"qemu+ssh://{parts.netloc}{parts.path}"
