"""Hold a STOPPED that may be half of a reboot, so a reboot is never shown as a shutdown.

Nova learned this the hard way: some reboots reach us as STOPPED then STARTED a moment later. Showing
"shutoff" in between makes dashboards flicker and alerts fire. A STOPPED is *held* (its domain is not
re-read nor published) for `hold_s` when
- the domain had a REBOOT event within `reboot_memory_s` (and this stop is not an explicit destroy), or
- the stop was neither a destroy nor a guest shutdown (crashed, failed, saved, migrated, snapshot...):
  such stops are the ones a restart policy follows.
STARTED (or any other lifecycle event that shows the domain alive) ends the hold at once: the caller
re-reads the domain and publishes only "running". When the hold expires, the caller re-reads it and
publishes whatever libvirt says (shutoff, if nothing restarted it). A plain `virsh destroy` or guest
shutdown is never held, so it shows promptly.

Pure: fed with (uuid, event, detail, now); holds no clock and calls nothing.
"""

from __future__ import annotations

from enum import Enum

import libvirt

# libvirt lifecycle event numbers (virDomainEventType) and STOPPED details.
EV_STARTED = libvirt.VIR_DOMAIN_EVENT_STARTED
EV_STOPPED = libvirt.VIR_DOMAIN_EVENT_STOPPED
EV_UNDEFINED = libvirt.VIR_DOMAIN_EVENT_UNDEFINED
EV_REBOOT = -1  # not a lifecycle event: the separate VIR_DOMAIN_EVENT_ID_REBOOT callback
STOPPED_SHUTDOWN = libvirt.VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN
STOPPED_DESTROYED = libvirt.VIR_DOMAIN_EVENT_STOPPED_DESTROYED


class Decision(Enum):
    REFRESH = "refresh"  # re-read the domain and publish now
    HOLD = "hold"  # do not read it now; due() will say when
    IGNORE = "ignore"  # nothing to do (a REBOOT event alone changes no state)


class StopDebouncer:
    def __init__(self, hold_s: float = 3.0, reboot_memory_s: float = 10.0):
        self.hold_s = hold_s
        self.reboot_memory_s = reboot_memory_s
        self._held: dict[str, float] = {}  # uuid -> hold deadline
        self._rebooted: dict[str, float] = {}  # uuid -> time of its last REBOOT event

    def feed(self, uuid: str, event: int, detail: int, now: float) -> Decision:
        if event == EV_REBOOT:
            self._rebooted[uuid] = now
            return Decision.IGNORE
        if event == EV_STOPPED:
            if self._should_hold(uuid, detail, now):
                # A second STOPPED keeps the first deadline: a hold never grows without bound.
                self._held.setdefault(uuid, now + self.hold_s)
                return Decision.HOLD
            self._held.pop(uuid, None)
            return Decision.REFRESH
        # STARTED, RESUMED, UNDEFINED, ...: the domain is not (only) stopped any more; end any hold.
        self._held.pop(uuid, None)
        if event in (EV_STARTED, EV_UNDEFINED):
            self._rebooted.pop(uuid, None)
        return Decision.REFRESH

    def _should_hold(self, uuid: str, detail: int, now: float) -> bool:
        if detail == STOPPED_DESTROYED:
            return False  # explicit power-off: show it now, even right after a reboot
        rebooted_at = self._rebooted.get(uuid)
        if rebooted_at is not None and now - rebooted_at <= self.reboot_memory_s:
            return True
        return detail != STOPPED_SHUTDOWN

    def is_held(self, uuid: str) -> bool:
        return uuid in self._held

    def held(self) -> set[str]:
        return set(self._held)

    def due(self, now: float) -> list[str]:
        """Holds that expired: the caller re-reads these domains and publishes what it finds."""
        expired = [uuid for uuid, deadline in self._held.items() if deadline <= now]
        for uuid in expired:
            del self._held[uuid]
        self._forget_old_reboots(now)
        return expired

    def next_deadline(self) -> float | None:
        return min(self._held.values(), default=None)

    def _forget_old_reboots(self, now: float) -> None:
        for uuid, at in list(self._rebooted.items()):
            if now - at > self.reboot_memory_s:
                del self._rebooted[uuid]
