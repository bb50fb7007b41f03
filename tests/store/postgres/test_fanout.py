"""Fan-out across instances (app/store/postgres/fanout.py): several PostgresStore objects on one database, each
with its own recording sink, behave for each sink like one store. Every event committed anywhere reaches every
instance exactly once, in the endpoint's commit order (captures in seq order with no gaps), including while two
instances write one endpoint and one of them commits slowly, and across a killed listening connection."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from app.delivery.records import DeliveryUpdate, Outcome
from app.endpoint_settings import EndpointSettings
from app.events.types import (
    DeliveryRecorded,
    EndpointChanged,
    EndpointDeleted,
    Event,
    RequestAdded,
    RequestsRemoved,
    VerdictsChanged,
)
from app.models import CapturedRequest, NewRequest, ResponseSpec
from app.store.postgres import PostgresStore
from tests.store.sink import RecordingSink
from tests.support import wait_until

Factory = Callable[..., Awaitable[tuple[PostgresStore, RecordingSink]]]


@pytest.fixture
async def instances(pg_dsn: str) -> AsyncIterator[Factory]:
    opened: list[PostgresStore] = []

    async def make(**kw: Any) -> tuple[PostgresStore, RecordingSink]:
        sink = RecordingSink()
        store = PostgresStore(pg_dsn, events=sink, durability="normal", **kw)
        await store.open()
        opened.append(store)
        return store, sink

    yield make
    for store in opened:
        await store.close()


def _new(endpoint_id: str, i: int) -> NewRequest:
    body = f"body {i}".encode()
    return NewRequest(
        endpoint_id=endpoint_id, received_at=time.time(), method="POST", path=f"/{i}", query="",
        headers=(("content-type", "text/plain"),), body=body, body_size=len(body), client="127.0.0.1",
        http_version="1.1",
    )


def _added(sink: RecordingSink, endpoint_id: str) -> list[CapturedRequest]:
    return [e.request for e in sink.events if isinstance(e, RequestAdded) and e.endpoint_id == endpoint_id]


def _of(sink: RecordingSink, endpoint_id: str) -> list[Event]:
    return [e for e in sink.events if e.endpoint_id == endpoint_id]


def _assert_exact(sink: RecordingSink, endpoint_id: str, expected: list[CapturedRequest]) -> None:
    """The sink saw exactly `expected` (by id, seq and body), in seq order: no gap, no repeat."""
    got = _added(sink, endpoint_id)
    assert [r.seq for r in got] == [r.seq for r in expected]
    assert [(r.id, r.body, r.path) for r in got] == [(r.id, r.body, r.path) for r in expected]


async def _capture(store: PostgresStore, endpoint_id: str, first: int, n: int) -> list[CapturedRequest]:
    # All queued at once, so they share batches (several seqs per transaction).
    return list(await asyncio.gather(*(store.add_request(_new(endpoint_id, i)) for i in range(first, first + n))))


async def test_captures_on_one_instance_reach_the_others_exactly_once_in_seq_order(instances: Factory) -> None:
    a, sink_a = await instances()
    b, sink_b = await instances()
    ep = await a.create_endpoint("fan", ResponseSpec(), EndpointSettings())
    await wait_until(lambda: b.cached_endpoint(ep.id) == ep)
    c, sink_c = await instances()  # opened after the endpoint exists: loads it, and hears what follows
    assert c.cached_endpoint(ep.id) == ep
    made: list[CapturedRequest] = []
    for k in range(4):
        made += await _capture(a, ep.id, 50 * k, 50)
    made.sort(key=lambda r: r.seq)
    assert [r.seq for r in made] == list(range(1, 201))
    for sink in (sink_b, sink_c):
        await wait_until(lambda s=sink: len(_added(s, ep.id)) >= 200)  # type: ignore[misc]
    for sink in (sink_a, sink_b, sink_c):
        _assert_exact(sink, ep.id, made)
    # B saw the endpoint's creation as A emitted it; C loaded it at open instead.
    assert [e for e in _of(sink_b, ep.id) if isinstance(e, EndpointChanged)] == [EndpointChanged(ep)]


async def test_two_writers_on_one_endpoint_one_of_them_slow_nobody_skips_or_repeats(instances: Factory) -> None:
    a, sink_a = await instances()
    b, sink_b = await instances()
    c, sink_c = await instances()
    ep = await a.create_endpoint("shared", ResponseSpec(), EndpointSettings())
    await wait_until(lambda: b.cached_endpoint(ep.id) is not None and c.cached_endpoint(ep.id) is not None)

    async def slow_commit(conn: asyncpg.Connection) -> None:
        # Queued right behind a capture, so it runs in the same transaction after the capture took its seq
        # block: the row lock is held, and the commit comes late.
        await asyncio.sleep(0.05)

    async def slow_writer() -> list[CapturedRequest]:
        out = []
        for i in range(20):
            fut = b.add_request(_new(ep.id, 1000 + i))
            await b.writer.submit(slow_commit)
            out.append(await fut)
        return out

    async def fast_writer() -> list[CapturedRequest]:
        out: list[CapturedRequest] = []
        for k in range(20):
            out += await _capture(a, ep.id, 10 * k, 10)
        return out

    slow, fast = await asyncio.gather(slow_writer(), fast_writer())
    made = sorted(slow + fast, key=lambda r: r.seq)
    assert [r.seq for r in made] == list(range(1, len(made) + 1))
    for sink in (sink_a, sink_b, sink_c):
        await wait_until(lambda s=sink: len(_added(s, ep.id)) >= len(made))  # type: ignore[misc]
        _assert_exact(sink, ep.id, made)
    # The writers' own commits were emitted before their calls returned, even when the other's came first.
    assert a.fanout.catch_ups > 0 and b.fanout.catch_ups > 0


async def test_every_other_change_arrives_as_the_same_event(instances: Factory) -> None:
    a, sink_a = await instances()
    b, sink_b = await instances()
    ep = await a.create_endpoint("changes", ResponseSpec(), EndpointSettings())
    reqs = await _capture(a, ep.id, 0, 5)
    # A capture removed before B read it would not be announced on B (only its removal): let B read them first.
    await wait_until(lambda: len(_added(sink_b, ep.id)) == 5)
    assert await a.delete_request(reqs[0].id)
    renamed = await a.update_endpoint(ep.id, name="renamed", response=ResponseSpec(status=202))
    assert renamed is not None
    await wait_until(lambda: b.cached_endpoint(ep.id) == renamed)
    delivery_id = await a.record_delivery(DeliveryUpdate(
        request_id=reqs[1].id, endpoint_id=ep.id, kind="forward", target="http://127.0.0.1:9/in", relay="",
        state="delivered", attempts=1, outcome=Outcome(status=201, headers=[(b"x-a", b"1")], body=b"ok", body_size=2),
    ))
    assert delivery_id > 0
    await a.update_verdicts([(reqs[2].id, "valid", ""), (reqs[3].id, "invalid", "bad signature")])
    more = await _capture(a, ep.id, 5, 2)
    await wait_until(lambda: len(_added(sink_b, ep.id)) == 7)
    await a.clear_requests(ep.id)
    assert await a.delete_endpoint(ep.id)
    await wait_until(lambda: any(isinstance(e, EndpointDeleted) for e in _of(sink_b, ep.id)))
    expected = _of(sink_a, ep.id)
    kinds = [type(e) for e in expected]
    assert kinds == [EndpointChanged, *[RequestAdded] * 5, RequestsRemoved, EndpointChanged, DeliveryRecorded,
                     VerdictsChanged, RequestAdded, RequestAdded, RequestsRemoved, EndpointDeleted]
    assert _of(sink_b, ep.id) == expected
    assert b.cached_endpoint(ep.id) is None
    assert [r.seq for r in more] == [6, 7]


async def test_a_lost_listening_connection_loses_nothing(instances: Factory, pg_dsn: str) -> None:
    # No periodic check during the test: only the reconnect's resync can find what was rung meanwhile.
    a, _ = await instances()
    b, sink_b = await instances(resync_interval=3600)
    ep = await a.create_endpoint("lossy", ResponseSpec(), EndpointSettings())
    await wait_until(lambda: b.cached_endpoint(ep.id) is not None)
    made: list[CapturedRequest] = []
    admin = await asyncpg.connect(pg_dsn)
    try:
        for k in range(6):
            made += await _capture(a, ep.id, 40 * k, 40)
            if k in (1, 3):
                killed = await admin.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE application_name = $1 AND datname = current_database()",
                    b.doorbell.application_name,
                )
                assert killed == 1
                made += await _capture(a, ep.id, 1000 + k * 40, 40)  # rung while B may be deaf
                await wait_until(lambda k=k: b.doorbell.reconnects >= (1 if k == 1 else 2))  # type: ignore[misc]
        other = await a.create_endpoint("made while nobody listened?", ResponseSpec(), EndpointSettings())
    finally:
        await admin.close()
    made.sort(key=lambda r: r.seq)
    await wait_until(lambda: len(_added(sink_b, ep.id)) >= len(made) and b.cached_endpoint(other.id) is not None)
    _assert_exact(sink_b, ep.id, made)


async def test_resync_finds_what_no_ring_announced(instances: Factory) -> None:
    """A ring that never came (a different channel stands in for a lost one): the periodic check finds the new
    endpoint, its captures in order, and later its deletion."""
    a, _ = await instances(channel="elsewhere")
    b, sink_b = await instances(resync_interval=0.2)
    ep = await a.create_endpoint("quiet", ResponseSpec(), EndpointSettings())
    made = await _capture(a, ep.id, 0, 30)
    await wait_until(lambda: len(_added(sink_b, ep.id)) >= 30)
    _assert_exact(sink_b, ep.id, sorted(made, key=lambda r: r.seq))
    assert b.cached_endpoint(ep.id) == ep
    await a.delete_endpoint(ep.id)
    await wait_until(lambda: b.cached_endpoint(ep.id) is None)
    assert [type(e) for e in _of(sink_b, ep.id)] == [EndpointChanged, *[RequestAdded] * 30, EndpointDeleted]
