from __future__ import annotations

from typing import Any

import msgspec


class Event(msgspec.Struct, kw_only=True):
    """What every flint.evt.<host>.<kind>.<id> message carries. `v` lets subscribers evolve."""

    v: int = 1
    host: str
    kind: str  # domain, pool, network, host, job, metrics, firewall
    id: str
    type: str  # updated, deleted, sample, progress, ...
    ts: float
    data: Any = None
