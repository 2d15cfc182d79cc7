"""Validation of names that end up in libvirt XML, file paths and NATS subjects."""

from __future__ import annotations

import re

KINDS = ("vm", "pool", "volume", "network", "filter")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_LABEL = {"vm": "VM name", "pool": "pool name", "volume": "volume name", "network": "network name",
          "filter": "filter name"}


def validate_name(kind: str, value: object) -> str:
    """Return ``value`` if it is a valid ``kind`` name, else raise ``ValueError`` naming the field.

    A name is 1-63 characters of letters, digits, ``.``, ``_`` and ``-``, starting with a letter or digit,
    without ``..``. VM, pool, network and filter names contain no dot at all; a volume name may carry one
    dot, for its extension (``disk.qcow2``).
    """
    if kind not in _LABEL:
        raise ValueError(f"unknown name kind {kind!r} (expected one of {', '.join(KINDS)})")
    label = _LABEL[kind]
    if not isinstance(value, str):
        raise ValueError(f"{label} must be a string, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{label} must not be empty")
    if len(value) > 63:
        raise ValueError(f"{label} {value!r} is too long ({len(value)} characters, at most 63)")
    if not _NAME.fullmatch(value):
        raise ValueError(
            f"{label} {value!r} is invalid: use letters, digits, '.', '_' and '-', starting with a letter or digit"
        )
    if ".." in value:
        raise ValueError(f"{label} {value!r} must not contain '..'")
    dots = value.count(".")
    if kind == "volume" and dots > 1:
        raise ValueError(f"{label} {value!r} may contain at most one '.' (for its extension)")
    if kind != "volume" and dots:
        raise ValueError(f"{label} {value!r} must not contain '.'")
    return value


def validator(kind: str):
    """A one-argument validator for ``Prop(..., validate=validator("vm"))``."""
    return lambda value: validate_name(kind, value)
