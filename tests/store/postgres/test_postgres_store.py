"""What the PostgreSQL backend promises beyond the shared contract (tests/store/test_contract.py): group commit,
seq order under several writers, raw bytes, streamed large bodies, concurrent migrations, start-up refusals."""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from app.endpoint_settings import EndpointSettings
from app.models import CapturedRequest, NewRequest, ResponseSpec
from app.store.base import RequestQuery
from app.store.errors import StorageUnavailable
from app.store.postgres import PostgresStore
from app.store.postgres.bodies import CHUNK
from app.store.postgres.schema import MIGRATION_LOCK, MIGRATIONS, stored_version
from tests.store.sink import RecordingSink
from tests.support import free_port, wait_until

Opener = Callable[..., Awaitable[PostgresStore]]


@pytest.fixture
async def open_store(pg_dsn: str) -> AsyncIterator[Opener]:
    """Opens stores on the test's database (several: instances sharing it); closes them after the test."""
    stores: list[PostgresStore] = []

    async def make(**kw: Any) -> PostgresStore:
        store = PostgresStore(pg_dsn, events=kw.pop("events", RecordingSink()), **{"durability": "normal", **kw})
        stores.append(store)
        await store.open()
        return store

    yield make
    for store in stores:
        await store.close()


def _new(endpoint_id: str, body: bytes | None = b"x", **fields: Any) -> NewRequest:
    values: dict[str, Any] = dict(
        endpoint_id=endpoint_id, received_at=time.time(), method="POST", path="", query="", headers=(), body=body,
        body_size=len(body or b""), client="127.0.0.1", http_version="1.1",
    )
    values.update(fields)
    return NewRequest(**values)


async def _until(conn: asyncpg.Connection, sql: str, timeout: float = 10.0) -> None:
    """Poll a boolean query until it holds (what tests/support.wait_until does for a condition in memory)."""
    deadline = time.monotonic() + timeout
    while not await conn.fetchval(sql):
        if time.monotonic() > deadline:
            raise TimeoutError(f"never true: {sql}")
        await asyncio.sleep(0.01)


async def test_queued_captures_commit_in_one_transaction(open_store: Opener, pg_dsn: str) -> None:
    store = await open_store()
    a = await store.create_endpoint("a", ResponseSpec(), EndpointSettings())
    b = await store.create_endpoint("b", ResponseSpec(), EndpointSettings())
    # Queued before the writer runs again: one batch, hence one transaction (one xmin) for all of them.
    added = await asyncio.gather(*[store.add_request(_new((a, b)[i % 2].id, str(i).encode())) for i in range(300)])
    conn = await asyncpg.connect(pg_dsn)
    try:
        xids = await conn.fetchval("SELECT count(DISTINCT xmin::text) FROM requests")
        per_endpoint = await conn.fetch("SELECT endpoint_id, array_agg(seq ORDER BY id) AS seqs FROM requests"
                                        " GROUP BY endpoint_id")
    finally:
        await conn.close()
    assert xids == 1
    # Each endpoint took one contiguous block of seqs, in queue order.
    assert {r["endpoint_id"]: list(r["seqs"]) for r in per_endpoint} == {a.id: list(range(1, 151)),
                                                                         b.id: list(range(1, 151))}
    assert [r.seq for r in added[::2]] == list(range(1, 151))
    assert await store.last_seq(a.id) == 150


async def test_a_failing_capture_fails_alone_in_its_batch(open_store: Opener, pg_dsn: str) -> None:
    store = await open_store()
    ep = await store.create_endpoint("a", ResponseSpec(), EndpointSettings())
    spool = store.new_spool()
    await spool.write(b"z" * (CHUNK + 10))
    await spool.finish()
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute("DELETE FROM spools")  # what the orphan sweep does to an upload left too long
    finally:
        await conn.close()
    pending = [
        store.add_request(_new(ep.id, b"1")),
        store.add_request(_new(ep.id, None, body_size=CHUNK + 10, spool=spool)),
        store.add_request(_new("no-such-endpoint")),
        store.add_request(_new(ep.id, b"2")),
    ]
    results = await asyncio.gather(*pending, return_exceptions=True)
    assert isinstance(results[1], Exception) and isinstance(results[2], Exception)
    good = [r for r in results if isinstance(r, CapturedRequest)]
    assert [r.body for r in good] == [b"1", b"2"]
    assert [r.id for r in await store.requests_after(ep.id, 0, 10)] == [r.id for r in good]


