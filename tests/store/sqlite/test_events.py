"""SQLiteStore's events: exactly one per committed change, emitted after COMMIT (another connection already sees
the change), before the writing call returns, in commit order, and none for a write that rolled back or changed
nothing."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from app.delivery.records import DeliveryUpdate, Outcome
from app.endpoint_settings import EndpointSettings
from app.events.types import (
    INLINE_BODY_MAX,
    DeliveryRecorded,
    EndpointChanged,
    EndpointDeleted,
    Event,
    RequestAdded,
    RequestsRemoved,
    Skipped,
    Verdict,
    VerdictsChanged,
)
from app.models import NewRequest, ResponseSpec
from app.store import SQLiteStore

T = TypeVar("T")


class RecordingSink:
    """An EventSink that records each event and checks, at emit time, through a connection of its own, that the
    change it announces is already committed."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.events: list[Event] = []
        self.not_yet_committed: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)
        if not self._committed(event):
            self.not_yet_committed.append(event)

    def _committed(self, event: Event) -> bool:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            return _visible(conn, event)
        finally:
            conn.close()


def _visible(conn: sqlite3.Connection, event: Event) -> bool:
    def one(sql: str, *args: Any) -> Any:
        return conn.execute(sql, args).fetchone()

    if isinstance(event, RequestAdded):
        return one("SELECT 1 FROM requests WHERE id = ?", event.request.id) is not None
    if isinstance(event, RequestsRemoved):
        if event.ids is None:
            return one("SELECT COUNT(*) FROM requests WHERE endpoint_id = ?", event.endpoint_id) == (0,)
        marks = ",".join("?" * len(event.ids))
        return one(f"SELECT COUNT(*) FROM requests WHERE id IN ({marks})", *event.ids) == (0,)
    if isinstance(event, EndpointChanged):
        return one("SELECT name FROM endpoints WHERE id = ?", event.endpoint_id) == (event.endpoint.name,)
    if isinstance(event, EndpointDeleted):
        return one("SELECT 1 FROM endpoints WHERE id = ?", event.endpoint_id) is None
    if isinstance(event, DeliveryRecorded):
        d = event.delivery
        return one("SELECT state, attempts FROM deliveries WHERE id = ?", d.id) == (d.state, d.attempts)
    if isinstance(event, VerdictsChanged):
        return all(
            one("SELECT verify_status, verify_reason FROM requests WHERE id = ?", v.request_id) == (v.status, v.reason)
            for v in event.verdicts
        )
    raise AssertionError(event)


def new_request(endpoint_id: str, body: bytes = b"x") -> NewRequest:
    return NewRequest(
        endpoint_id=endpoint_id, received_at=time.time(), method="POST", path="", query="",
        headers=(("content-type", "text/plain"),), body=body, body_size=len(body), client="127.0.0.1",
        http_version="1.1",
    )


def delivered(request_id: int, endpoint_id: str) -> DeliveryUpdate:
    return DeliveryUpdate(request_id, endpoint_id, "forward", "http://127.0.0.1:9/t", "", "delivered", 1,
                          Outcome(status=200))


@pytest.fixture
def sink(tmp_path: Path) -> RecordingSink:
    return RecordingSink(tmp_path / "s.db")


@pytest.fixture
async def store(tmp_path: Path, sink: RecordingSink) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "s.db", events=sink, retention_count=2)
    await s.open()
    try:
        yield s
    finally:
        await s.close()
    assert sink.not_yet_committed == [], "every event is emitted after its COMMIT"


async def only_event(sink: RecordingSink, call: Awaitable[T]) -> tuple[Event, T]:
    """Await a store call; it must have emitted exactly one event by the time it returns."""
    before = len(sink.events)
    result = await call
    new = sink.events[before:]
    assert len(new) == 1, new
    return new[0], result


async def no_event(sink: RecordingSink, call: Awaitable[T]) -> T:
    before = len(sink.events)
    result = await call
    assert sink.events[before:] == []
    return result


async def test_every_mutation_emits_exactly_one_event_after_commit(store: SQLiteStore, sink: RecordingSink) -> None:
    event, ep = await only_event(sink, store.create_endpoint("a", ResponseSpec(), EndpointSettings()))
    assert event == EndpointChanged(ep)
    event, renamed = await only_event(sink, store.update_endpoint(ep.id, name="b"))
    assert renamed is not None and renamed.name == "b" and event == EndpointChanged(renamed)

    event, req = await only_event(sink, store.add_request(new_request(ep.id, b"small")))
    assert isinstance(event, RequestAdded) and event.request == req and event.request.body == b"small"
    large = b"L" * (INLINE_BODY_MAX + 1)
    event, big = await only_event(sink, store.add_request(new_request(ep.id, large)))
    # The caller keeps its body; the event leaves it out (consumers load it), so queues never pin it.
    assert big.body == large
    assert isinstance(event, RequestAdded) and event.request.id == big.id and event.request.body is None
    assert event.request.body_size == len(large)

    event, delivery_id = await only_event(sink, store.record_delivery(delivered(req.id, ep.id)))
    assert isinstance(event, DeliveryRecorded) and event.delivery.id == delivery_id > 0
    assert (event.delivery.request_id, event.delivery.state, event.delivery.attempts) == (req.id, "delivered", 1)
    assert event.delivery == await store.get_delivery(delivery_id)
    event, again = await only_event(sink, store.record_delivery(delivered(req.id, ep.id)))  # the same row, updated
    assert again == delivery_id and isinstance(event, DeliveryRecorded) and event.delivery.attempts == 2
    assert len(event.delivery.history) == 2

    event, _ = await only_event(sink, store.update_verdicts([(req.id, "invalid", "bad"), (big.id, "valid", "")]))
    assert event == VerdictsChanged(ep.id, (Verdict(req.id, "invalid", "bad"), Verdict(big.id, "valid", "")))

    event, found = await only_event(sink, store.delete_request(req.id))
    assert found and event == RequestsRemoved(ep.id, (req.id,), "deleted")
    event, cleared = await only_event(sink, store.clear_requests(ep.id))
    assert cleared == 1 and event == RequestsRemoved(ep.id, None, "cleared")
    event, deleted = await only_event(sink, store.delete_endpoint(ep.id))
    assert deleted and event == EndpointDeleted(ep.id)


