"""Console settings: the ticket lifetime is a setting (tests shorten it), capped at 30 s."""

from __future__ import annotations

import pytest

from flint.config import load_settings


def test_defaults():
    s = load_settings({})
    assert (s.console_ticket_ttl, s.console_relay) == (30.0, "auto")


def test_a_shorter_ticket_lifetime_and_the_nats_relay():
    s = load_settings({"FLINT_CONSOLE_TICKET_TTL": "3", "FLINT_CONSOLE_RELAY": "nats"})
    assert (s.console_ticket_ttl, s.console_relay) == (3.0, "nats")


@pytest.mark.parametrize("value", ["31", "0", "-5", "soon"])
def test_ticket_lifetimes_beyond_30_s_or_nonsense_are_refused(value):
    with pytest.raises(ValueError, match="FLINT_CONSOLE_TICKET_TTL"):
        load_settings({"FLINT_CONSOLE_TICKET_TTL": value})


def test_unknown_relay_is_refused():
    with pytest.raises(ValueError, match="FLINT_CONSOLE_RELAY"):
        load_settings({"FLINT_CONSOLE_RELAY": "tcp"})
