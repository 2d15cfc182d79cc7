"""`flint doctor`: is this machine ready to run Flint, and if not, what to do about it.

One line per check: `ok|warn|FAIL  <check>: <finding> — fix: <one-line fix>`. A FAIL blocks Flint
(exit 1); a warn limits it (TCG instead of KVM, no firewall, no frontend). `--json` prints a list of
{check, status, finding, fix} for scripts. Every check is a plain function of its inputs so that
tests can run it against temp dirs and fake environments.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import stat
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flint.virt.kvm import detect_virt_type
from flint.virt.version import MIN_LIBVIRT_INT, format_version

OK, WARN, FAIL = "ok", "warn", "FAIL"
DEFAULT_URI = "qemu:///system"
CONNECT_TIMEOUT = 10.0
NATS_TIMEOUT = 2.0
SBIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Result:
    check: str
    status: str
    finding: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.status:<4}  {self.check}: {self.finding}"
        return f"{text} — fix: {self.fix}" if self.status != OK and self.fix else text


@dataclass
class Probe:
    """What several checks share: the environment and one libvirt connection, opened once."""

    env: Mapping[str, str]
    timeout: float = CONNECT_TIMEOUT
    conn: Any = None
    conn_error: str | None = None
    _opened: bool = field(default=False, repr=False)

    @property
    def uri(self) -> str:
        return self.env.get("FLINT_LIBVIRT_URI") or DEFAULT_URI

    def connection(self) -> Any:
        if not self._opened:
            self._opened = True
            self.conn, self.conn_error = open_libvirt(self.uri, self.timeout)
        return self.conn

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:  # closing is best effort
                pass
            self.conn = None


def find_binary(name: str) -> str | None:
    """`which`, also looking in the sbin dirs a non-root PATH lacks."""
    found = shutil.which(name)
    if found:
        return found
    for directory in SBIN_DIRS:
        candidate = os.path.join(directory, name)
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _import_libvirt() -> Any:
    import libvirt

    # libvirt prints every error to stderr by default: the checks report them instead.
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    return libvirt


def open_libvirt(uri: str, timeout: float) -> tuple[Any, str | None]:
    """libvirt.open(uri) in a daemon thread so that a hung daemon or SSH cannot hang the doctor."""
    try:
        libvirt = _import_libvirt()
    except ImportError as exc:
        return None, f"libvirt-python is not importable ({exc})"
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["conn"] = libvirt.open(uri)
        except libvirt.libvirtError as exc:
            box["error"] = str(exc.get_error_message() or exc)

    thread = threading.Thread(target=target, name="doctor-libvirt-open", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return None, f"no answer within {timeout:g} s"
    if "error" in box:
        return None, box["error"]
    return box.get("conn"), None


# ---------------------------------------------------------------- checks


def check_python(
    version: tuple[int, ...] = tuple(sys.version_info[:3]), executable: str = sys.executable
) -> Result:
    shown = ".".join(str(part) for part in version[:3])
    if tuple(version[:2]) >= (3, 11):
        return Result("python", OK, f"{shown} ({executable})")
    return Result(
        "python", FAIL, f"{shown} is older than 3.11", "recreate .venv with python3.11 or newer (make setup)"
    )


def check_libvirt_python() -> Result:
    try:
        libvirt = _import_libvirt()
    except ImportError as exc:
        return Result(
            "libvirt-python",
            FAIL,
            f"not importable ({exc})",
            "apt-get install gcc pkg-config libvirt-dev, then .venv/bin/pip install -e . (make setup)",
        )
    try:
        from importlib.metadata import version as dist_version

        binding = dist_version("libvirt-python")
    except Exception:  # only for display
        binding = "?"
    library = libvirt.getVersion()
    if library < MIN_LIBVIRT_INT:
        return Result(
            "libvirt-python",
            FAIL,
            f"{binding} linked against libvirt {format_version(library)}, older than {format_version(MIN_LIBVIRT_INT)}",
            f"upgrade the libvirt packages to {format_version(MIN_LIBVIRT_INT)} or newer, then make setup",
        )
    return Result("libvirt-python", OK, f"{binding}, libvirt library {format_version(library)}")


def check_libvirtd(probe: Probe) -> Result:
    conn = probe.connection()
    if conn is None:
        fix = (
            "start it: virtlogd -d && libvirtd -d (no systemd) or systemctl start libvirtd (make setup does this)"
            if probe.uri.startswith("qemu:///")
            else "check the URI, SSH key and known_hosts; try virsh -c URI version"
        )
        return Result("libvirtd", FAIL, f"cannot connect to {probe.uri}: {probe.conn_error}", fix)
    try:
        daemon = conn.getLibVersion()
    except Exception as exc:  # any libvirt error is the finding
        return Result(
            "libvirtd", FAIL, f"{probe.uri} answers but getLibVersion failed: {exc}", "restart libvirtd"
        )
    if daemon < MIN_LIBVIRT_INT:
        return Result(
            "libvirtd",
            FAIL,
            f"{probe.uri}: libvirt {format_version(daemon)} is older than {format_version(MIN_LIBVIRT_INT)}",
            f"upgrade libvirt on that host to {format_version(MIN_LIBVIRT_INT)} or newer, then restart libvirtd",
        )
    return Result("libvirtd", OK, f"{probe.uri} answers, libvirt {format_version(daemon)}")


def check_virt_type(env: Mapping[str, str], detect: Callable[..., Any] = detect_virt_type) -> Result:
    try:
        report = detect(env.get("FLINT_VIRT_TYPE"))
    except ValueError as exc:
        return Result("virt type", FAIL, str(exc), "set FLINT_VIRT_TYPE to kvm or qemu, or unset it")
    if report.virt_type == "kvm":
        return Result("virt type", OK, f"kvm: {report.reason}")
    if report.source == "override":
        return Result(
            "virt type", WARN, f"qemu (TCG): {report.reason}", "unset FLINT_VIRT_TYPE to use KVM where usable"
        )
    return Result(
        "virt type",
        WARN,
        f"qemu (TCG, software emulation, much slower than KVM): {report.reason}",
        "none needed to run (TCG works, slowly); for KVM use a host that exposes VT-x/AMD-V (bare metal or "
        "nested virtualisation) with kvm_intel/kvm_amd loaded",
    )


def check_qemu(probe: Probe) -> Result:
    found = find_binary("qemu-system-x86_64")
    if found:
        return Result("qemu", OK, found)
    conn = probe.connection()
    if conn is not None:
        try:
            from lxml import etree

            caps = etree.fromstring(conn.getCapabilities().encode())
            emulators = sorted({e.text for e in caps.iter("emulator") if e.text})
        except Exception:  # fall through to FAIL
            emulators = []
        if emulators:
            return Result("qemu", OK, f"libvirt offers {', '.join(emulators)}")
    return Result(
        "qemu",
        FAIL,
        "qemu-system-x86_64 not on PATH nor in libvirt's capabilities",
        "apt-get install qemu-system-x86 qemu-utils (make setup)",
    )


def _nats_endpoints(url: str) -> list[tuple[str, int]]:
    endpoints = []
    for part in url.split(","):
        part = part.strip()
        if not part:
            continue
        parsed = urlsplit(part if "://" in part else f"nats://{part}")
        endpoints.append((parsed.hostname or "127.0.0.1", parsed.port or 4222))
    return endpoints


def check_nats(env: Mapping[str, str], timeout: float = NATS_TIMEOUT) -> Result:
    url = env.get("FLINT_NATS_URL", "").strip()
    if not url:
        found = find_binary("nats-server")
        if found:
            return Result("nats", OK, f"FLINT_NATS_URL unset: flint up will start {found}")
        return Result(
            "nats",
            FAIL,
            "FLINT_NATS_URL unset and no nats-server binary",
            "apt-get install nats-server (make setup), or set FLINT_NATS_URL to a running NATS",
        )
    try:
        endpoints = _nats_endpoints(url)
    except ValueError as exc:
        return Result("nats", FAIL, f"FLINT_NATS_URL={url!r} is not a URL ({exc})", "use nats://HOST:PORT")
    if not endpoints:
        return Result("nats", FAIL, f"FLINT_NATS_URL={url!r} names no server", "use nats://HOST:PORT")
    errors = []
    for host, port in endpoints:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return Result("nats", OK, f"{host}:{port} accepts connections")
        except OSError as exc:
            errors.append(f"{host}:{port} {exc.strerror or exc}")
    return Result(
        "nats",
        FAIL,
        f"FLINT_NATS_URL={url} not reachable ({'; '.join(errors)})",
        "start that NATS server, or unset FLINT_NATS_URL so flint up starts its own",
    )


def default_data_dir(env: Mapping[str, str], euid: int | None = None) -> Path:
    if env.get("FLINT_DATA_DIR"):
        return Path(env["FLINT_DATA_DIR"]).expanduser()
    euid = os.geteuid() if euid is None else euid
    if euid == 0:
        return Path("/var/lib/flint")
    base = env.get("XDG_DATA_HOME") or os.path.join(
        env.get("HOME") or os.path.expanduser("~"), ".local", "share"
    )
    return Path(base) / "flint"


def check_data_dir(env: Mapping[str, str]) -> Result:
    path = default_data_dir(env)
    fix_create = (
        f"mkdir -p -m 700 {path} as the user running flint, or set FLINT_DATA_DIR to a writable directory"
    )
    created = False
    if not path.exists():
        try:
            path.mkdir(mode=0o700, parents=True)
            created = True
        except OSError as exc:
            return Result("data dir", FAIL, f"{path} cannot be created ({exc.strerror or exc})", fix_create)
    if not path.is_dir():
        return Result("data dir", FAIL, f"{path} exists but is not a directory", fix_create)
    try:
        fd, probe_file = tempfile.mkstemp(prefix=".flint-doctor-", dir=path)
        os.close(fd)
        os.unlink(probe_file)
    except OSError as exc:
        return Result(
            "data dir",
            FAIL,
            f"{path} is not writable ({exc.strerror or exc})",
            f"chown {os.geteuid()} {path} && chmod 700 {path}, or set FLINT_DATA_DIR",
        )
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return Result(
            "data dir",
            WARN,
            f"{path} has mode {mode:04o}: others can read the NATS store (users, tokens)",
            f"chmod 700 {path}",
        )
    return Result("data dir", OK, f"{path} {'created' if created else 'writable'}, mode {mode:04o}")


def check_firewall_tools() -> Result:
    missing = [name for name in ("iptables", "ebtables") if find_binary(name) is None]
    if missing:
        return Result(
            "firewall tools",
            WARN,
            f"{' and '.join(missing)} not found: VMs with firewall rules will not start",
            "apt-get install iptables ebtables (make setup)",
        )
    return Result("firewall tools", OK, "iptables and ebtables present")


def check_nwfilter(probe: Probe) -> Result:
    conn = probe.connection()
    if conn is None:
        return Result("nwfilter", WARN, "not checked: libvirtd unreachable", "fix libvirtd first")
    try:
        count = len(conn.listAllNWFilters(0))
    except Exception as exc:  # the driver's error is the finding
        message = exc.get_error_message() if hasattr(exc, "get_error_message") else str(exc)
        return Result(
            "nwfilter",
            WARN,
            f"nwfilter driver not available ({message}): no firewall rules",
            "apt-get install libvirt-daemon-config-nwfilter, then restart libvirtd",
        )
    return Result("nwfilter", OK, f"driver answers, {count} filters")


def check_frontend(root: Path = REPO_ROOT) -> Result:
    index = root / "frontend" / "dist" / "index.html"
    if index.is_file():
        return Result("frontend", OK, f"built ({index})")
    return Result(
        "frontend",
        WARN,
        f"{index} missing: the browser UI will not be served",
        "cd frontend && npm ci && npm run build (make setup does this)",
    )


def collect(env: Mapping[str, str], timeout: float = CONNECT_TIMEOUT) -> list[Result]:
    probe = Probe(env=env, timeout=timeout)
    try:
        return [
            check_python(),
            check_libvirt_python(),
            check_libvirtd(probe),
            check_virt_type(env),
            check_qemu(probe),
            check_nats(env),
            check_data_dir(env),
            check_firewall_tools(),
            check_nwfilter(probe),
            check_frontend(),
        ]
    finally:
        probe.close()


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="flint doctor", description="Check that this machine can run Flint."
    )
    parser.add_argument(
        "--json", action="store_true", help="print a JSON list of {check, status, finding, fix}"
    )
    args = parser.parse_args(argv)
    results = collect(os.environ)
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    else:
        for result in results:
            print(result.line())
    return 1 if any(r.status == FAIL for r in results) else 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
