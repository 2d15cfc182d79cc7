"""The pure parts of flint/bus.py's cluster support: server lists and which JetStream calls may be resent.
The behaviour through a real failover is tests/e2e/test_nats_cluster.py."""

from __future__ import annotations

import pytest

from flint import bus


@pytest.mark.parametrize(
    ("url", "servers"),
    [
        ("nats://127.0.0.1:4222", "nats://127.0.0.1:4222"),
        ("tls://a:4222,tls://b:4222, tls://c:4222", ["tls://a:4222", "tls://b:4222", "tls://c:4222"]),
        ("nats://a:4222,", "nats://a:4222"),
    ],
)
def test_flint_nats_url_may_list_the_servers_of_a_cluster(url, servers):
    assert bus.server_list(url) == servers


@pytest.mark.parametrize(
    ("subject", "resend"),
    [
        ("$JS.API.STREAM.INFO.FLINT_EVENTS", True),
        ("$JS.API.CONSUMER.CREATE.FLINT_EVENTS", True),
        ("$JS.API.STREAM.MSG.GET.KV_flint-jobs", True),
        ("$JS.API.STREAM.DELETE.FLINT_EVENTS", False),
        ("$JS.API.STREAM.PURGE.KV_flint-console", False),
        ("$JS.API.CONSUMER.DELETE.FLINT_JOBS.provisioner-local", False),
    ],
)
def test_only_calls_that_are_harmless_twice_are_resent_after_silence(subject, resend):
    assert bus._idempotent(subject) is resend


def test_jetstream_contexts_of_flint_connections_ride_out_a_failover():
    js = bus.FlintNATS().jetstream()
    assert isinstance(js, bus._FailoverJetStream)
    assert isinstance(js._jsm, bus._FailoverManager)  # what ordered subscriptions recreate consumers with
