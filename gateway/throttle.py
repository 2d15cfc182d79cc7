"""Login throttling: after a few failures for a user name (or more for an address), wait with a growing backoff.

An address gets more tries than a name, since many people may share one address (a NAT, a proxy)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

FREE_ATTEMPTS = {"user": 5, "addr": 20}
WINDOW_S = 15 * 60
MAX_LOCK_S = 15 * 60


@dataclass
class _Record:
    failures: int = 0
    first: float = 0.0
    locked_until: float = 0.0


@dataclass
class LoginThrottle:
    records: dict[str, _Record] = field(default_factory=dict)

    def retry_after(self, *keys: str, now: float | None = None) -> int:
        """Seconds to wait before another attempt is allowed (0: go ahead)."""
        now = time.time() if now is None else now
        wait = 0.0
        for key in keys:
            rec = self.records.get(key)
            if rec and rec.locked_until > now:
                wait = max(wait, rec.locked_until - now)
        return int(wait + 0.999)

    def failed(self, *keys: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        for key in keys:
            rec = self.records.get(key)
            if rec is None or now - rec.first > WINDOW_S:
                rec = self.records[key] = _Record(first=now)
            rec.failures += 1
            free = FREE_ATTEMPTS.get(key.partition(":")[0], 5)
            if rec.failures >= free:
                rec.locked_until = now + min(2 ** (rec.failures - free), MAX_LOCK_S)
        if len(self.records) > 100_000:  # bounded memory under a flood of names
            self.records = {k: r for k, r in self.records.items() if now - r.first <= WINDOW_S}

    def succeeded(self, *keys: str) -> None:
        for key in keys:
            self.records.pop(key, None)
