"""SQLiteStore specifics: retention, body files, orphan sweep, migrations (the contract is in test_contract.py)."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import replace
from pathlib import Path

from app.delivery.records import MAX_HISTORY, DeliveryUpdate, Outcome
from app.endpoint_settings import EndpointSettings
from app.events.bus import EventBus
from app.events.types import RequestAdded, Skipped
from app.models import NewRequest, ResponseSpec
from app.store import RequestQuery, SQLiteStore
from app.store.base import BodySpool
from app.store.sqlite.schema import MIGRATIONS, _split
from app.store.sqlite.store import encode_response
from tests.store.sink import RecordingSink


def _new(endpoint_id: str, body: bytes = b"x", at: float | None = None, spool: BodySpool | None = None) -> NewRequest:
    return NewRequest(
        endpoint_id=endpoint_id, received_at=at or time.time(), method="POST", path="", query="",
        headers=(("content-type", "text/plain"),), body=None if spool else body, spool=spool,
        body_size=len(body), client="127.0.0.1", http_version="1.1",
    )


async def test_retention_by_count_and_age(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db", events=EventBus(), retention_count=5, retention_age=3600)
    await store.open()
    try:
        ep = await store.create_endpoint("a", ResponseSpec(), EndpointSettings())
        other = await store.create_endpoint("b", ResponseSpec(), EndpointSettings())
        old = await store.add_request(_new(other.id, at=time.time() - 7200))
        ids = [(await store.add_request(_new(ep.id))).id for _ in range(8)]
        result = await store.prune(time.time())
        assert result.removed == 4 and result.skipped == ()  # three over the cap, one too old
        kept = await store.list_requests(ep.id, RequestQuery(limit=50))
        assert [r.id for r in kept] == ids[::-1][:5]
        assert await store.get_request(old.id) is None
    finally:
        await store.close()


async def test_spooled_bodies_and_orphan_sweep(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db", events=EventBus())
    await store.open()
    ep = await store.create_endpoint("a", ResponseSpec(), EndpointSettings())
    spool = store.new_spool()
    await spool.write(b"a" * 1000)
    await spool.finish()
    kept = await store.add_request(_new(ep.id, b"a" * 1000, spool=spool))
    assert kept.body is None  # not loaded: the store reads it by request id
    orphan = store.new_spool()
    await orphan.write(b"lost")  # a crash before commit leaves this behind
    await store.close()
    bodies = tmp_path / "s.db.bodies"
    conn = sqlite3.connect(tmp_path / "s.db")
    ((name,),) = conn.execute("SELECT body_file FROM requests").fetchall()
    conn.close()
    assert len(list(bodies.iterdir())) == 2
    store = SQLiteStore(tmp_path / "s.db", events=EventBus())
    await store.open()
    try:
        assert [p.name for p in bodies.iterdir()] == [name]
        got = await store.get_request(kept.id)
        assert got is not None and await store.load_body(got) == b"a" * 1000
        assert await store.clear_requests(ep.id) == 1
        assert list(bodies.iterdir()) == []
    finally:
        await store.close()


async def test_request_events_come_in_id_order(tmp_path: Path) -> None:
    bus = EventBus()
    seen: list[int] = []
    bus.listen(lambda e: seen.append(e.request.id) if isinstance(e, RequestAdded) else None)
    store = SQLiteStore(tmp_path / "s.db", events=bus)
    await store.open()
    try:
        ep = await store.create_endpoint("a", ResponseSpec(), EndpointSettings())
        futures = [store.add_request(_new(ep.id)) for _ in range(100)]
        for f in futures:
            await f
        assert seen == sorted(seen) and len(seen) == 100
    finally:
        await store.close()


async def test_schema_version_and_durability_pragmas(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db", events=EventBus(), durability="full")
    await store.open()
    await store.close()
    conn = sqlite3.connect(tmp_path / "s.db")
    assert conn.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_endpoints_survive_restart(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db", events=EventBus())
    await store.open()
    ep = await store.create_endpoint(
        "keep", ResponseSpec(status=204), EndpointSettings(forward_targets=("http://127.0.0.1:9/in",), replay_target="http://h/r")
    )
    await store.close()
    store = SQLiteStore(tmp_path / "s.db", events=EventBus())
    await store.open()
    try:
        again = store.cached_endpoint(ep.id)
        assert again == ep
    finally:
        await store.close()


async def test_requests_after_carries_exact_bodies_of_detected_requests(tmp_path: Path) -> None:
    # Regression: the backfill read the body from a fixed column that became `provider` in migration 2, so a
    # Stripe event caught up by a forwarder or relay was sent with the body "stripe".
    from dataclasses import replace

    store = SQLiteStore(tmp_path / "s.db", events=EventBus())
    await store.open()
    try:
        ep = await store.create_endpoint("a", ResponseSpec(), EndpointSettings())
        body = b'{"id": "evt_1", "type": "invoice.paid"}'
        detected = replace(_new(ep.id, body), provider="stripe", event_type="invoice.paid", event_id="evt_1")
        first = await store.add_request(detected)
        plain = await store.add_request(_new(ep.id, b"\x00\xffplain"))
        rows = await store.requests_after(ep.id, 0, 10)
        assert [(r.id, r.body, r.provider) for r in rows] == [
            (first.id, body, "stripe"),
            (plain.id, b"\x00\xffplain", None),
        ]
    finally:
        await store.close()


# --- retention that respects deliveries (cursors) ------------------------------------------------------------------


async def _store(tmp_path: Path, **kw: float) -> SQLiteStore:
    store = SQLiteStore(tmp_path / "s.db", events=EventBus(), **kw)  # type: ignore[arg-type]
    await store.open()
    return store


async def _ids(store: SQLiteStore, endpoint_id: str) -> list[int]:
    return sorted(r.id for r in await store.list_requests(endpoint_id, RequestQuery(limit=10_000)))


async def test_prune_keeps_what_a_relay_still_owes_then_prunes_once_acked(tmp_path: Path) -> None:
    store = await _store(tmp_path, retention_count=5)
    try:
        ep = await store.create_endpoint("a", ResponseSpec(), EndpointSettings())
        ids = [(await store.add_request(_new(ep.id))).id for _ in range(20)]
        await store.set_cursor("relay", ep.id, "laptop", ids[3])  # got the first four, then went away
        result = await store.prune(time.time())
        assert result.removed == 4 and result.skipped == ()  # only what it acknowledged (and over the cap)
        assert await _ids(store, ep.id) == ids[4:]
        assert await store.count_requests_after(ep.id, ids[3]) == 16
        await store.set_cursor("relay", ep.id, "laptop", ids[-1])
        assert (await store.prune(time.time())).removed == 11
        assert await _ids(store, ep.id) == ids[-5:]
        assert await store.skipped_counts(ep.id, "relay") == {"laptop": 0}
    finally:
        await store.close()


async def test_prune_past_the_ceiling_drops_the_oldest_and_counts_them_per_cursor(tmp_path: Path) -> None:
    store = await _store(tmp_path, retention_count=5)
    try:
        target = "http://127.0.0.1:9/hook"
        ep = await store.create_endpoint("a", ResponseSpec(), EndpointSettings(forward_targets=(target,)))
        ids = []
        for i in range(20):
            rejected = "body too large" if i == 6 else None  # metadata only: owes nothing, never counted
            ids.append((await store.add_request(replace(_new(ep.id), rejected=rejected))).id)
        await store.set_cursor("relay", ep.id, "behind", ids[1])
        await store.set_cursor("relay", ep.id, "ahead", ids[9])
        await store.set_cursor("forward", ep.id, target, ids[3])
        await store.set_cursor("forward", ep.id, "http://127.0.0.1:9/removed", 0)  # no longer a target
        result = await store.prune(time.time(), ceiling=12)
        assert result.removed == 8 and await _ids(store, ep.id) == ids[8:]
        # ids[0..7] went; "behind" had not got ids[2..7] (one of them rejected), the target ids[4..7].
        assert set(result.skipped) == {
            Skipped("relay", ep.id, "behind", 5, 5), Skipped("forward", ep.id, target, 3, 3),
        }
        assert await store.skipped_counts(ep.id, "relay") == {"behind": 5, "ahead": 0}
        assert await store.skipped_counts(ep.id, "forward") == {target: 3, "http://127.0.0.1:9/removed": 0}
        # Pending counts only what is still there to deliver.
        assert await store.count_requests_after(ep.id, ids[1]) == 12
        more = [(await store.add_request(_new(ep.id))).id for _ in range(3)]
        result = await store.prune(time.time(), ceiling=12)
        assert result.removed == 3 and await _ids(store, ep.id) == ids[11:] + more
        # ids[8..10] went: "ahead" (acked ids[9]) now misses ids[10] too.
        assert {(s.name, s.count, s.total) for s in result.skipped} == {
            ("behind", 3, 8), (target, 3, 6), ("ahead", 1, 1),
        }
        # A ceiling below the cap never prunes what the cap alone would keep.
        assert (await store.prune(time.time(), ceiling=0)).removed == len(ids[11:] + more) - 5
    finally:
        await store.close()


async def test_age_pruning_keeps_owed_captures_until_the_ceiling(tmp_path: Path) -> None:
    store = await _store(tmp_path, retention_count=0, retention_age=3600)
    try:
        ep = await store.create_endpoint("a", ResponseSpec(), EndpointSettings())
        old = time.time() - 7200
        ids = [(await store.add_request(_new(ep.id, at=old))).id for _ in range(10)]
        fresh = [(await store.add_request(_new(ep.id))).id for _ in range(2)]
        await store.set_cursor("relay", ep.id, "laptop", ids[2])
        result = await store.prune(time.time())
        assert result.removed == 3 and await _ids(store, ep.id) == ids[3:] + fresh
        result = await store.prune(time.time(), ceiling=5)
        assert result.removed == 4 and await _ids(store, ep.id) == ids[7:] + fresh
        assert [(s.name, s.count, s.total) for s in result.skipped] == [("laptop", 4, 4)]
        # Without cursors age pruning is as before.
        assert await store.delete_cursor("relay", ep.id, "laptop")
        assert (await store.prune(time.time())).removed == 3
        assert await _ids(store, ep.id) == fresh
    finally:
        await store.close()


async def test_a_delivery_for_a_pruned_request_still_moves_the_cursor(tmp_path: Path) -> None:
    store = await _store(tmp_path)
    try:
        ep = await store.create_endpoint("a", ResponseSpec(), EndpointSettings())
        gone = await store.add_request(_new(ep.id))
        kept = await store.add_request(_new(ep.id))
        assert await store.delete_request(gone.id)
        update = DeliveryUpdate(gone.id, ep.id, "relay", "http://x", "laptop", "delivered", 1, Outcome(status=200))
        assert await store.record_delivery(update, ("relay", "laptop", gone.id)) == 0
        assert await store.get_cursor("relay", ep.id, "laptop") == gone.id
        assert await store.list_deliveries(gone.id) == []
        # The next one is recorded as usual, in the same batch as another orphan.
        late = store.record_delivery(replace(update, request_id=gone.id), ("relay", "laptop", gone.id))
        ok = store.record_delivery(replace(update, request_id=kept.id), ("relay", "laptop", kept.id))
        assert await late == 0 and await ok > 0
        assert await store.get_cursor("relay", ep.id, "laptop") == kept.id
        assert [d.request_id for d in await store.list_deliveries(kept.id)] == [kept.id]
        # An endpoint deleted meanwhile: nothing to write, and nothing fails.
        assert await store.delete_endpoint(ep.id)
        assert await store.record_delivery(replace(update, request_id=kept.id), ("relay", "laptop", kept.id)) == 0
        assert await store.get_cursor("relay", ep.id, "laptop") is None
    finally:
        await store.close()


async def test_a_history_longer_than_the_cap_shrinks_towards_it(tmp_path: Path) -> None:
    # Older versions let a history grow without bound: each new attempt now drops two entries until it fits.
    store = await _store(tmp_path)
    try:
        ep = await store.create_endpoint("a", ResponseSpec(), EndpointSettings())
        req = await store.add_request(_new(ep.id))
        update = DeliveryUpdate(req.id, ep.id, "forward", "http://x", "", "pending", 1, Outcome(error="e"))
        delivery_id = await store.record_delivery(update)
        entries = [{"at": 0, "status": None, "latency_ms": None, "error": str(i)} for i in range(MAX_HISTORY + 3)]
        conn = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
        conn.execute("UPDATE deliveries SET history = ? WHERE id = ?", (json.dumps(entries), delivery_id))
        conn.close()
        lengths = []
        for _ in range(3):
            await store.record_delivery(update)
            got = await store.get_delivery(delivery_id)
            assert got is not None and got.history[-1]["error"] == "e"
            lengths.append(len(got.history))
        assert lengths == [MAX_HISTORY + 2, MAX_HISTORY + 1, MAX_HISTORY]
    finally:
        await store.close()


async def test_migration_4_adds_skipped_to_existing_cursors(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    for script in MIGRATIONS[:3]:
        for statement in _split(script):
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 3")
    conn.execute("INSERT INTO endpoints VALUES ('e1', 'old', 0, ?, '{}')", (encode_response(ResponseSpec()),))
    conn.execute("INSERT INTO cursors VALUES ('relay', 'e1', 'laptop', 7, 0)")
    conn.close()
    store = await _store(tmp_path)
    try:
        assert await store.skipped_counts("e1", "relay") == {"laptop": 0}
        assert await store.get_cursor("relay", "e1", "laptop") == 7
    finally:
        await store.close()


# --- seq: on SQLite a request's seq is its id ---------------------------------------------------------------------


async def test_seq_is_the_request_id_everywhere_a_request_is_read(tmp_path: Path) -> None:
    sink = RecordingSink()
    store = SQLiteStore(tmp_path / "s.db", events=sink)
    await store.open()
    try:
        a = await store.create_endpoint("a", ResponseSpec(), EndpointSettings())
        b = await store.create_endpoint("b", ResponseSpec(), EndpointSettings())
        added = [await store.add_request(_new(ep.id)) for ep in (a, b, a)]
        assert [r.seq for r in added] == [r.id for r in added]
        assert [r.seq for r in added] != [1, 1, 2]  # gaps per endpoint, not a count per endpoint
        got = await store.get_request(added[2].id)
        assert got is not None and got.seq == got.id and got.summary_json()["seq"] == got.id
        assert [(r.id, r.seq) for r in await store.requests_after(a.id, 0, 10)] == \
            [(added[0].id, added[0].id), (added[2].id, added[2].id)]
        announced = [e.request for e in sink.events if isinstance(e, RequestAdded)]
        assert [(r.id, r.seq) for r in announced] == [(r.id, r.id) for r in added]
        assert await store.last_seq(a.id) == added[2].id and await store.last_seq(b.id) == added[1].id
    finally:
        await store.close()


async def test_last_seq_survives_every_kind_of_delete_and_a_restart(tmp_path: Path) -> None:
    store = await _store(tmp_path, retention_count=1)
    try:
        ep = await store.create_endpoint("a", ResponseSpec(), EndpointSettings())
        other = await store.create_endpoint("b", ResponseSpec(), EndpointSettings())
        ids = [(await store.add_request(_new(ep.id))).id for _ in range(3)]
        later = (await store.add_request(_new(other.id))).id
        assert await store.delete_request(ids[-1])
        assert await store.last_seq(ep.id) == ids[-1]  # the newest one is gone, its seq is not given back
        assert await store.last_seq(other.id) == later
        await store.prune(time.time())  # the cap of 1 leaves ids[1] only
        assert await _ids(store, ep.id) == [ids[1]] and await store.last_seq(ep.id) == ids[-1]
        await store.clear_requests(ep.id)
        assert await store.last_seq(ep.id) == ids[-1]
    finally:
        await store.close()
    store = await _store(tmp_path)
    try:
        assert await store.last_seq(ep.id) == ids[-1]
        assert (await store.add_request(_new(ep.id))).seq > later
    finally:
        await store.close()


async def test_migration_5_bounds_the_last_seq_of_existing_endpoints(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    for script in MIGRATIONS[:4]:
        for statement in _split(script):
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 4")
    for eid in ("e1", "e2"):
        conn.execute("INSERT INTO endpoints VALUES (?, 'old', 0, ?, '{}')", (eid, encode_response(ResponseSpec())))
    row = ("POST", "", "", "[]", "", 0, "1.1")
    insert = ("INSERT INTO requests (endpoint_id, received_at, method, path, query, headers, content_type, body_size,"
              " http_version) VALUES (?, 0, ?, ?, ?, ?, ?, ?, ?)")
    for eid in ("e1", "e1", "e2"):
        conn.execute(insert, (eid, *row))
    conn.execute("DELETE FROM requests WHERE id = 3")  # e2's only request, deleted before the upgrade
    conn.close()
    store = await _store(tmp_path)
    try:
        # Which ids an endpoint lost before the upgrade is unknown: the store-wide newest id bounds them.
        assert await store.last_seq("e1") == 3 and await store.last_seq("e2") == 3
        assert (await store.add_request(_new("e2"))).seq == 4
        assert await store.last_seq("e2") == 4 and await store.last_seq("e1") == 3
        created = await store.create_endpoint("new", ResponseSpec(), EndpointSettings())
        assert await store.last_seq(created.id) == 0
    finally:
        await store.close()
