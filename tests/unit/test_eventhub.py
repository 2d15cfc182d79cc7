import asyncio

from gateway.eventhub import EventHub


async def test_a_client_too_far_behind_is_told_to_resume():
    hub = EventHub()
    queue = hub.subscribe()
    for i in range(queue.maxsize):
        hub._fan_out(b"event %d" % i)
    assert queue.full()
    hub._fan_out(b"one too many")
    assert queue not in hub.clients
    assert queue.qsize() == 1 and queue.get_nowait() is None  # the close marker, nothing stale before it
    hub._fan_out(b"later")
    assert queue.empty()


async def test_clients_get_events_in_order():
    hub = EventHub()
    a, b = hub.subscribe(), hub.subscribe()
    for i in range(3):
        hub._fan_out(b"%d" % i)
    assert [a.get_nowait() for _ in range(3)] == [b"0", b"1", b"2"]
    assert b.qsize() == 3
    await asyncio.sleep(0)
