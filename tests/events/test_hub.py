from __future__ import annotations

import asyncio

import pytest

from app.events.hub import Hub, SubscriptionEvicted


async def test_publish_reaches_topic_subscribers_only() -> None:
    hub = Hub()
    a = hub.subscribe("endpoint:a")
    b = hub.subscribe("endpoint:b")
    hub.publish("endpoint:a", 1)
    hub.publish("endpoint:a", 2)
    assert [await a.get(), await a.get()] == [1, 2]
    assert b.queue.empty()
    a.close()
    b.close()
    assert hub.subscriber_count("endpoint:a") == 0


async def test_slow_subscriber_is_evicted_without_blocking_others() -> None:
    hub = Hub(queue_size=3)
    slow = hub.subscribe("t")
    fast = hub.subscribe("t")
    for i in range(10):
        hub.publish("t", i)
        assert await fast.get() == i
    assert slow.evicted and hub.evictions == 1
    with pytest.raises(SubscriptionEvicted):
        await slow.get()
    assert hub.subscriber_count("t") == 1


async def test_evicted_waiter_wakes_up() -> None:
    hub = Hub(queue_size=1)
    sub = hub.subscribe("t")
    hub.publish("t", 0)
    await sub.get()
    waiter = asyncio.create_task(sub.get())
    await asyncio.sleep(0)
    hub.publish("t", 1)
    hub.publish("t", 2)  # queue full now: evicted
    with pytest.raises(SubscriptionEvicted):
        await asyncio.wait_for(waiter, 5)