async def test_writes_that_change_nothing_emit_nothing(store: SQLiteStore, sink: RecordingSink) -> None:
    ep = await store.create_endpoint("a", ResponseSpec(), EndpointSettings())
    gone = await store.add_request(new_request(ep.id))
    await store.delete_request(gone.id)
    assert await no_event(sink, store.delete_request(gone.id)) is False
    assert await no_event(sink, store.update_endpoint("nope", name="x")) is None
    assert await no_event(sink, store.delete_endpoint("nope")) is False
    await no_event(sink, store.update_verdicts([(gone.id, "valid", "")]))
    # The request was deleted while being delivered: the cursor moves, no delivery row is written.
    assert await no_event(sink, store.record_delivery(delivered(gone.id, ep.id), ("forward", "t", gone.id))) == 0
    assert (await no_event(sink, store.prune(time.time()))).removed == 0


async def test_a_write_that_rolls_back_emits_nothing_and_its_batch_neighbours_still_do(
    store: SQLiteStore, sink: RecordingSink
) -> None:
    ep = await store.create_endpoint("a", ResponseSpec(), EndpointSettings())
    before = len(sink.events)
    # Queued together, so they commit in one batch; the middle one fails its foreign key and rolls back alone.
    first = store.add_request(new_request(ep.id))
    failing = store.add_request(new_request("no-such-endpoint"))
    last = store.add_request(new_request(ep.id))
    with pytest.raises(Exception):  # noqa: B017 (the backend's integrity error, whatever its type)
        await failing
    ids = [(await first).id, (await last).id]
    assert [e.request.id for e in sink.events[before:] if isinstance(e, RequestAdded)] == ids
    assert len(sink.events) == before + 2


async def test_events_come_in_commit_order_within_a_batch(store: SQLiteStore, sink: RecordingSink) -> None:
    ep = await store.create_endpoint("a", ResponseSpec(), EndpointSettings())
    before = len(sink.events)
    # Queued without awaiting (one or a few write batches): a capture, then its delivery, 50 times over.
    pending: list[Awaitable[Any]] = []
    captures = []
    for _ in range(50):
        capture = store.add_request(new_request(ep.id))
        pending.append(capture)
        captures.append(capture)
    ids = [(await c).id for c in captures]
    for rid in ids:
        pending.append(store.record_delivery(delivered(rid, ep.id)))
        pending.append(store.add_request(new_request(ep.id)))
    for p in pending:
        await p
    kinds = [type(e).__name__ for e in sink.events[before:]]
    assert kinds == ["RequestAdded"] * 50 + ["DeliveryRecorded", "RequestAdded"] * 50
    added = [e.request.id for e in sink.events[before:] if isinstance(e, RequestAdded)]
    assert added == sorted(added) and len(set(added)) == 100
    recorded = [e.delivery.request_id for e in sink.events[before:] if isinstance(e, DeliveryRecorded)]
    assert recorded == ids


async def test_prune_emits_one_removal_per_endpoint_that_lost_rows(store: SQLiteStore, sink: RecordingSink) -> None:
    plain = await store.create_endpoint("plain", ResponseSpec(), EndpointSettings())
    untouched = await store.create_endpoint("untouched", ResponseSpec(), EndpointSettings())
    owed = await store.create_endpoint("owed", ResponseSpec(), EndpointSettings())
    plain_ids = [(await store.add_request(new_request(plain.id))).id for _ in range(5)]
    await store.add_request(new_request(untouched.id))
    await store.set_cursor("relay", owed.id, "laptop", 0)  # owed every capture
    owed_ids = [(await store.add_request(new_request(owed.id))).id for _ in range(4)]
    before = len(sink.events)
    # Keep 2 per endpoint; what a relay still owes is held up to 3 per endpoint, past that the oldest go.
    result = await store.prune(time.time(), ceiling=3)
    events = sink.events[before:]
    by_endpoint = {e.endpoint_id: e for e in events}
    assert len(events) == len(by_endpoint) == 2
    assert by_endpoint[plain.id] == RequestsRemoved(plain.id, tuple(plain_ids[:3]), "pruned")
    skipped = Skipped("relay", owed.id, "laptop", 1, 1)
    assert by_endpoint[owed.id] == RequestsRemoved(owed.id, (owed_ids[0],), "pruned", (skipped,))
    assert result.removed == 4 and result.skipped == (skipped,)
