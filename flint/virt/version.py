"""libvirt version numbers: the minimum Flint supports, formatting and the check.

libvirt encodes a version as one integer: major * 1_000_000 + minor * 1_000 + micro
(9.0.0 is 9000000). `libvirt.getVersion()` gives the library the binding is linked against,
`conn.getLibVersion()` the daemon's. Both must be at least MIN_LIBVIRT.
"""

from __future__ import annotations

import re

# Ubuntu 22.04 ships libvirt 8.0.0: the oldest distribution release Flint supports.
MIN_LIBVIRT: tuple[int, int, int] = (8, 0, 0)

_VERSION_RE = re.compile(r"^\s*(?:libvirt\s+)?v?(\d+)\.(\d+)(?:\.(\d+))?\s*$", re.IGNORECASE)


def version_int(major: int, minor: int = 0, micro: int = 0) -> int:
    """(9, 0, 0) -> 9000000, libvirt's own encoding."""
    if not (0 <= minor < 1000 and 0 <= micro < 1000 and major >= 0):
        raise ValueError(f"not a libvirt version: {major}.{minor}.{micro}")
    return major * 1_000_000 + minor * 1_000 + micro


def version_tuple(version: int) -> tuple[int, int, int]:
    """9000000 -> (9, 0, 0)."""
    if version < 0:
        raise ValueError(f"not a libvirt version number: {version}")
    return version // 1_000_000, (version // 1_000) % 1_000, version % 1_000


def format_version(version: int) -> str:
    """9000000 -> "9.0.0"."""
    return "{}.{}.{}".format(*version_tuple(version))


def parse_version(text: str) -> int:
    """ "9.0.0", "8.0" or "libvirt 9.0.0" -> libvirt's integer encoding."""
    match = _VERSION_RE.match(text)
    if match is None:
        raise ValueError(f"not a libvirt version: {text!r} (expected MAJOR.MINOR[.MICRO], e.g. 9.0.0)")
    major, minor, micro = (int(part) if part else 0 for part in match.groups())
    return version_int(major, minor, micro)


MIN_LIBVIRT_INT: int = version_int(*MIN_LIBVIRT)


class LibvirtTooOld(RuntimeError):
    """The installed libvirt (library or daemon) is older than MIN_LIBVIRT."""

    def __init__(self, installed: str, required: str) -> None:
        self.installed = installed
        self.required = required
        super().__init__(
            f"libvirt {installed} is too old: Flint needs libvirt {required} or newer. "
            f"Upgrade the libvirt packages (Debian 12, Ubuntu 22.04 and newer releases ship a recent "
            f"enough libvirt: apt-get install --only-upgrade libvirt-daemon libvirt-clients libvirt0), "
            f"then restart libvirtd."
        )


def check_libvirt_version(installed: int) -> None:
    """Raise LibvirtTooOld when `installed` (libvirt's integer encoding) is below MIN_LIBVIRT."""
    if installed < MIN_LIBVIRT_INT:
        raise LibvirtTooOld(format_version(installed), format_version(MIN_LIBVIRT_INT))
