"""SQLiteStore: retention, body files, orphan sweep, migrations, listener order."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from app.models import NewRequest, ResponseSpec
from app.store import RequestQuery, SQLiteStore
from app.store.schema import MIGRATIONS


def _new(endpoint_id: str, body: bytes = b"x", at: float | None = None, body_file: str | None = None) -> NewRequest:
    return NewRequest(
        endpoint_id=endpoint_id, received_at=at or time.time(), method="POST", path="", query="",
        headers=(("content-type", "text/plain"),), body=None if body_file else body, body_file=body_file,
        body_size=len(body), client="127.0.0.1", http_version="1.1",
    )


async def test_retention_by_count_and_age(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db", retention_count=5, retention_age=3600)
    await store.open()
    try:
        ep = await store.create_endpoint("a", ResponseSpec(), {})
        other = await store.create_endpoint("b", ResponseSpec(), {})
        old = await store.add_request(_new(other.id, at=time.time() - 7200))
        ids = [(await store.add_request(_new(ep.id))).id for _ in range(8)]
        removed = await store.prune(time.time())
        assert removed == 4  # three over the cap, one too old
        kept = await store.list_requests(ep.id, RequestQuery(limit=50))
        assert [r.id for r in kept] == ids[::-1][:5]
        assert await store.get_request(old.id) is None
    finally:
        await store.close()


async def test_spooled_bodies_and_orphan_sweep(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    ep = await store.create_endpoint("a", ResponseSpec(), {})
    spool = store.new_spool()
    spool.write(b"a" * 1000)
    await spool.finish()
    kept = await store.add_request(_new(ep.id, b"a" * 1000, body_file=spool.name))
    orphan = store.new_spool()
    orphan.write(b"lost")  # a crash before commit leaves this behind
    await store.close()
    bodies = tmp_path / "s.db.bodies"
    assert sorted(p.name for p in bodies.iterdir()) == sorted([spool.name, orphan.name])
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    try:
        assert [p.name for p in bodies.iterdir()] == [spool.name]
        got = await store.get_request(kept.id)
        assert got is not None and await store.load_body(got) == b"a" * 1000
        assert await store.clear_requests(ep.id) == 1
        assert list(bodies.iterdir()) == []
    finally:
        await store.close()


async def test_listeners_see_commits_in_id_order(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    seen: list[int] = []
    store.on_request(lambda r: seen.append(r.id))
    await store.open()
    try:
        ep = await store.create_endpoint("a", ResponseSpec(), {})
        futures = [store.add_request(_new(ep.id)) for _ in range(100)]
        for f in futures:
            await f
        assert seen == sorted(seen) and len(seen) == 100
    finally:
        await store.close()


async def test_schema_version_and_durability_pragmas(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db", durability="full")
    await store.open()
    await store.close()
    conn = sqlite3.connect(tmp_path / "s.db")
    assert conn.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_endpoints_survive_restart(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    ep = await store.create_endpoint("keep", ResponseSpec(status=204), {"x": 1})
    await store.close()
    store = SQLiteStore(tmp_path / "s.db")
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

    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    try:
        ep = await store.create_endpoint("a", ResponseSpec(), {})
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
