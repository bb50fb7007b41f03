"""EventBus (app/events/bus.py): per-endpoint queues that never block the publisher, eviction, summaries-only
subscribers, kind filters, and listeners that run before any subscriber gets the event."""

from __future__ import annotations

import asyncio
import logging

import pytest

from app.events.bus import EventBus, SubscriptionEvicted
from app.events.types import EndpointDeleted, Event, RequestAdded, RequestsRemoved
from app.models import CapturedRequest


def added(rid: int, endpoint_id: str = "a", body: bytes | None = b"payload") -> RequestAdded:
    return RequestAdded(CapturedRequest(
        id=rid, seq=rid, endpoint_id=endpoint_id, received_at=0.0, method="POST", path="", query="", headers=(),
        body_size=len(body or b""), content_type="", client=None, http_version="1.1", rejected=None, body=body,
    ))


def ids(events: list[Event]) -> list[int]:
    return [e.request.id for e in events if isinstance(e, RequestAdded)]


async def test_events_reach_their_endpoints_subscribers_only_in_emit_order() -> None:
    bus = EventBus()
    a = bus.subscribe("a")
    b = bus.subscribe("b")
    bus.emit(added(1))
    bus.emit(RequestsRemoved("a", (1,), "deleted"))
    bus.emit(added(2))
    got = [await a.get(), await a.get(), await a.get()]
    assert [type(e) for e in got] == [RequestAdded, RequestsRemoved, RequestAdded]
    assert ids(got) == [1, 2]
    assert not b.ready()
    a.close()
    b.close()
    assert bus.subscriber_count("a") == 0 and bus.subscriber_count("b") == 0


async def test_closed_subscription_gets_nothing_and_close_is_idempotent() -> None:
    bus = EventBus()
    with bus.subscribe("a") as sub:
        pass
    sub.close()
    bus.emit(added(1))
    assert not sub.ready() and bus.subscriber_count("a") == 0


async def test_slow_subscriber_is_evicted_without_blocking_others() -> None:
    bus = EventBus(queue_size=3)
    slow = bus.subscribe("a")
    fast = bus.subscribe("a")
    for i in range(10):
        bus.emit(added(i))
        event = await fast.get()
        assert isinstance(event, RequestAdded) and event.request.id == i
    assert slow.evicted and bus.evictions == 1
    with pytest.raises(SubscriptionEvicted):
        await slow.get()
    assert bus.subscriber_count("a") == 1


async def test_evicted_waiter_wakes_up() -> None:
    bus = EventBus(queue_size=1)
    sub = bus.subscribe("a")
    bus.emit(added(0))
    await sub.get()
    waiter = asyncio.create_task(sub.get())
    await asyncio.sleep(0)  # let the waiter block on the empty queue
    bus.emit(added(1))
    bus.emit(added(2))  # full now (the waiter has not run yet): evicted
    with pytest.raises(SubscriptionEvicted):
        await asyncio.wait_for(waiter, 5)


async def test_summary_subscribers_never_get_bodies_body_subscribers_do() -> None:
    bus = EventBus()
    summaries = bus.subscribe("a")
    bodies = bus.subscribe("a", bodies=True)
    event = added(1, body=b"x" * 100)
    bus.emit(event)
    got_summary = await summaries.get()
    got_body = await bodies.get()
    assert isinstance(got_summary, RequestAdded) and got_summary.request.body is None
    assert got_summary.request.body_size == 100 and got_summary.request.id == 1
    assert got_body is event
    assert event.request.body == b"x" * 100  # the emitted event itself is untouched


async def test_kinds_filter_what_a_subscriber_queues() -> None:
    bus = EventBus(queue_size=2)
    captures = bus.subscribe("a", kinds=(RequestAdded,))
    for i in range(5):  # would overflow a queue of two if they were queued
        bus.emit(RequestsRemoved("a", (i,), "pruned"))
    bus.emit(added(7))
    event = await captures.get()
    assert isinstance(event, RequestAdded) and event.request.id == 7
    assert not captures.evicted and not captures.ready()


async def test_listeners_run_synchronously_before_any_subscriber_gets_the_event() -> None:
    bus = EventBus()
    sub = bus.subscribe("a")
    seen: list[tuple[str, bool]] = []
    # Each listener records whether the subscriber's queue already held the event when it ran.
    bus.listen(lambda e: seen.append(("first", sub.ready())))
    bus.listen(lambda e: seen.append(("second", sub.ready())))
    bus.emit(EndpointDeleted("a"))
    assert seen == [("first", False), ("second", False)]  # ran inside emit, before the queue put
    assert isinstance(await sub.get(), EndpointDeleted)


async def test_listeners_get_every_endpoints_events_and_a_failing_one_costs_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = EventBus()
    sub = bus.subscribe("b")
    seen: list[str] = []

    def broken(event: Event) -> None:
        raise RuntimeError("bug")

    bus.listen(broken)
    bus.listen(lambda e: seen.append(e.endpoint_id))
    with caplog.at_level(logging.ERROR, logger="hookscope.events"):
        bus.emit(added(1, "a"))
        bus.emit(added(2, "b"))
    assert seen == ["a", "b"]
    event = await sub.get()
    assert isinstance(event, RequestAdded) and event.request.id == 2
    assert "event listener" in caplog.text