async def test_seq_order_is_commit_order_across_instances(open_store: Opener, pg_dsn: str) -> None:
    first = await open_store()
    second = await open_store()
    ep = await first.create_endpoint("shared", ResponseSpec(), EndpointSettings())
    # A writer of another instance takes seq s and stays open (a slow commit)...
    slow = await asyncpg.connect(pg_dsn)
    tx = slow.transaction()
    await tx.start()
    seq = await slow.fetchval("UPDATE endpoints SET next_seq = next_seq + 1 WHERE id = $1 RETURNING next_seq", ep.id)
    await slow.execute(
        "INSERT INTO requests (endpoint_id, seq, received_at, method, path, query, headers, body, body_size,"
        " http_version) VALUES ($1, $2, $3, 'POST', '', '', '', 'slow', 4, '1.1')", ep.id, seq, time.time()
    )
    # ...so this instance's capture of the same endpoint waits for it instead of committing seq s+1 first,
    # which a tailer that read "seq > s-1" would then skip past s for ever.
    pending = asyncio.ensure_future(second.add_request(_new(ep.id, b"fast")))
    watcher = await asyncpg.connect(pg_dsn)
    try:
        await _until(watcher, "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name ="
                              " 'hookscope-writer' AND datname = current_database() AND wait_event_type = 'Lock')")
        assert await first.requests_after(ep.id, 0, 10) == []
        await tx.commit()
        fast = await pending
    finally:
        await watcher.close()
        await slow.close()
    assert fast.seq == seq + 1
    assert [(r.seq, r.body) for r in await first.requests_after(ep.id, 0, 10)] == [(seq, b"slow"), (seq + 1, b"fast")]


async def test_a_tailer_misses_nothing_while_two_instances_capture(open_store: Opener) -> None:
    one, two = await open_store(), await open_store()
    ep = await one.create_endpoint("shared", ResponseSpec(), EndpointSettings())
    seen: list[int] = []
    done = asyncio.Event()

    async def tail() -> None:
        # What a live page or a relay does: read "after the last seq I saw", again and again.
        while True:
            finished = done.is_set()
            batch = await one.requests_after(ep.id, seen[-1] if seen else 0, 1000)
            seen.extend(r.seq for r in batch)
            if finished and not batch:
                return
            await asyncio.sleep(0)

    tailer = asyncio.ensure_future(tail())
    try:
        waves = [asyncio.gather(*[s.add_request(_new(ep.id, f"{n}-{i}".encode())) for i in range(40)])
                 for n in range(5) for s in (one, two)]
        added = [r for wave in await asyncio.gather(*waves) for r in wave]
    finally:
        done.set()
        await tailer
    assert sorted(r.seq for r in added) == list(range(1, 401))  # unique, no gaps when nothing failed
    assert seen == list(range(1, 401))  # every one, once, in order


async def test_raw_bytes_round_trip_exactly(open_store: Opener) -> None:
    store = await open_store()
    ep = await store.create_endpoint("bytes", ResponseSpec(), EndpointSettings())
    body = b"\x00nul\x00 \xff\xfe not utf-8 \xc3\x28 needle"
    headers = (("x-bin", "\xff\xfe\x80"), ("x-nul-ish", "a\x01b"), ("content-type", "application/octet-stream"))
    added = await store.add_request(_new(ep.id, body, path="/p\xe4th/\xff", query="q=\xfe&x", headers=headers))
    got = await store.get_request(added.id)
    assert got == added and got.body == body and got.headers == headers
    assert got.content_type == "application/octet-stream"
    # The text filter searches the bytes, NULs and invalid UTF-8 around them notwithstanding.
    assert [r.id for r in await store.list_requests(ep.id, RequestQuery(text="NEEDLE"))] == [added.id]
    assert [r.id for r in await store.list_requests(ep.id, RequestQuery(text="nul"))] == [added.id]


