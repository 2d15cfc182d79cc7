"""The reboot debounce: a pure state machine fed with (uuid, event, detail, time)."""

from __future__ import annotations

import libvirt

from services.inventory.debounce import EV_REBOOT, Decision, StopDebouncer

STARTED, STOPPED, RESUMED, UNDEFINED = (
    libvirt.VIR_DOMAIN_EVENT_STARTED,
    libvirt.VIR_DOMAIN_EVENT_STOPPED,
    libvirt.VIR_DOMAIN_EVENT_RESUMED,
    libvirt.VIR_DOMAIN_EVENT_UNDEFINED,
)
DESTROYED = libvirt.VIR_DOMAIN_EVENT_STOPPED_DESTROYED
SHUTDOWN = libvirt.VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN
CRASHED = libvirt.VIR_DOMAIN_EVENT_STOPPED_CRASHED


def run(events, hold_s=3.0):
    """Feed (time, uuid, event, detail) tuples; return what the caller would have re-read, and when."""
    d = StopDebouncer(hold_s=hold_s)
    refreshed = []
    for now, uuid, event, detail in events:
        for expired in d.due(now):
            refreshed.append((now, expired, "hold expired"))
        if d.feed(uuid, event, detail, now) is Decision.REFRESH:
            refreshed.append((now, uuid, event))
    return d, refreshed


def test_plain_destroy_shows_at_once():
    d, refreshed = run([(0.0, "a", STOPPED, DESTROYED)])
    assert refreshed == [(0.0, "a", STOPPED)]
    assert not d.is_held("a")


def test_guest_shutdown_shows_at_once():
    _, refreshed = run([(0.0, "a", STOPPED, SHUTDOWN)])
    assert refreshed == [(0.0, "a", STOPPED)]


def test_reboot_stop_then_start_publishes_only_running():
    d, refreshed = run([
        (0.0, "a", EV_REBOOT, 0),
        (0.5, "a", STOPPED, SHUTDOWN),  # held: it follows a REBOOT
        (1.2, "a", STARTED, 0),  # ends the hold: re-read shows running
        (9.0, "a", RESUMED, 0),
    ])
    assert refreshed == [(1.2, "a", STARTED), (9.0, "a", RESUMED)]
    assert d.held() == set()


def test_crash_followed_by_restart_is_held_without_a_reboot_event():
    _, refreshed = run([(0.0, "a", STOPPED, CRASHED), (2.0, "a", STARTED, 0)])
    assert refreshed == [(2.0, "a", STARTED)]


def test_a_held_stop_that_nothing_restarts_shows_after_the_hold():
    d, refreshed = run([(0.0, "a", STOPPED, CRASHED), (2.9, "b", STARTED, 0), (3.0, "b", RESUMED, 0)])
    assert refreshed == [(2.9, "b", STARTED), (3.0, "a", "hold expired"), (3.0, "b", RESUMED)]
    assert d.next_deadline() is None


def test_next_deadline_tells_the_consumer_when_to_wake():
    d = StopDebouncer(hold_s=3.0)
    assert d.next_deadline() is None
    d.feed("a", STOPPED, CRASHED, 10.0)
    d.feed("a", STOPPED, CRASHED, 11.0)  # a second STOPPED does not extend the hold
    assert d.next_deadline() == 13.0
    assert d.due(12.9) == [] and d.due(13.0) == ["a"]


def test_destroy_right_after_a_reboot_is_not_held():
    _, refreshed = run([(0.0, "a", EV_REBOOT, 0), (1.0, "a", STOPPED, DESTROYED)])
    assert refreshed == [(1.0, "a", STOPPED)]


def test_an_old_reboot_no_longer_holds_a_guest_shutdown():
    _, refreshed = run([(0.0, "a", EV_REBOOT, 0), (60.0, "a", STOPPED, SHUTDOWN)])
    assert refreshed == [(60.0, "a", STOPPED)]


def test_undefine_during_a_hold_is_shown_at_once():
    d, refreshed = run([(0.0, "a", STOPPED, CRASHED), (0.1, "a", UNDEFINED, 0)])
    assert refreshed == [(0.1, "a", UNDEFINED)]
    assert not d.is_held("a")


def test_holds_are_per_domain():
    d, refreshed = run([(0.0, "a", STOPPED, CRASHED), (0.1, "b", STOPPED, DESTROYED)])
    assert refreshed == [(0.1, "b", STOPPED)]
    assert d.held() == {"a"}
