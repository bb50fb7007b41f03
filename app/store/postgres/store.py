"""The PostgreSQL backend: one writer task (group commit) and a small read pool per instance, any number of
instances on one database.

Seqs: a request's seq is allocated in the writing transaction from `endpoints.next_seq` (captures.py), so
within an endpoint seq order is commit order whichever instance wrote it; `last_seq` is that counter. Ids come
from an identity sequence: unique, but with several writers not in commit order, which is why every cursor is
a seq.

Several instances behave, for each one's event bus, like one store: every write transaction also writes its
non-request changes to an outbox (changes.py) and rings the doorbell (doorbell.py) at COMMIT; each instance hears
the others' rings on its own listening connection and emits their events from the database in the endpoint's
commit order, exactly once, merged with its own (fanout.py). `cached_endpoint` follows every instance's endpoint
changes the same way. Every read method reads the database, so it sees every instance's commits.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any, TypeVar

import asyncpg

from app.endpoint_settings import EndpointSettings, settings_to_json
from app.events.types import (
    INLINE_BODY_MAX,
    EndpointChanged,
    EndpointDeleted,
    Event,
    EventSink,
    RequestAdded,
    RequestsRemoved,
    Verdict,
    VerdictsChanged,
)
from app.models import CapturedRequest, Endpoint, EndpointStats, NewRequest, ResponseSpec, new_endpoint_id
from app.providers.types import VerdictStatus
from app.settings import Durability, redact_database
from app.store.base import BodySpool, PruneResult, RequestQuery, Store
from app.store.codec import encode_response
from app.store.errors import BodyMissing, StorageUnavailable, StoreBusy, StoreClosed
from app.store.postgres.bodies import PgSpool, iter_chunks, open_chunks, read_chunks
from app.store.postgres.captures import Capture, Inserted, insert_captures, pg_text, storable
from app.store.postgres.changes import Placed, record
from app.store.postgres.deliveries import DeliveryQueries
from app.store.postgres.doorbell import (
    DEFAULT_CHANNEL,
    Doorbell,
    EndpointTouched,
    RequestsCommitted,
    Ring,
    new_instance_id,
    ring_changes,
)
from app.store.postgres.fanout import Fanout
from app.store.postgres.leases import LeaseQueries
from app.store.postgres.lookup import EndpointLookup
from app.store.postgres.retention import PrunedEndpoint, prune_all
from app.store.postgres.rows import (
    SUMMARY_COLUMNS,
    encode_headers,
    row_to_endpoint,
    row_to_request,
    search_pattern,
)
from app.store.postgres.schema import MIGRATIONS, NotOurs, SchemaTooNew, migrate, stored_version
from app.store.postgres.writer import Writer
from app.store.retention import RetentionRules

log = logging.getLogger("hookscope.store")

READERS = 4
CONNECT_SECONDS = 10.0
# /healthz waits this long for a write probe queued behind captures before calling the database unhealthy.
HEALTH_PROBE_SECONDS = 5.0
# How often an instance re-reads the endpoints' counters, bounding what a lost ring can delay.
RESYNC_SECONDS = 5.0

T = TypeVar("T")
R = TypeVar("R")
# A write op's result, and the changes it placed in the outbox (emitted after COMMIT, rung before it).
Changes = tuple[T, list[Placed]]


class PostgresStore(DeliveryQueries, LeaseQueries, Store):
    """Every mutating method emits exactly one event per committed change to `events` (RequestsRemoved per
    endpoint for a prune): after COMMIT, in the endpoint's commit order, before the method's awaitable completes,
    and never for a write that rolled back. So does every other instance on the database for this one's changes,
    and this one for theirs (fanout.py)."""

    def __init__(
        self,
        dsn: str,
        *,
        events: EventSink,
        durability: Durability = "full",
        queue_size: int = 10_000,
        retention_count: int = 10_000,
        retention_age: float = 0.0,
        resync_interval: float = RESYNC_SECONDS,
        channel: str = DEFAULT_CHANNEL,
        instance: str | None = None,
    ) -> None:
        self.dsn = dsn
        self.events = events
        self.durability = durability
        self.retention_count = retention_count
        self.retention_age = retention_age
        # The process's id (app/services.py) when given, so its rings and its leases name the same instance.
        self.instance = instance or new_instance_id()
        self.writer = Writer(self._connect_writer, queue_size=queue_size, ring=self._ring)
        self._pool: asyncpg.Pool | None = None
        self._endpoints: dict[str, Endpoint] = {}
        self._claimed = False
        self._channel = channel
        self.fanout = Fanout(lambda: self.pool, self._publish)
        self.lookup = EndpointLookup(self._read_endpoint, self.cached_endpoint, self._remember_endpoint)
        self.doorbell = Doorbell(
            dsn, channel, self.fanout.on_ring, self.fanout.resync, instance=self.instance,
            check_interval=resync_interval,
        )

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreClosed("store is not open")
        return self._pool

    @property
    def name(self) -> str:
        """The DSN without its password, for messages."""
        return redact_database(self.dsn)

    # lifecycle ---------------------------------------------------------------------------------------------
    async def _connect_writer(self) -> asyncpg.Connection:
        # synchronous_commit is what durability means here: on, COMMIT returns once the WAL is flushed on the
        # server; off, a server crash may lose the last few hundred ms of acknowledged captures.
        return await asyncpg.connect(
            self.dsn,
            timeout=CONNECT_SECONDS,
            server_settings={
                "synchronous_commit": "on" if self.durability == "full" else "off",
                "application_name": "hookscope-writer",
            },
        )

    def claim(self) -> None:
        """Check that the database answers, is writable and is hookscope's at a schema version this code knows
        (or empty). Raises StorageUnavailable naming the database (without its password) and the reason. No
        lock is taken: several instances may share the database. Idempotent; callable with or without a running
        event loop (the check runs on a loop of its own in a worker thread)."""
        if self._claimed:
            return
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, self._check()).result()
        self._claimed = True

    async def _check(self) -> None:
        try:
            conn = await asyncpg.connect(self.dsn, timeout=CONNECT_SECONDS)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StorageUnavailable(f"database {self.name} is unreachable: {exc}") from exc
        try:
            try:
                version = await stored_version(conn)
            except NotOurs as exc:
                raise StorageUnavailable(f"database {self.name} is not a hookscope database: {exc}") from exc
            if version is not None and version > len(MIGRATIONS):
                raise StorageUnavailable(f"database {self.name}: {SchemaTooNew(version)}")
            read_only = await conn.fetchval(
                "SELECT pg_is_in_recovery() OR current_setting('default_transaction_read_only') = 'on'"
            )
            if read_only:
                raise StorageUnavailable(f"database {self.name} is read-only (a standby, or read-only by default)")
        except asyncpg.PostgresError as exc:
            raise StorageUnavailable(f"database {self.name} cannot be used: {exc}") from exc
        finally:
            await conn.close()

    async def open(self) -> None:
        """Check, migrate (one instance at a time, schema.py), then start the read pool and the writer and load
        the endpoints. Raises StorageUnavailable."""
        await self._check()
        self._claimed = True
        try:
            await self._migrate()
            self._pool = await asyncpg.create_pool(
                self.dsn,
                min_size=1,
                max_size=READERS,
                timeout=CONNECT_SECONDS,
                # The pool reads, and commits body chunks, which the request's own commit makes durable
                # (bodies.py): no flush of its own is needed.
                server_settings={"synchronous_commit": "off", "application_name": "hookscope"},
            )
            # Listening before the endpoints are loaded: whatever commits after the load is rung to us.
            await self.doorbell.start()
            await self.writer.start()
            rows = await self.pool.fetch(
                "SELECT id, name, created_at, response, options, next_seq, next_change FROM endpoints"
            )
            for row in rows:
                ep = row_to_endpoint(row)
                self._endpoints[ep.id] = ep
                self.fanout.track(ep.id, (int(row["next_seq"]), int(row["next_change"])))
            self.fanout.ready()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            await self.close()
            raise StorageUnavailable(f"database {self.name} cannot be opened: {exc}") from exc
        except BaseException:
            await self.close()
            raise

    async def _migrate(self) -> None:
        conn = await asyncpg.connect(self.dsn, timeout=CONNECT_SECONDS)
        try:
            await migrate(conn)
        except (SchemaTooNew, NotOurs) as exc:
            raise StorageUnavailable(f"database {self.name}: {exc}") from exc
        finally:
            await conn.close()

    async def close(self) -> None:
        try:
            await self.doorbell.stop()
            await self.writer.stop()
        finally:
            await self.fanout.stop()
            pool, self._pool = self._pool, None
            if pool is not None:
                await pool.close()

    async def health(self) -> str | None:
        """None when writes work, else why not. While a fault is recorded, try a real write first, so the
        answer turns healthy again as soon as the database does, even when no capture arrives to prove it."""
        if not self.writer.running:
            return "database writer is not running"
        if not self.doorbell.connected:
            return "not listening to the other instances (reconnecting)"
        if self.writer.fault is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(HEALTH_PROBE_SECONDS):
                    await self.writer.probe()
        return self.writer.fault

    # events ------------------------------------------------------------------------------------------------
    async def _ring(self, conn: asyncpg.Connection, rings: list[Ring]) -> None:
        await ring_changes(conn, self.instance, rings, channel=self._channel)

    def _publish(self, event: Event) -> None:
        """The one way out of this store, for its own commits and the other instances' (fanout.py)."""
        if isinstance(event, EndpointChanged):
            self._endpoints[event.endpoint.id] = event.endpoint
        elif isinstance(event, EndpointDeleted):
            self._endpoints.pop(event.endpoint_id, None)
            self.lookup.deleted(event.endpoint_id)
        elif isinstance(event, RequestAdded) and event.request.body is not None:
            if len(event.request.body) > INLINE_BODY_MAX:
                # Queued events must not pin large bodies; consumers load them.
                event = RequestAdded(replace(event.request, body=None))
        self.events.emit(event)

    def _local(self, placed: list[Placed]) -> None:
        for p in placed:
            self.fanout.local(p)

    async def _settle(self, placed: list[Placed]) -> None:
        """Returns once this instance emitted them (at once, unless another instance's commits came first)."""
        for p in placed:
            waiter = self.fanout.settled(p.endpoint_id, p.after)
            if waiter is not None:
                await waiter

    def _chain(self, fut: asyncio.Future[T], placed: Callable[[T], Placed | None], result: Callable[[T], R]
               ) -> asyncio.Future[R]:
        """A future of `result(value)` completed once `fut` did and its change was emitted here (no task)."""
        out: asyncio.Future[R] = asyncio.get_running_loop().create_future()

        def done(f: asyncio.Future[T]) -> None:
            if out.done():
                return
            if f.cancelled():
                out.cancel()
                return
            exc = f.exception()
            if exc is not None:
                out.set_exception(exc)
                return
            value = f.result()
            p = placed(value)
            waiter = self.fanout.settled(p.endpoint_id, p.after) if p is not None else None
            if waiter is None:
                out.set_result(result(value))
            else:
                waiter.add_done_callback(lambda _w: _complete(out, result(value)))

        fut.add_done_callback(done)
        return out

    async def _write(self, op: Callable[[asyncpg.Connection], Awaitable[Changes[T]]]) -> T:
        """Run op through the writer; its placed changes are rung at COMMIT and emitted after it."""
        value, placed = await self.writer.submit(op, after_commit=lambda r: self._local(r[1]), rings=_touched)
        await self._settle(placed)
        return value

    # endpoints ---------------------------------------------------------------------------------------------
    def cached_endpoint(self, endpoint_id: str) -> Endpoint | None:
        """From memory: the endpoints as committed by any instance, as far as this one has heard (its own writes
        at once, the others' with their doorbell rings, or the periodic resync when a ring was lost)."""
        return self._endpoints.get(endpoint_id)

    async def find_endpoint(self, endpoint_id: str) -> Endpoint | None:
        """On a cache miss, at most one bounded read of the row (lookup.py), for an endpoint another instance
        created that this one has not heard of yet. Raises StoreClosed when the store is not open."""
        return await self.lookup.find(endpoint_id)

    async def _read_endpoint(self, endpoint_id: str) -> Endpoint | None:
        row = await self.pool.fetchrow(
            "SELECT id, name, created_at, response, options FROM endpoints WHERE id = $1", endpoint_id
        )
        return row_to_endpoint(row) if row is not None else None

    def _remember_endpoint(self, ep: Endpoint) -> None:
        self._endpoints[ep.id] = ep
        # From here on the fan-out keeps this entry, as after the creation's ring (which may have been lost): it
        # catches the endpoint up, and tells of its deletion even when that commits before the catch-up reads.
        self.fanout.on_ring(EndpointTouched(ep.id))

    async def create_endpoint(self, name: str, response: ResponseSpec, settings: EndpointSettings) -> Endpoint:
        ep = Endpoint(new_endpoint_id(), pg_text(name), time.time(), response, settings)

        async def op(conn: asyncpg.Connection) -> Changes[Endpoint]:
            await conn.execute(
                "INSERT INTO endpoints (id, name, created_at, response, options) VALUES ($1, $2, $3, $4, $5)",
                ep.id, ep.name, ep.created_at, encode_response(response), settings_to_json(settings),
            )
            return ep, _placed(await record(conn, EndpointChanged(ep)))

        return await self._write(op)

    async def update_endpoint(
        self,
        endpoint_id: str,
        *,
        name: str | None = None,
        response: ResponseSpec | None = None,
        settings: EndpointSettings | None = None,
    ) -> Endpoint | None:
        async def op(conn: asyncpg.Connection) -> Changes[Endpoint | None]:
            # The fields not given come from the committed row (locked), not from this instance's cache, so a
            # change another instance made to another field is kept.
            row = await conn.fetchrow(
                "SELECT id, name, created_at, response, options FROM endpoints WHERE id = $1 FOR UPDATE", endpoint_id
            )
            if row is None:
                return None, []  # there was no such endpoint: nothing changed
            current = row_to_endpoint(row)
            ep = Endpoint(
                current.id,
                current.name if name is None else pg_text(name),
                current.created_at,
                current.response if response is None else response,
                current.settings if settings is None else settings,
            )
            await conn.execute(
                "UPDATE endpoints SET name = $1, response = $2, options = $3 WHERE id = $4",
                ep.name, encode_response(ep.response), settings_to_json(ep.settings), ep.id,
            )
            return ep, _placed(await record(conn, EndpointChanged(ep)))

        return await self._write(op)

    async def delete_endpoint(self, endpoint_id: str) -> bool:
        async def op(conn: asyncpg.Connection) -> Changes[bool]:
            # Told before the row goes (the outbox keeps it); the row lock it takes also orders it after captures.
            placed = await record(conn, EndpointDeleted(endpoint_id))
            if placed is None:
                return False, []
            # Cascades: requests (and through them spools, chunks, deliveries) and cursors.
            await conn.execute("DELETE FROM endpoints WHERE id = $1", endpoint_id)
            return True, [placed]

        return await self._write(op)

    async def list_endpoints(self) -> list[tuple[Endpoint, EndpointStats]]:
        rows = await self.pool.fetch(
            "SELECT e.id, e.name, e.created_at, e.response, e.options, coalesce(s.n, 0) AS n, l.received_at"
            " FROM endpoints e"
            " LEFT JOIN (SELECT endpoint_id, count(*) AS n FROM requests GROUP BY endpoint_id) s"
            " ON s.endpoint_id = e.id"
            " LEFT JOIN LATERAL (SELECT received_at FROM requests r WHERE r.endpoint_id = e.id"
            " ORDER BY r.seq DESC LIMIT 1) l ON true"
            " ORDER BY e.created_at DESC, e.id"
        )
        return [(row_to_endpoint(r), EndpointStats(int(r["n"]), r["received_at"])) for r in rows]

    async def endpoint_stats(self, endpoint_id: str) -> EndpointStats:
        row = await self.pool.fetchrow(
            "SELECT (SELECT count(*) FROM requests WHERE endpoint_id = $1) AS n,"
            " (SELECT received_at FROM requests WHERE endpoint_id = $1 ORDER BY seq DESC LIMIT 1) AS last",
            endpoint_id,
        )
        assert row is not None
        return EndpointStats(int(row["n"]), row["last"])

    # requests ----------------------------------------------------------------------------------------------
    def add_request(self, new: NewRequest) -> Awaitable[CapturedRequest]:
        """Raises StoreBusy / StoreClosed at once, ValueError at once for a spool of another store or a header
        the header block cannot hold (rows.encode_headers); NotFound from the awaitable."""
        spool_id: int | None = None
        if new.spool is not None:
            if not isinstance(new.spool, PgSpool) or new.spool.owner is not self or not new.spool.finished:
                raise ValueError("not a finished body spool of this store")
            spool_id = new.spool.spool_id
        new = storable(new)
        capture = Capture(new, encode_headers(new.headers), spool_id)
        size = len(new.body or b"") + len(capture.headers)
        fut = self.writer.submit_item(
            insert_captures, capture, size=size, after_commit=self._added, rings=_request_rings
        )
        return self._chain(fut, _placed_request, _request_of)

    def _added(self, inserted: Inserted) -> None:
        self.fanout.local(_placed_request(inserted))

    async def get_request(self, request_id: int) -> CapturedRequest | None:
        row = await self.pool.fetchrow(f"SELECT {SUMMARY_COLUMNS}, body FROM requests WHERE id = $1", request_id)
        if row is None:
            return None
        return row_to_request(row, _bytes(row["body"]))

    async def _stored_body(self, request: CapturedRequest) -> tuple[bytes | None, int | None, int]:
        """(inline bytes, None, size) or (None, spool id, size) of a committed request; BodyMissing when gone."""
        row = await self.pool.fetchrow("SELECT body, body_spool, body_size FROM requests WHERE id = $1", request.id)
        if row is None:
            raise BodyMissing(request.id, "the request no longer exists")
        if row["body"] is not None:
            return bytes(row["body"]), None, int(row["body_size"])
        if row["body_spool"] is None:
            return b"", None, 0
        return None, int(row["body_spool"]), int(row["body_size"])

    async def load_body(self, request: CapturedRequest) -> bytes:
        if request.body is not None:
            return request.body
        inline, spool_id, size = await self._stored_body(request)
        if inline is not None:
            return inline
        assert spool_id is not None
        return await read_chunks(self.pool, request.id, spool_id, size)

    async def iter_body(self, request: CapturedRequest) -> AsyncIterator[bytes]:
        """Checks here, before a handler starts a response, that every chunk is there with the right size."""
        if request.body is not None:
            return _one_chunk(request.body)
        inline, spool_id, size = await self._stored_body(request)
        if inline is not None:
            return _one_chunk(inline)
        assert spool_id is not None
        count = await open_chunks(self.pool, request.id, spool_id, size)
        return iter_chunks(self.pool, request.id, spool_id, count)

    async def list_requests(self, endpoint_id: str, query: RequestQuery) -> list[CapturedRequest]:
        where = ["endpoint_id = $1"]
        args: list[Any] = [endpoint_id]

        def arg(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        if query.before is not None:
            where.append(f"seq < {arg(query.before)}")
        if query.after is not None:
            where.append(f"seq > {arg(query.after)}")
        if query.methods:
            where.append(f"method = ANY({arg(list(query.methods))}::text[])")
        if query.provider:
            where.append(f"provider = {arg(query.provider)}")
        if query.verification:
            where.append(f"verify_status = {arg(query.verification)}")
        if query.duplicate is not None:
            where.append("duplicate_of IS NOT NULL" if query.duplicate else "duplicate_of IS NULL")
        if query.text:
            # Raw bytes, ASCII case ignored, in path, query, header block and inline body (rows.search_pattern).
            p = arg(search_pattern(query.text))
            where.append(
                f"(encode(path, 'hex') ~ {p} OR encode(query, 'hex') ~ {p} OR encode(headers, 'hex') ~ {p}"
                f" OR encode(body, 'hex') ~ {p})"
            )
        order = "ASC" if query.ascending else "DESC"
        columns = SUMMARY_COLUMNS + (", body" if query.with_body else "")
        limit = arg(query.limit)
        sql = f"SELECT {columns} FROM requests WHERE {' AND '.join(where)} ORDER BY seq {order} LIMIT {limit}"
        rows = await self.pool.fetch(sql, *args)
        return [row_to_request(r, _bytes(r["body"]) if query.with_body else None) for r in rows]

    async def requests_after(self, endpoint_id: str, after_seq: int, limit: int) -> list[CapturedRequest]:
        return await self.list_requests(endpoint_id, RequestQuery(after=after_seq, limit=limit, with_body=True))

    async def delete_request(self, request_id: int) -> bool:
        async def op(conn: asyncpg.Connection) -> Changes[bool]:
            # Its chunks and deliveries go by cascade.
            value = await conn.fetchval("DELETE FROM requests WHERE id = $1 RETURNING endpoint_id", request_id)
            if value is None:
                return False, []
            return True, _placed(await record(conn, RequestsRemoved(str(value), (request_id,), "deleted")))

        return await self._write(op)

    async def clear_requests(self, endpoint_id: str) -> int:
        # Even when nothing was there: "cleared" means every request up to this commit is gone.
        cleared = RequestsRemoved(endpoint_id, None, "cleared")

        async def op(conn: asyncpg.Connection) -> Changes[int]:
            count = int(await conn.fetchval(
                "WITH d AS (DELETE FROM requests WHERE endpoint_id = $1 RETURNING 1) SELECT count(*) FROM d",
                endpoint_id,
            ))
            return count, _placed(await record(conn, cleared))

        def after(result: Changes[int]) -> None:
            if result[1]:
                self._local(result[1])
            else:  # no such endpoint (no outbox to place it in): told here only, as always
                self._publish(cleared)

        count, placed = await self.writer.submit(op, after_commit=after, rings=_touched)
        await self._settle(placed)
        return count

    async def prune(self, now: float, ceiling: int | None = None) -> PruneResult:
        """One instance at a time (retention.py): another instance's concurrent prune makes this one a no-op."""
        rules = RetentionRules.at(now, self.retention_count, self.retention_age, ceiling)

        async def op(conn: asyncpg.Connection) -> Changes[list[PrunedEndpoint]]:
            pruned = await prune_all(conn, rules, now)
            placed: list[Placed] = []
            for p in pruned:  # endpoint-id order, as prune_all locked them
                placed += _placed(await record(conn, RequestsRemoved(p.endpoint_id, p.ids, "pruned", p.skipped)))
            return pruned, placed

        pruned = await self._write(op)
        return PruneResult(sum(len(p.ids) for p in pruned), tuple(s for p in pruned for s in p.skipped))

    async def update_verdicts(self, verdicts: list[tuple[int, VerdictStatus, str]]) -> None:
        # One row per id, the last verdict given for it winning (as when applied one by one).
        latest = {rid: (status, pg_text(reason)) for rid, status, reason in verdicts}

        async def op(conn: asyncpg.Connection) -> Changes[None]:
            rows = await conn.fetch(
                "UPDATE requests SET verify_status = u.status, verify_reason = u.reason"
                " FROM unnest($1::bigint[], $2::text[], $3::text[]) AS u(id, status, reason)"
                " WHERE requests.id = u.id RETURNING requests.id, requests.endpoint_id",
                list(latest), [s for s, _ in latest.values()], [r for _, r in latest.values()],
            )
            endpoint_of = {int(r["id"]): str(r["endpoint_id"]) for r in rows}
            changed: dict[str, list[Verdict]] = {}
            for rid, (status, reason) in latest.items():
                if rid in endpoint_of:  # deleted or pruned since it was read: nothing to tell
                    changed.setdefault(endpoint_of[rid], []).append(Verdict(rid, status, reason))
            placed: list[Placed] = []
            for endpoint_id in sorted(changed):  # rows locked in one order on every instance
                placed += _placed(await record(conn, VerdictsChanged(endpoint_id, tuple(changed[endpoint_id]))))
            return None, placed

        if latest:
            await self._write(op)

    def new_spool(self) -> BodySpool:
        return PgSpool(self, self.pool, self._forget_spool)

    def _forget_spool(self, spool_id: int) -> None:
        """Delete a discarded spool through the writer, without waiting; when that cannot be queued (busy,
        closing) retention sweeps it later."""

        async def op(conn: asyncpg.Connection) -> None:
            await conn.execute("DELETE FROM spools WHERE id = $1 AND request_id IS NULL", spool_id)

        try:
            fut = self.writer.submit_nowait(op)
        except (StoreBusy, StoreClosed):
            return
        # Nobody awaits it: consume the outcome so a failure is logged once, not reported as never retrieved.
        fut.add_done_callback(_log_failure)


def _log_failure(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled() and fut.exception() is not None:
        log.warning("could not delete a discarded body spool (retention will): %s", fut.exception())


def _complete(fut: asyncio.Future[R], value: R) -> None:
    if not fut.done():  # the caller may have stopped waiting
        fut.set_result(value)


def _placed(p: Placed | None) -> list[Placed]:
    return [p] if p is not None else []


def _touched(result: Changes[Any]) -> list[Ring]:
    return [EndpointTouched(p.endpoint_id) for p in result[1]]


def _placed_request(inserted: Inserted) -> Placed:
    seq = inserted.request.seq
    return Placed(RequestAdded(inserted.request), (seq - 1, inserted.change), (seq, inserted.change))


def _request_rings(inserted: Inserted) -> list[Ring]:
    return [RequestsCommitted(inserted.request.endpoint_id, inserted.request.seq)]


def _request_of(inserted: Inserted) -> CapturedRequest:
    return inserted.request


def _bytes(value: Any) -> bytes | None:
    return bytes(value) if value is not None else None


async def _one_chunk(body: bytes) -> AsyncIterator[bytes]:
    yield body
