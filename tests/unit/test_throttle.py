from gateway.throttle import LoginThrottle


def test_a_name_is_locked_after_five_failures_with_growing_waits():
    t = LoginThrottle()
    for i in range(4):
        t.failed("user:bob", now=100.0 + i)
        assert t.retry_after("user:bob", now=100.0 + i) == 0
    t.failed("user:bob", now=105.0)
    assert t.retry_after("user:bob", now=105.0) == 1
    t.failed("user:bob", now=107.0)
    assert t.retry_after("user:bob", now=107.0) == 2
    assert t.retry_after("user:bob", now=110.0) == 0


def test_an_address_gets_more_tries_than_a_name():
    t = LoginThrottle()
    for i in range(19):
        t.failed("addr:10.0.0.1", now=100.0 + i)
    assert t.retry_after("addr:10.0.0.1", now=119.0) == 0
    t.failed("addr:10.0.0.1", now=120.0)
    assert t.retry_after("addr:10.0.0.1", now=120.0) > 0


def test_success_clears_and_the_window_expires():
    t = LoginThrottle()
    for i in range(5):
        t.failed("user:amy", now=float(i))
    assert t.retry_after("user:amy", now=4.5) > 0
    t.succeeded("user:amy")
    assert t.retry_after("user:amy", now=4.5) == 0
    t.failed("user:amy", now=0.0)
    t.failed("user:amy", now=2000.0)  # a new window
    assert t.records["user:amy"].failures == 1
