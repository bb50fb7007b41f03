"""The store contract (app/store/base.py), checked through the `Store` interface only, for every backend.

`store_factory` is parameterised by backend; a new backend adds its name to the params and a branch to `_open`.
Nothing below may name a backend or look at its files or tables: what is tested here is what callers rely on.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import pytest

from app.delivery.records import MAX_HISTORY, DeliveryUpdate, Outcome
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
from app.models import CapturedRequest, Endpoint, NewRequest, ResponseSpec
from app.store.base import BodySpool, RequestQuery, Store
from app.store.errors import BodyMissing, NotFound, StoreBusy, StoreClosed
from app.store.postgres import PostgresStore
from app.store.sqlite.store import SQLiteStore
from tests import pg
from tests.store.postgres.support import Databases
from tests.store.sink import RecordingSink

BACKENDS = ["sqlite", "postgres"]


@dataclass
class Opened:
    store: Store
    events: RecordingSink


class StoreFactory(Protocol):
    def __call__(
        self,
        *,
        retention_count: int = 10_000,
        retention_age: float = 0.0,
        queue_size: int = 10_000,
        events: RecordingSink | None = None,
    ) -> Awaitable[Opened]: ...


@pytest.fixture(scope="session")
def pg_databases(pg_server: str) -> Iterator[Databases]:
    """Migrated databases of this test process (copies of a template, emptied between tests), dropped at the end."""
    databases = Databases(pg_server)
    yield databases
    pg.run_sync(databases.drop_all())


async def _open(
    request: pytest.FixtureRequest, directory: Path, databases: list[str], events: RecordingSink, **kw: Any
) -> Store:
    """A new store of the backend on empty storage of its own."""
    if request.param == "sqlite":
        return SQLiteStore(directory / "contract.db", events=events, durability="normal", **kw)
    if request.param == "postgres":
        pool: Databases = request.getfixturevalue("pg_databases")
        dsn = await pool.take()
        databases.append(dsn)
        return PostgresStore(dsn, events=events, durability="normal", **kw)
    raise AssertionError(f"unknown backend {request.param}")


@pytest.fixture(params=BACKENDS)
async def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    opened: list[Store] = []
    databases: list[str] = []

    async def make(
        *,
        retention_count: int = 10_000,
        retention_age: float = 0.0,
        queue_size: int = 10_000,
        events: RecordingSink | None = None,
    ) -> Opened:
        sink = events if events is not None else RecordingSink()
        directory = tmp_path / str(len(opened))
        directory.mkdir()
        store = await _open(
            request, directory, databases, sink,
            retention_count=retention_count, retention_age=retention_age, queue_size=queue_size,
        )
        await store.open()
        opened.append(store)
        return Opened(store, sink)

    yield make
    for store in opened:
        await store.close()
    if databases:
        pool: Databases = request.getfixturevalue("pg_databases")
        for dsn in databases:
            await pool.give_back(dsn)


@pytest.fixture
async def opened(store_factory: StoreFactory) -> Opened:
    return await store_factory()


@pytest.fixture
def store(opened: Opened) -> Store:
    return opened.store


@pytest.fixture
def events(opened: Opened) -> RecordingSink:
    return opened.events


@pytest.fixture
async def ep(store: Store) -> Endpoint:
    return await store.create_endpoint("contract", ResponseSpec(), EndpointSettings())


def _new(endpoint_id: str, body: bytes | None = b"x", **fields: Any) -> NewRequest:
    values: dict[str, Any] = dict(
        endpoint_id=endpoint_id, received_at=time.time(), method="POST", path="", query="",
        headers=(("content-type", "text/plain"),), body=body, body_size=len(body or b""), client="127.0.0.1",
        http_version="1.1",
    )
    values.update(fields)
    return NewRequest(**values)


async def _add_many(store: Store, endpoint_id: str, n: int, **fields: Any) -> list[int]:
    return [(await store.add_request(_new(endpoint_id, **fields))).id for _ in range(n)]


async def _added(store: Store, endpoint_id: str, n: int, **fields: Any) -> list[CapturedRequest]:
    return [await store.add_request(_new(endpoint_id, **fields)) for _ in range(n)]


async def _ids(store: Store, endpoint_id: str, **query: Any) -> list[int]:
    return [r.id for r in await store.list_requests(endpoint_id, RequestQuery(**{"limit": 10_000, **query}))]


async def _seqs(store: Store, endpoint_id: str, **query: Any) -> list[int]:
    return [r.seq for r in await store.list_requests(endpoint_id, RequestQuery(**{"limit": 10_000, **query}))]


def _update(req: CapturedRequest, **fields: Any) -> DeliveryUpdate:
    values: dict[str, Any] = dict(
        request_id=req.id, endpoint_id=req.endpoint_id, kind="forward", target="http://127.0.0.1:9/in", relay="",
        state="delivered", attempts=1, outcome=Outcome(status=200),
    )
    values.update(fields)
    return DeliveryUpdate(**values)


async def _spooled(store: Store, endpoint_id: str, data: bytes) -> CapturedRequest:
    spool: BodySpool = store.new_spool()
    for i in range(0, len(data), 64 * 1024):
        await spool.write(data[i : i + 64 * 1024])
    await spool.finish()
    return await store.add_request(_new(endpoint_id, None, body_size=len(data), spool=spool))


# --- ordering ----------------------------------------------------------------------------------------------------


async def test_seqs_increase_in_commit_order_and_are_never_reused(store: Store, ep: Endpoint) -> None:
    added = await _added(store, ep.id, 5)
    seqs = [r.seq for r in added]
    assert seqs == sorted(set(seqs)) and seqs[0] >= 1
    assert await store.delete_request(added[-1].id)
    (again,) = await _added(store, ep.id, 1)
    assert again.seq > seqs[-1]
    assert len({r.id for r in [*added, again]}) == 6  # ids are never reused either


async def test_last_seq_never_goes_down(store: Store, ep: Endpoint) -> None:
    added = await _added(store, ep.id, 3)
    assert await store.last_seq(ep.id) == added[-1].seq
    # The newest request deleted: a client that saw its seq must not look "ahead of the server".
    assert await store.delete_request(added[-1].id)
    assert await store.last_seq(ep.id) == added[-1].seq
    (again,) = await _added(store, ep.id, 1)
    assert await store.last_seq(ep.id) == again.seq
    await store.clear_requests(ep.id)
    assert await store.last_seq(ep.id) == again.seq


async def test_last_seq_is_zero_for_an_endpoint_without_requests(store: Store, ep: Endpoint) -> None:
    assert await store.last_seq(ep.id) == 0
    other = await store.create_endpoint("other", ResponseSpec(), EndpointSettings())
    await _added(store, other.id, 2)
    assert await store.last_seq(ep.id) == 0  # per endpoint
    assert await store.last_seq("no-such-endpoint") == 0


async def test_list_is_newest_first_and_after_is_oldest_first(store: Store, ep: Endpoint) -> None:
    added = await _added(store, ep.id, 6)
    ids = [r.id for r in added]
    assert await _ids(store, ep.id) == ids[::-1]
    assert await _ids(store, ep.id, after=0) == ids
    assert [r.id for r in await store.requests_after(ep.id, added[1].seq, 100)] == ids[2:]
    assert [r.seq for r in await store.requests_after(ep.id, 0, 100)] == [r.seq for r in added]


async def test_requests_belong_to_their_endpoint(store: Store, ep: Endpoint) -> None:
    other = await store.create_endpoint("other", ResponseSpec(), EndpointSettings())
    mine = await _add_many(store, ep.id, 2)
    theirs = await _add_many(store, other.id, 3)
    assert await _ids(store, ep.id) == mine[::-1]
    assert await _ids(store, other.id, after=0) == theirs
    assert (await store.endpoint_stats(ep.id)).request_count == 2


async def test_a_request_round_trips_every_field(store: Store, ep: Endpoint) -> None:
    headers = (("content-type", "application/json"), ("x-raw", "caf\xe9"), ("x-dup", "1"), ("x-dup", "2"))
    new = _new(
        ep.id, b'{"a": 1}', method="PROPFIND", path="/sub/p\xe4th", query="a=1&b", headers=headers,
        client="203.0.113.9", http_version="2", provider="stripe", event_type="invoice.paid", event_id="evt_1",
        verify_status="valid", verify_reason="signature matches",
    )
    added = await store.add_request(new)
    got = await store.get_request(added.id)
    assert got == added
    assert got.body == b'{"a": 1}' and got.content_type == "application/json" and got.duplicate_of is None
    assert await store.get_request(added.id + 1000) is None


async def test_duplicate_of_names_the_first_capture_of_the_same_event_on_that_endpoint(
    store: Store, ep: Endpoint
) -> None:
    other = await store.create_endpoint("other", ResponseSpec(), EndpointSettings())
    first = await store.add_request(_new(ep.id, event_id="evt_9"))
    # Queued together: the second still sees the first, committed in the same transaction or not.
    pending = [store.add_request(_new(ep.id, event_id="evt_9")) for _ in range(2)]
    again = await asyncio.gather(*pending)
    elsewhere = await store.add_request(_new(other.id, event_id="evt_9"))
    assert first.duplicate_of is None and elsewhere.duplicate_of is None
    assert [r.duplicate_of for r in again] == [first.id, first.id]


async def test_endpoints_list_newest_first_with_stats_and_update_keeps_the_rest(store: Store) -> None:
    a = await store.create_endpoint("a", ResponseSpec(), EndpointSettings())
    b = await store.create_endpoint("b", ResponseSpec(status=202), EndpointSettings(replay_target="http://h/r"))
    last = await store.add_request(_new(b.id))
    listed = await store.list_endpoints()
    assert [e.id for e, _ in listed] == [b.id, a.id]
    assert listed[0][1].request_count == 1 and listed[0][1].last_request_at == last.received_at
    assert listed[1][1].request_count == 0 and listed[1][1].last_request_at is None
    renamed = await store.update_endpoint(b.id, name="b2")
    assert renamed is not None and renamed.name == "b2" and renamed.response.status == 202
    assert renamed.settings == b.settings and store.cached_endpoint(b.id) == renamed
    assert await store.update_endpoint("nope", name="x") is None


# --- cursors -----------------------------------------------------------------------------------------------------


async def test_set_cursor_creates_then_only_moves_forward_unless_forced(store: Store, ep: Endpoint) -> None:
    assert await store.get_cursor("relay", ep.id, "laptop") is None
    assert await store.set_cursor("relay", ep.id, "laptop", 10) == 10
    assert await store.set_cursor("relay", ep.id, "laptop", 4) == 10
    assert await store.get_cursor("relay", ep.id, "laptop") == 10
    assert await store.set_cursor("relay", ep.id, "laptop", 12) == 12
    assert await store.set_cursor("relay", ep.id, "laptop", 3, force=True) == 3
    assert await store.get_cursor("relay", ep.id, "laptop") == 3


async def test_cursors_are_per_kind_and_name(store: Store, ep: Endpoint) -> None:
    await store.set_cursor("relay", ep.id, "b", 2)
    await store.set_cursor("relay", ep.id, "a", 1)
    await store.set_cursor("forward", ep.id, "a", 7)
    relays = await store.list_cursors(ep.id, "relay")
    assert [(name, acked) for name, acked, _ in relays] == [("a", 1), ("b", 2)]
    assert all(abs(updated - time.time()) < 3600 for _, _, updated in relays)
    assert await store.get_cursor("forward", ep.id, "a") == 7
    assert await store.delete_cursor("relay", ep.id, "a")
    assert not await store.delete_cursor("relay", ep.id, "a")
    assert [n for n, _, _ in await store.list_cursors(ep.id, "relay")] == ["b"]
    assert await store.get_cursor("forward", ep.id, "a") == 7


async def test_set_cursor_on_a_missing_endpoint_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.set_cursor("relay", "no-such-endpoint", "laptop", 1)


async def test_cursors_go_with_their_endpoint(store: Store, ep: Endpoint) -> None:
    await store.set_cursor("relay", ep.id, "laptop", 1)
    assert await store.delete_endpoint(ep.id)
    assert await store.get_cursor("relay", ep.id, "laptop") is None
    assert await store.list_cursors(ep.id, "relay") == []


# --- pagination --------------------------------------------------------------------------------------------------


async def test_before_pages_backwards_exclusively_to_the_end(store: Store, ep: Endpoint) -> None:
    seqs = [r.seq for r in await _added(store, ep.id, 7)]
    seen: list[int] = []
    before: int | None = None
    while True:
        page = await _seqs(store, ep.id, before=before, limit=3)
        if not page:
            break
        assert len(page) <= 3 and (before is None or max(page) < before)
        seen += page
        before = page[-1]
    assert seen == seqs[::-1]
    assert await _seqs(store, ep.id, before=seqs[0]) == []


async def test_after_is_exclusive_and_limited(store: Store, ep: Endpoint) -> None:
    seqs = [r.seq for r in await _added(store, ep.id, 5)]
    assert await _seqs(store, ep.id, after=seqs[1], limit=2) == seqs[2:4]
    assert await _seqs(store, ep.id, after=seqs[-1]) == []
    assert [r.seq for r in await store.requests_after(ep.id, seqs[-1], 10)] == []


async def test_before_and_after_together_give_a_window_newest_first(store: Store, ep: Endpoint) -> None:
    seqs = [r.seq for r in await _added(store, ep.id, 6)]
    assert await _seqs(store, ep.id, after=seqs[0], before=seqs[4]) == [seqs[3], seqs[2], seqs[1]]
    assert await _seqs(store, ep.id, after=seqs[0], before=seqs[4], limit=1) == [seqs[3]]
    assert await _seqs(store, ep.id, after=seqs[2], before=seqs[3]) == []


async def test_limit_edges(store: Store, ep: Endpoint) -> None:
    ids = await _add_many(store, ep.id, 3)
    assert await _ids(store, ep.id, limit=1) == [ids[-1]]
    assert await _ids(store, ep.id, limit=3) == ids[::-1]
    assert await _ids(store, ep.id, limit=100) == ids[::-1]
    assert await _ids(store, "no-such-endpoint") == []


async def test_count_requests_after_counts_what_there_is_to_deliver(store: Store, ep: Endpoint) -> None:
    seqs = [r.seq for r in await _added(store, ep.id, 4)]
    await store.add_request(_new(ep.id, b"", body_size=10**9, rejected="body_too_large"))
    assert await store.count_requests_after(ep.id, 0) == 4
    assert await store.count_requests_after(ep.id, seqs[1]) == 2
    assert await store.count_requests_after(ep.id, seqs[-1]) == 0


# --- filters -----------------------------------------------------------------------------------------------------


async def test_filter_by_methods(store: Store, ep: Endpoint) -> None:
    post, _, get = [(await store.add_request(_new(ep.id, method=m))).id for m in ("POST", "PUT", "GET")]
    assert await _ids(store, ep.id, methods=("POST", "GET")) == [get, post]
    assert await _ids(store, ep.id, methods=("DELETE",)) == []


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        ("orders", ["path"]),
        ("ORDERS", ["path"]),  # ASCII case does not matter
        ("page=2", ["query"]),
        ("acme-signature", ["header"]),
        ("invoice.paid", ["body"]),
        ("caf\xe9", ["utf8"]),  # UTF-8 text in a body, searched as typed
        ("100%", ["percent"]),  # LIKE wildcards are literal
        ("a_b", ["underscore"]),
        ("nowhere", []),
    ],
)
async def test_filter_by_text(store: Store, ep: Endpoint, text: str, matches: list[str]) -> None:
    rows = {
        "path": _new(ep.id, path="/orders/7"),
        "query": _new(ep.id, query="page=2"),
        "header": _new(ep.id, headers=(("x-acme-signature", "t=1"),)),
        "body": _new(ep.id, b'{"type": "invoice.paid"}'),
        "utf8": _new(ep.id, "caf\xe9 cr\xe8me".encode()),
        "percent": _new(ep.id, b"discount 100% off"),
        "underscore": _new(ep.id, b"a_b"),
        "decoy": _new(ep.id, b"aXb 1000 off", path="/order"),
    }
    ids = {name: (await store.add_request(new)).id for name, new in rows.items()}
    found = await _ids(store, ep.id, text=text)
    assert sorted(found) == sorted(ids[m] for m in matches)


async def test_filter_by_provider_verification_and_duplicate(store: Store, ep: Endpoint) -> None:
    stripe = await store.add_request(_new(ep.id, provider="stripe", event_id="e1", verify_status="valid"))
    retry = await store.add_request(_new(ep.id, provider="stripe", event_id="e1", verify_status="invalid"))
    github = await store.add_request(_new(ep.id, provider="github", verify_status="unconfigured"))
    assert await _ids(store, ep.id, provider="stripe") == [retry.id, stripe.id]
    assert await _ids(store, ep.id, verification="invalid") == [retry.id]
    assert await _ids(store, ep.id, verification="unconfigured") == [github.id]
    assert await _ids(store, ep.id, duplicate=True) == [retry.id]
    assert await _ids(store, ep.id, duplicate=False) == [github.id, stripe.id]
    # Filters combine.
    assert await _ids(store, ep.id, provider="stripe", duplicate=False) == [stripe.id]
    assert await _ids(store, ep.id, provider="github", verification="valid") == []


async def test_with_body_loads_small_bodies_and_summaries_load_on_demand(store: Store, ep: Endpoint) -> None:
    added = await store.add_request(_new(ep.id, b"\x00\xffbinary"))
    (summary,) = await store.list_requests(ep.id, RequestQuery())
    (full,) = await store.list_requests(ep.id, RequestQuery(with_body=True))
    assert summary.body is None and full.body == b"\x00\xffbinary"
    assert await store.load_body(summary) == b"\x00\xffbinary"
    assert b"".join([c async for c in await store.iter_body(summary)]) == b"\x00\xffbinary"
    assert summary.id == added.id


# --- retention ---------------------------------------------------------------------------------------------------


async def test_prune_applies_the_count_cap_per_endpoint(store_factory: StoreFactory) -> None:
    store = (await store_factory(retention_count=3)).store
    a = await store.create_endpoint("a", ResponseSpec(), EndpointSettings())
    b = await store.create_endpoint("b", ResponseSpec(), EndpointSettings())
    ids_a = await _add_many(store, a.id, 5)
    ids_b = await _add_many(store, b.id, 2)
    result = await store.prune(time.time())
    assert result.removed == 2 and result.skipped == ()
    assert await _ids(store, a.id, after=0) == ids_a[2:]
    assert await _ids(store, b.id, after=0) == ids_b


async def test_prune_applies_the_maximum_age(store_factory: StoreFactory) -> None:
    store = (await store_factory(retention_count=0, retention_age=3600)).store
    ep = await store.create_endpoint("a", ResponseSpec(), EndpointSettings())
    old = await _add_many(store, ep.id, 2, received_at=time.time() - 7200)
    fresh = await _add_many(store, ep.id, 2)
    assert (await store.prune(time.time())).removed == len(old)
    assert await _ids(store, ep.id, after=0) == fresh
    assert (await store.prune(time.time())).removed == 0


async def test_prune_keeps_owed_captures_until_the_ceiling_and_counts_what_it_skips(
    store_factory: StoreFactory,
) -> None:
    store = (await store_factory(retention_count=2)).store
    target = "http://127.0.0.1:9/hook"
    ep = await store.create_endpoint("a", ResponseSpec(), EndpointSettings(forward_targets=(target,)))
    added = await _added(store, ep.id, 10)
    ids = [r.id for r in added]
    await store.set_cursor("relay", ep.id, "laptop", added[3].seq)
    await store.set_cursor("forward", ep.id, target, added[5].seq)
    await store.set_cursor("forward", ep.id, "http://127.0.0.1:9/not-a-target", 0)  # owes nothing
    # Under the ceiling: only what every owner acknowledged (and the cap) goes.
    result = await store.prune(time.time(), ceiling=100)
    assert result.removed == 4 and result.skipped == ()
    assert await _ids(store, ep.id, after=0) == ids[4:]
    # Past it: the oldest owed go, and each owner that had not got them is told how many.
    result = await store.prune(time.time(), ceiling=4)
    assert result.removed == 2 and await _ids(store, ep.id, after=0) == ids[6:]
    assert result.skipped == (Skipped("relay", ep.id, "laptop", 2, 2),)
    assert await store.skipped_counts(ep.id, "relay") == {"laptop": 2}
    assert await store.skipped_counts(ep.id, "forward") == {target: 0, "http://127.0.0.1:9/not-a-target": 0}


async def test_rejected_captures_are_owed_to_nobody(store_factory: StoreFactory) -> None:
    store = (await store_factory(retention_count=1)).store
    ep = await store.create_endpoint("a", ResponseSpec(), EndpointSettings())
    await store.set_cursor("relay", ep.id, "laptop", 0)
    rejected = await _add_many(store, ep.id, 3, body=b"", body_size=10**9, rejected="body_too_large")
    kept = await _add_many(store, ep.id, 1)
    result = await store.prune(time.time(), ceiling=100)
    assert result.removed == len(rejected) and result.skipped == ()
    assert await _ids(store, ep.id, after=0) == kept


# --- deliveries --------------------------------------------------------------------------------------------------


async def test_record_delivery_inserts_and_reads_back(store: Store, ep: Endpoint) -> None:
    req = await store.add_request(_new(ep.id))
    outcome = Outcome(status=201, latency_ms=12.5, headers=[(b"x-id", b"7")], body=b"created", body_size=7)
    delivery_id = await store.record_delivery(_update(req, outcome=outcome, state="delivered"))
    assert delivery_id > 0
    got = await store.get_delivery(delivery_id)
    assert got is not None
    assert (got.request_id, got.endpoint_id, got.kind, got.state, got.attempts) == (
        req.id, ep.id, "forward", "delivered", 1
    )
    assert (got.status, got.latency_ms, got.response_headers, got.response_body, got.response_size) == (
        201, 12.5, [(b"x-id", b"7")], b"created", 7
    )
    assert [h["status"] for h in got.history] == [201]
    assert await store.list_deliveries(req.id) == [got]
    assert await store.get_delivery(delivery_id + 1000) is None


async def test_record_delivery_upserts_per_request_kind_target_and_relay(store: Store, ep: Endpoint) -> None:
    req = await store.add_request(_new(ep.id))
    first = await store.record_delivery(_update(req, state="pending", outcome=Outcome(error="refused")))
    second = await store.record_delivery(_update(req, state="delivered", outcome=Outcome(status=200)))
    other_target = await store.record_delivery(_update(req, target="http://127.0.0.1:9/other"))
    relayed = await store.record_delivery(_update(req, kind="relay", target="", relay="laptop", attempts=3))
    assert first == second and len({first, other_target, relayed}) == 3
    got = await store.get_delivery(first)
    assert got is not None and got.state == "delivered" and got.attempts == 2 and got.error is None
    assert [(h["status"], h["error"]) for h in got.history] == [(None, "refused"), (200, None)]
    relay = await store.get_delivery(relayed)
    assert relay is not None and relay.attempts == 3 and relay.history[0]["attempts"] == 3
    assert [d.id for d in await store.list_deliveries(req.id)] == sorted([first, other_target, relayed])


async def test_replays_add_a_record_each_unless_one_is_named(store: Store, ep: Endpoint) -> None:
    req = await store.add_request(_new(ep.id))
    sent = {"method": "PUT"}
    one = await store.record_delivery(_update(req, kind="replay", sent=sent))
    two = await store.record_delivery(_update(req, kind="replay"))
    assert one != two
    again = await store.record_delivery(_update(req, kind="replay", state="failed",
                                                outcome=Outcome(status=500), delivery_id=one))
    assert again == one
    got = await store.get_delivery(one)
    assert got is not None and got.state == "failed" and got.attempts == 2 and got.sent == sent
    assert len(got.history) == 2


async def test_delivery_history_keeps_the_newest_max_history_attempts(store: Store, ep: Endpoint) -> None:
    req = await store.add_request(_new(ep.id))
    total = MAX_HISTORY + 5
    writes = [
        store.record_delivery(_update(req, state="pending", outcome=Outcome(error=f"attempt {i}")))
        for i in range(total)
    ]
    (delivery_id,) = set(await asyncio.gather(*writes))
    got = await store.get_delivery(delivery_id)
    assert got is not None and got.attempts == total
    assert [h["error"] for h in got.history] == [f"attempt {i}" for i in range(5, total)]
    # The same cap on the path that updates a named record.
    replay = await store.record_delivery(_update(req, kind="replay"))
    for i in range(MAX_HISTORY):
        store.record_delivery(_update(req, kind="replay", outcome=Outcome(status=i), delivery_id=replay))
    last = await store.record_delivery(_update(req, kind="replay", outcome=Outcome(status=999), delivery_id=replay))
    named = await store.get_delivery(last)
    assert named is not None and len(named.history) == MAX_HISTORY
    assert named.history[0]["status"] == 1 and named.history[-1]["status"] == 999


async def test_record_delivery_advances_the_cursor_in_the_same_write(store: Store, ep: Endpoint) -> None:
    reqs = [await store.add_request(_new(ep.id)) for _ in range(3)]
    for r in reqs:
        await store.record_delivery(_update(r, kind="relay", target="", relay="laptop"), ("relay", "laptop", r.seq))
    assert await store.get_cursor("relay", ep.id, "laptop") == reqs[-1].seq
    # Never backwards: a late outcome of an older request leaves the cursor where it is.
    late = _update(reqs[0], kind="relay", target="", relay="laptop")
    await store.record_delivery(late, ("relay", "laptop", reqs[0].seq))
    assert await store.get_cursor("relay", ep.id, "laptop") == reqs[-1].seq
    # No cursor given: none is created.
    await store.record_delivery(_update(reqs[0]))
    assert await store.get_cursor("forward", ep.id, "http://127.0.0.1:9/in") is None


async def test_a_delivery_for_a_request_that_is_gone_records_nothing_but_moves_the_cursor(
    store: Store, ep: Endpoint
) -> None:
    gone = await store.add_request(_new(ep.id))
    assert await store.delete_request(gone.id)
    assert await store.record_delivery(_update(gone), ("forward", "http://127.0.0.1:9/in", gone.seq)) == 0
    assert await store.list_deliveries(gone.id) == []
    assert await store.get_cursor("forward", ep.id, "http://127.0.0.1:9/in") == gone.seq
    # The endpoint gone too: still nothing fails, and no cursor comes back.
    assert await store.delete_endpoint(ep.id)
    assert await store.record_delivery(_update(gone), ("forward", "http://127.0.0.1:9/in", gone.seq)) == 0
    assert await store.get_cursor("forward", ep.id, "http://127.0.0.1:9/in") is None


async def test_deliveries_go_with_their_request(store: Store, ep: Endpoint) -> None:
    req = await store.add_request(_new(ep.id))
    delivery_id = await store.record_delivery(_update(req))
    assert await store.delete_request(req.id)
    assert await store.get_delivery(delivery_id) is None


# --- large bodies ------------------------------------------------------------------------------------------------


def _pattern(size: int) -> bytes:
    return random.Random(size).randbytes(size)  # no repeating period a misplaced chunk could hide in


async def test_a_spooled_body_round_trips_byte_exact(store: Store, ep: Endpoint) -> None:
    data = _pattern(3 * 1024 * 1024 + 17)
    added = await _spooled(store, ep.id, data)
    assert added.body is None and added.body_size == len(data)
    got = await store.get_request(added.id)
    assert got is not None and got.body is None and got.body_size == len(data)
    assert await store.load_body(got) == data
    chunks = [c async for c in await store.iter_body(got)]
    assert b"".join(chunks) == data and len(chunks) > 1  # streamed, not loaded whole
    (caught_up,) = await store.requests_after(ep.id, 0, 10)
    assert await store.load_body(caught_up) == data


async def test_a_deleted_requests_body_is_gone(store: Store, ep: Endpoint) -> None:
    large = await _spooled(store, ep.id, _pattern(2 * 1024 * 1024))
    small = await store.add_request(_new(ep.id, b"small"))
    (summary_small,) = [r for r in await store.list_requests(ep.id, RequestQuery()) if r.id == small.id]
    assert await store.clear_requests(ep.id) == 2
    for req in (large, summary_small):
        with pytest.raises(BodyMissing):
            await store.load_body(req)
        with pytest.raises(BodyMissing):
            await store.iter_body(req)


async def test_an_empty_body_and_a_rejected_capture_load_as_empty(store: Store, ep: Endpoint) -> None:
    empty = await store.add_request(_new(ep.id, b""))
    rejected = await store.add_request(_new(ep.id, b"", body_size=10**9, rejected="body_too_large"))
    for req in (empty, rejected):
        summary = replace(req, body=None)
        assert await store.load_body(summary) == b""


# --- concurrency -------------------------------------------------------------------------------------------------


async def test_concurrent_captures_all_commit_with_unique_ids_and_increasing_seqs(store: Store) -> None:
    endpoints = [await store.create_endpoint(f"e{i}", ResponseSpec(), EndpointSettings()) for i in range(3)]
    pending = [store.add_request(_new(endpoints[i % 3].id, str(i).encode())) for i in range(600)]
    added = await asyncio.gather(*pending)
    ids = [r.id for r in added]
    assert len(set(ids)) == 600
    for i, ep in enumerate(endpoints):
        mine = added[i::3]
        seqs = [r.seq for r in mine]
        assert seqs == sorted(set(seqs))  # queued in call order, committed in it: seq order within the endpoint
        assert await _ids(store, ep.id, after=0) == [r.id for r in mine]
        assert await _seqs(store, ep.id, after=0) == seqs
        bodies = [r.body for r in await store.requests_after(ep.id, 0, 1000)]
        assert bodies == [str(n).encode() for n in range(i, 600, 3)]
        assert [r.id for r in await store.requests_after(ep.id, seqs[99], 1000)] == [r.id for r in mine[100:]]


async def test_a_full_write_queue_is_store_busy_at_once(store_factory: StoreFactory) -> None:
    store = (await store_factory(queue_size=5)).store
    ep = await store.create_endpoint("a", ResponseSpec(), EndpointSettings())
    accepted: list[Awaitable[CapturedRequest]] = []
    with pytest.raises(StoreBusy):
        for _ in range(100):
            accepted.append(store.add_request(_new(ep.id)))
    assert 0 < len(accepted) < 100
    ids = [r.id for r in await asyncio.gather(*accepted)]
    assert await _ids(store, ep.id, after=0) == ids
    # Deliveries are never shed: they wait for room instead.
    req = await store.add_request(_new(ep.id))
    writes = [store.record_delivery(_update(req, kind="replay")) for _ in range(20)]
    assert len(set(await asyncio.gather(*writes))) == 20


async def test_writes_after_close_are_store_closed(store_factory: StoreFactory) -> None:
    store = (await store_factory()).store
    ep = await store.create_endpoint("a", ResponseSpec(), EndpointSettings())
    queued = store.add_request(_new(ep.id))
    await store.close()
    assert (await queued).id > 0  # close commits what was already queued
    with pytest.raises(StoreClosed):
        store.add_request(_new(ep.id))
    with pytest.raises(StoreClosed):
        await store.create_endpoint("b", ResponseSpec(), EndpointSettings())


async def test_a_capture_for_a_missing_endpoint_is_not_found(store: Store, events: RecordingSink) -> None:
    with pytest.raises(NotFound):
        await store.add_request(_new("no-such-endpoint"))
    assert events.of(RequestAdded) == []


async def test_a_capture_for_a_missing_endpoint_fails_alone_among_queued_captures(
    store: Store, events: RecordingSink, ep: Endpoint
) -> None:
    pending = [store.add_request(_new(ep.id, b"a")), store.add_request(_new("no-such-endpoint")),
               store.add_request(_new(ep.id, b"b", event_id="evt_1")),
               store.add_request(_new(ep.id, b"c", event_id="evt_1"))]
    a, missing, b, c = await asyncio.gather(*pending, return_exceptions=True)
    assert isinstance(missing, NotFound)
    assert isinstance(a, CapturedRequest) and isinstance(b, CapturedRequest) and isinstance(c, CapturedRequest)
    assert a.seq < b.seq < c.seq and c.duplicate_of == b.id and b.duplicate_of is None
    assert [r.body for r in await store.requests_after(ep.id, 0, 10)] == [b"a", b"b", b"c"]
    assert [e.request.id for e in events.of(RequestAdded)] == [a.id, b.id, c.id]


# --- events ------------------------------------------------------------------------------------------------------


def _kinds(events: list[Event]) -> list[str]:
    return [type(e).__name__ for e in events]


async def test_each_committed_change_emits_one_event_in_order(store_factory: StoreFactory) -> None:
    opened = await store_factory(retention_count=1)
    store, sink = opened.store, opened.events
    ep = await store.create_endpoint("a", ResponseSpec(), EndpointSettings())
    renamed = await store.update_endpoint(ep.id, name="b")
    first = await store.add_request(_new(ep.id))
    second = await store.add_request(_new(ep.id))
    delivery = await store.get_delivery(await store.record_delivery(_update(second)))
    await store.update_verdicts([(second.id, "invalid", "bad signature")])
    await store.prune(time.time())  # the cap of 1 removes `first`
    third = await store.add_request(_new(ep.id))
    assert await store.delete_request(third.id)
    await store.clear_requests(ep.id)
    assert await store.delete_endpoint(ep.id)
    assert sink.events == [
        EndpointChanged(ep),
        EndpointChanged(renamed) if renamed is not None else None,
        RequestAdded(first),
        RequestAdded(second),
        DeliveryRecorded(delivery) if delivery is not None else None,
        VerdictsChanged(ep.id, (Verdict(second.id, "invalid", "bad signature"),)),
        RequestsRemoved(ep.id, (first.id,), "pruned"),
        RequestAdded(third),
        RequestsRemoved(ep.id, (third.id,), "deleted"),
        RequestsRemoved(ep.id, None, "cleared"),
        EndpointDeleted(ep.id),
    ]


async def test_events_come_in_commit_order_before_the_write_returns(store: Store, events: RecordingSink) -> None:
    ep = await store.create_endpoint("a", ResponseSpec(), EndpointSettings())
    pending = [store.add_request(_new(ep.id)) for _ in range(200)]
    added = []
    for p in pending:
        req = await p
        # Emitted in the after-commit step, before the awaitable completes.
        assert any(isinstance(e, RequestAdded) and e.request.id == req.id for e in events.events)
        added.append(req.id)
    announced = [e.request for e in events.events if isinstance(e, RequestAdded)]
    assert [r.id for r in announced] == added
    assert [r.seq for r in announced] == sorted({r.seq for r in announced})  # commit order is seq order


async def test_a_reader_woken_by_an_event_finds_what_it_announces(store_factory: StoreFactory) -> None:
    class Reading(RecordingSink):
        """Starts a read of each announced request the moment it is announced."""

        def __init__(self) -> None:
            super().__init__()
            self.store: Store | None = None
            self.reads: list[asyncio.Task[CapturedRequest | None]] = []

        def emit(self, event: Event) -> None:
            super().emit(event)
            if isinstance(event, RequestAdded) and self.store is not None:
                self.reads.append(asyncio.ensure_future(self.store.get_request(event.request.id)))

    sink = Reading()
    store = (await store_factory(events=sink)).store
    sink.store = store
    ep = await store.create_endpoint("a", ResponseSpec(), EndpointSettings())
    added = await asyncio.gather(*[store.add_request(_new(ep.id)) for _ in range(50)])
    found = await asyncio.gather(*sink.reads)
    assert [r.id if r is not None else None for r in found] == [r.id for r in added]


async def test_writes_that_change_nothing_emit_nothing(store: Store, events: RecordingSink, ep: Endpoint) -> None:
    req = await store.add_request(_new(ep.id))
    assert await store.delete_request(req.id)
    before = list(events.events)
    assert not await store.delete_request(req.id)
    assert not await store.delete_endpoint("no-such-endpoint")
    assert await store.update_endpoint("no-such-endpoint", name="x") is None
    await store.update_verdicts([(req.id, "valid", "")])
    assert (await store.prune(time.time())).removed == 0
    assert await store.record_delivery(_update(req), ("forward", "http://127.0.0.1:9/in", req.seq)) == 0
    await store.set_cursor("relay", ep.id, "laptop", 1)
    with pytest.raises(NotFound):
        await store.add_request(_new("no-such-endpoint"))
    assert events.events == before


async def test_request_added_carries_small_bodies_only(store: Store, events: RecordingSink, ep: Endpoint) -> None:
    small = await store.add_request(_new(ep.id, b"s" * INLINE_BODY_MAX))
    big = await store.add_request(_new(ep.id, b"b" * (INLINE_BODY_MAX + 1)))
    spooled = await _spooled(store, ep.id, _pattern(INLINE_BODY_MAX * 4))
    bodies = {e.request.id: e.request.body for e in events.events if isinstance(e, RequestAdded)}
    assert bodies == {small.id: b"s" * INLINE_BODY_MAX, big.id: None, spooled.id: None}
    for e in events.events:
        if isinstance(e, RequestAdded) and e.request.id != small.id:
            assert len(await store.load_body(e.request)) == e.request.body_size


async def test_a_prune_event_names_the_removed_ids_and_the_owners_that_lost_them(
    store_factory: StoreFactory,
) -> None:
    opened = await store_factory(retention_count=1)
    store, sink = opened.store, opened.events
    ep = await store.create_endpoint("a", ResponseSpec(), EndpointSettings())
    other = await store.create_endpoint("b", ResponseSpec(), EndpointSettings())
    ids = await _add_many(store, ep.id, 4)
    await _add_many(store, other.id, 1)
    await store.set_cursor("relay", ep.id, "laptop", 0)
    del sink.events[:]
    result = await store.prune(time.time(), ceiling=2)
    skipped = (Skipped("relay", ep.id, "laptop", 2, 2),)
    assert result.skipped == skipped
    assert sink.events == [RequestsRemoved(ep.id, tuple(ids[:2]), "pruned", skipped)]


async def test_delivery_recorded_carries_the_committed_record(
    store: Store, events: RecordingSink, ep: Endpoint
) -> None:
    req = await store.add_request(_new(ep.id))
    first = await store.record_delivery(_update(req, state="pending", outcome=Outcome(error="refused")))
    await store.record_delivery(_update(req))
    recorded = [e.delivery for e in events.events if isinstance(e, DeliveryRecorded)]
    assert [d.id for d in recorded] == [first, first]
    assert [d.state for d in recorded] == ["pending", "delivered"]
    assert recorded[-1] == await store.get_delivery(first)