async def test_text_that_postgres_text_cannot_hold_is_stored_repaired(open_store: Opener) -> None:
    store = await open_store()
    ep = await store.create_endpoint("a\x00b", ResponseSpec(), EndpointSettings())
    added = await store.add_request(_new(ep.id, event_id="evt\x00\ud800", event_type="t"))
    assert added.event_id == "evt\ufffd\ufffd" and ep.name == "a\ufffdb"
    assert await store.get_request(added.id) == added


def _stream(seed: int, size: int, piece: int = 64 * 1024) -> list[int]:
    """Piece sizes of an upload (the bytes are generated from the seed as they are sent: never held whole)."""
    sizes = [piece] * (size // piece)
    return sizes + ([size % piece] if size % piece else [])


async def test_a_20_mib_body_streams_in_and_out_in_chunks(open_store: Opener) -> None:
    store = await open_store()
    ep = await store.create_endpoint("big", ResponseSpec(), EndpointSettings())
    size = 20 * 1024 * 1024 + 123
    rng = random.Random(7)
    sent = hashlib.sha256()
    tracemalloc.start()
    try:
        spool = store.new_spool()
        for n in _stream(7, size):
            piece = rng.randbytes(n)
            sent.update(piece)
            await spool.write(piece)
        await spool.finish()
        added = await store.add_request(_new(ep.id, None, body_size=size, spool=spool))
        got = await store.get_request(added.id)
        assert got is not None and got.body is None and got.body_size == size
        received = hashlib.sha256()
        pieces = 0
        async for chunk in await store.iter_body(got):
            assert len(chunk) <= CHUNK
            received.update(chunk)
            pieces += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received.digest() == sent.digest() and pieces == -(-size // CHUNK)
    assert peak < 4 * 1024 * 1024  # a few chunks in flight, never the 20 MiB body
    assert hashlib.sha256(await store.load_body(got)).digest() == sent.digest()


async def test_a_cut_body_is_body_missing_before_the_first_byte(open_store: Opener, pg_dsn: str) -> None:
    from app.store.errors import BodyMissing

    store = await open_store()
    ep = await store.create_endpoint("big", ResponseSpec(), EndpointSettings())
    spool = store.new_spool()
    await spool.write(b"q" * (3 * CHUNK))
    await spool.finish()
    added = await store.add_request(_new(ep.id, None, body_size=3 * CHUNK, spool=spool))
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute("DELETE FROM body_chunks WHERE n = 1")
    finally:
        await conn.close()
    with pytest.raises(BodyMissing):
        await store.iter_body(added)
    with pytest.raises(BodyMissing):
        await store.load_body(added)


async def test_discarded_and_abandoned_spools_are_removed(open_store: Opener, pg_dsn: str) -> None:
    store = await open_store()
    discarded = store.new_spool()
    await discarded.write(b"d" * (CHUNK + 1))
    discarded.discard()
    abandoned = store.new_spool()  # an instance died mid-upload
    await abandoned.write(b"a" * (CHUNK + 1))
    conn = await asyncpg.connect(pg_dsn)
    try:
        await _until(conn, "SELECT count(*) = 1 FROM spools")
        await conn.execute("UPDATE spools SET created_at = created_at - 7200")
        await store.prune(time.time())
        assert await conn.fetchval("SELECT count(*) FROM spools") == 0
        assert await conn.fetchval("SELECT count(*) FROM body_chunks") == 0
    finally:
        await conn.close()


async def test_instances_starting_at_once_migrate_once(open_store: Opener, pg_dsn: str) -> None:
    stores = await asyncio.gather(*[open_store() for _ in range(4)])
    ep = await stores[0].create_endpoint("a", ResponseSpec(), EndpointSettings())
    assert all([(await s.add_request(_new(ep.id))).seq for s in stores])
    conn = await asyncpg.connect(pg_dsn)
    try:
        versions = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")]
    finally:
        await conn.close()
    assert versions == list(range(1, len(MIGRATIONS) + 1))


async def test_a_check_racing_a_migration_sees_an_empty_or_a_migrated_database(pg_dsn: str) -> None:
    """An instance checks the database while another commits the first migration: it must see the database
    before (empty) or after (ours), never the migrator's tables without their `schema_migrations`."""
    migrator, checker = await asyncpg.connect(pg_dsn), await asyncpg.connect(pg_dsn)
    seen: list[int | None] = []
    committed = asyncio.Event()

    async def check_until_committed() -> None:
        while True:
            done = committed.is_set()
            seen.append(await stored_version(checker))
            if done:
                return

    try:
        tx = migrator.transaction()
        await tx.start()
        await migrator.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await migrator.execute("CREATE TABLE schema_migrations (version integer PRIMARY KEY)")
        for number, ddl in enumerate(MIGRATIONS, 1):
            await migrator.execute(ddl)
            await migrator.execute("INSERT INTO schema_migrations (version) VALUES ($1)", number)
        checking = asyncio.create_task(check_until_committed())
        await wait_until(lambda: len(seen) >= 3)
        await tx.commit()
        committed.set()
        await checking
    finally:
        await migrator.close()
        await checker.close()
    assert seen[0] is None and seen[-1] == len(MIGRATIONS)
    assert set(seen) <= {None, len(MIGRATIONS)}


async def test_durability_sets_synchronous_commit(open_store: Opener) -> None:
    for durability, expected in (("full", "on"), ("normal", "off")):
        store = await open_store(durability=durability)

        async def show(conn: asyncpg.Connection) -> str:
            return str(await conn.fetchval("SHOW synchronous_commit"))

        assert await store.writer.submit(show) == expected


async def test_claim_refuses_what_it_cannot_use(pg_dsn: str) -> None:
    nowhere = PostgresStore(f"postgresql://postgres:secret@127.0.0.1:{free_port()}/x", events=RecordingSink())
    with pytest.raises(StorageUnavailable, match="unreachable") as refused:
        nowhere.claim()
    assert "secret" not in str(refused.value)
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute("CREATE TABLE requests (id int)")
        with pytest.raises(StorageUnavailable, match="not a hookscope database"):
            PostgresStore(pg_dsn, events=RecordingSink()).claim()
        await conn.execute("DROP TABLE requests")
        ours = PostgresStore(pg_dsn, events=RecordingSink())
        await ours.open()
        await ours.close()
        await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", len(MIGRATIONS) + 1)
        with pytest.raises(StorageUnavailable, match="newer"):
            PostgresStore(pg_dsn, events=RecordingSink()).claim()
        with pytest.raises(StorageUnavailable, match="newer"):
            await PostgresStore(pg_dsn, events=RecordingSink()).open()
    finally:
        await conn.close()


async def _terminate_writer(dsn: str) -> None:
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                            " WHERE application_name = 'hookscope-writer' AND datname = current_database()")
        await _until(admin, "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity"
                            " WHERE application_name = 'hookscope-writer' AND datname = current_database())")
    finally:
        await admin.close()


async def test_the_writer_reconnects_and_health_reports_refused_writes(open_store: Opener, pg_dsn: str) -> None:
    store = await open_store()
    ep = await store.create_endpoint("a", ResponseSpec(), EndpointSettings())
    assert await store.health() is None
    # A connection the server ended while idle is replaced before the next batch: nothing is lost.
    await _terminate_writer(pg_dsn)
    assert (await store.add_request(_new(ep.id))).seq == 1
    # A database that takes no writes is reported, and healthy again as soon as it takes them.
    database = pg_dsn.rsplit("/", 1)[1]
    admin = await asyncpg.connect(pg_dsn)
    try:
        await admin.execute(f'ALTER DATABASE "{database}" SET default_transaction_read_only = on')
        await _terminate_writer(pg_dsn)
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await store.add_request(_new(ep.id))
        assert "read-only" in (await store.health() or "")
        await admin.execute(f'ALTER DATABASE "{database}" SET default_transaction_read_only = off')
        await _terminate_writer(pg_dsn)
    finally:
        await admin.close()
    assert await store.health() is None
    assert (await store.add_request(_new(ep.id))).seq > 1
