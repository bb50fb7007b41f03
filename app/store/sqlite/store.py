"""The embedded SQLite backend: one write connection behind the Writer, a small pool of read connections.

A request's seq (its position in its endpoint, the value every cursor holds) is its id: the single writer commits
in id order, so within one endpoint the global AUTOINCREMENT id is strictly increasing in commit order and never
reused, which is all the contract asks of a seq (gaps are allowed). So the schema has no seq column, and
"seq > N" queries are "id > N" on the (endpoint_id, id) index.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiosqlite

from app.endpoint_settings import EndpointSettings, settings_from_json, settings_to_json
from app.events.types import (
    INLINE_BODY_MAX,
    EndpointChanged,
    EndpointDeleted,
    EventSink,
    RequestAdded,
    RequestsRemoved,
    Verdict,
    VerdictsChanged,
)
from app.models import CapturedRequest, Endpoint, EndpointStats, NewRequest, ResponseSpec, new_endpoint_id
from app.providers.types import VerdictStatus
from app.settings import Durability
from app.store.base import (
    BodySpool,
    LeaseKind,
    PruneResult,
    RequestQuery,
    Store,
)
from app.store.codec import decode_response, encode_response
from app.store.errors import BodyMissing, StorageUnavailable
from app.store.retention import RetentionRules
from app.store.sqlite.bodies import BodyFiles, iter_file
from app.store.sqlite.captures import Capture, CaptureInsert, decode_headers
from app.store.sqlite.deliveries import DeliveryQueries
from app.store.sqlite.leases import LocalLeases
from app.store.sqlite.lock import DatabaseLock
from app.store.sqlite.retention import PrunedEndpoint, prune_all
from app.store.sqlite.schema import migrate
from app.store.sqlite.writer import Writer

log = logging.getLogger("hookscope.store")

READERS = 3
# /healthz waits this long for a write probe queued behind captures before calling the database unhealthy.
HEALTH_PROBE_SECONDS = 5.0

SUMMARY_COLUMNS = (
    "id, endpoint_id, received_at, method, path, query, headers, content_type, body_size, client, "
    "http_version, rejected, provider, event_type, event_id, verify_status, verify_reason, duplicate_of"
)
# The body column follows the summary ones; derived, so a migration that adds a summary column cannot stale it.
BODY_INDEX = SUMMARY_COLUMNS.count(",") + 1


def _like(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _row_to_request(row: Any, body: bytes | None = None) -> CapturedRequest:
    return CapturedRequest(
        id=row[0],
        seq=row[0],  # seq is the id on SQLite (module docstring)
        endpoint_id=row[1],
        received_at=row[2],
        method=row[3],
        path=row[4],
        query=row[5],
        headers=decode_headers(row[6]),
        content_type=row[7],
        body_size=row[8],
        client=row[9],
        http_version=row[10],
        rejected=row[11],
        provider=row[12],
        event_type=row[13],
        event_id=row[14],
        verify_status=row[15],
        verify_reason=row[16],
        duplicate_of=row[17],
        body=body,
    )


class SQLiteStore(DeliveryQueries, Store):
    """Every mutating method emits exactly one event per committed change to `events` (RequestsRemoved per
    endpoint for a prune), from the writer's after-commit step: after COMMIT, in commit order, before the
    method's awaitable completes, and never for a write that rolled back."""

    def __init__(
        self,
        path: Path,
        *,
        events: EventSink,
        durability: Durability = "full",
        queue_size: int = 10_000,
        retention_count: int = 10_000,
        retention_age: float = 0.0,
    ) -> None:
        self.path = path
        self.events = events
        self.durability = durability
        self.retention_count = retention_count
        self.retention_age = retention_age
        self.bodies = BodyFiles(Path(str(path) + ".bodies"), durable=durability == "full")
        self.lock = DatabaseLock(path)
        self.writer = Writer(self._connect_writer, queue_size=queue_size)
        # The capture insert keeps the id counter of the writer's connection (captures.py).
        self._insert = CaptureInsert()
        self._readers: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        self._reader_conns: list[aiosqlite.Connection] = []
        self._endpoints: dict[str, Endpoint] = {}
        self._leases = LocalLeases()

    # lifecycle ---------------------------------------------------------------------------------------------
    def _connect_writer(self) -> sqlite3.Connection:
        # A statement cache big enough for every capture insert size (captures.py) besides the other writes.
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, cached_statements=512)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={'FULL' if self.durability == 'full' else 'NORMAL'}")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
        migrate(conn)
        return conn

    def claim(self) -> None:
        """Take the database lock, then check that the database and the bodies directory take writes.

        Raises StorageUnavailable naming the file. Idempotent: the CLI claims before uvicorn starts (so it can
        refuse with a message and exit 1), and open() claims again for servers created without the CLI. The
        lock comes before anything reads the database or sweeps the bodies directory.
        """
        if self.lock.held:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageUnavailable(f"database {self.path}: cannot create its directory: {exc.strerror}") from exc
        self.lock.acquire()
        try:
            self._check_database()
            self._check_bodies()
        except BaseException:
            self.lock.release()
            raise

    def _check_database(self) -> None:
        # A real write, rolled back: SQLite opens a read-only file without complaint and BEGIN IMMEDIATE
        # succeeds on it; only a write statement says "attempt to write a readonly database".
        try:
            conn = sqlite3.connect(self.path, isolation_level=None)
            try:
                conn.execute("PRAGMA busy_timeout=5000")
                conn.execute("BEGIN IMMEDIATE")
                try:
                    (version,) = conn.execute("PRAGMA user_version").fetchone()
                    conn.execute(f"PRAGMA user_version = {int(version)}")
                finally:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise StorageUnavailable(f"database {self.path} is not writable: {exc}") from exc

    def _check_bodies(self) -> None:
        try:
            self.bodies.ensure()
            self.bodies.probe()
        except OSError as exc:
            raise StorageUnavailable(
                f"bodies directory {self.bodies.directory} is not writable: {exc.strerror or exc}"
            ) from exc

    async def health(self) -> str | None:
        """None when writes work, else why not. While a fault is recorded, try a real write first, so the
        answer turns healthy again as soon as the disk does, even when no capture arrives to prove it."""
        if not self.writer.running:
            return "database writer is not running"
        if self.writer.fault is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(HEALTH_PROBE_SECONDS):
                    await self.writer.probe()
        if self.bodies.fault is not None:
            with contextlib.suppress(OSError):
                await asyncio.to_thread(self.bodies.probe)
        return "; ".join(f for f in (self.writer.fault, self.bodies.fault) if f) or None

    async def open(self) -> None:
        await asyncio.to_thread(self.claim)
        try:
            await self._open_connections()
        except BaseException:
            await self.close()
            raise

    async def _open_connections(self) -> None:
        await self.writer.start()
        for _ in range(READERS):
            conn = await aiosqlite.connect(f"file:{self.path}?mode=ro", uri=True)
            await conn.execute("PRAGMA busy_timeout=5000")
            await conn.execute("PRAGMA query_only=ON")
            self._reader_conns.append(conn)
            self._readers.put_nowait(conn)
        async with self._read() as db:
            cur = await db.execute("SELECT id, name, created_at, response, options FROM endpoints")
            for row in await cur.fetchall():
                # Decoded once here (lone surrogates from older versions repaired), never per request.
                ep = Endpoint(row[0], row[1], row[2], decode_response(row[3]), settings_from_json(row[4]))
                self._endpoints[ep.id] = ep
            cur = await db.execute("SELECT body_file FROM requests WHERE body_file IS NOT NULL")
            referenced = {r[0] for r in await cur.fetchall()}
        removed = await asyncio.to_thread(self.bodies.sweep, referenced)
        if removed:
            log.info("removed %d body files left by an interrupted upload", removed)

    async def close(self) -> None:
        try:
            await self.writer.stop()
            for conn in self._reader_conns:
                await conn.close()
            self._reader_conns.clear()
        finally:
            # Last: the next server may sweep the bodies directory the moment it gets the lock.
            self.lock.release()

    def _read(self) -> _Reader:
        return _Reader(self._readers)

    # endpoints ---------------------------------------------------------------------------------------------
    def cached_endpoint(self, endpoint_id: str) -> Endpoint | None:
        return self._endpoints.get(endpoint_id)

    async def find_endpoint(self, endpoint_id: str) -> Endpoint | None:
        """The cache alone: this store is the only writer of its file (the lock), so the cache is complete."""
        return self._endpoints.get(endpoint_id)

    async def create_endpoint(self, name: str, response: ResponseSpec, settings: EndpointSettings) -> Endpoint:
        ep = Endpoint(new_endpoint_id(), name, time.time(), response, settings)

        def op(conn: sqlite3.Connection) -> Endpoint:
            conn.execute(
                "INSERT INTO endpoints (id, name, created_at, response, options) VALUES (?, ?, ?, ?, ?)",
                (ep.id, ep.name, ep.created_at, encode_response(response), settings_to_json(settings)),
            )
            return ep

        await self.writer.submit(op, after_commit=self._cache_endpoint)
        return ep

    def _cache_endpoint(self, ep: Endpoint) -> None:
        self._endpoints[ep.id] = ep
        self.events.emit(EndpointChanged(ep))

    async def update_endpoint(
        self,
        endpoint_id: str,
        *,
        name: str | None = None,
        response: ResponseSpec | None = None,
        settings: EndpointSettings | None = None,
    ) -> Endpoint | None:
        current = self._endpoints.get(endpoint_id)
        if current is None:
            return None
        ep = Endpoint(
            current.id,
            current.name if name is None else name,
            current.created_at,
            current.response if response is None else response,
            current.settings if settings is None else settings,
        )

        def op(conn: sqlite3.Connection) -> Endpoint:
            conn.execute(
                "UPDATE endpoints SET name = ?, response = ?, options = ? WHERE id = ?",
                (ep.name, encode_response(ep.response), settings_to_json(ep.settings), ep.id),
            )
            return ep

        await self.writer.submit(op, after_commit=self._cache_endpoint)
        return ep

    async def delete_endpoint(self, endpoint_id: str) -> bool:
        def op(conn: sqlite3.Connection) -> list[str] | None:
            files = [
                r[0]
                for r in conn.execute(
                    "SELECT body_file FROM requests WHERE endpoint_id = ? AND body_file IS NOT NULL",
                    (endpoint_id,),
                )
            ]
            conn.execute("DELETE FROM requests WHERE endpoint_id = ?", (endpoint_id,))
            cur = conn.execute("DELETE FROM endpoints WHERE id = ?", (endpoint_id,))
            return files if cur.rowcount else None

        def after(files: list[str] | None) -> None:
            if files is None:
                return  # there was no such endpoint: nothing changed
            self._endpoints.pop(endpoint_id, None)
            self._leases.forget_endpoint(endpoint_id)
            self.events.emit(EndpointDeleted(endpoint_id))
            if files:
                self.bodies.delete(files)

        return await self.writer.submit(op, after_commit=after) is not None

    async def list_endpoints(self) -> list[tuple[Endpoint, EndpointStats]]:
        async with self._read() as db:
            cur = await db.execute(
                "SELECT endpoint_id, COUNT(*), MAX(id) FROM requests GROUP BY endpoint_id"
            )
            counts = {r[0]: (r[1], r[2]) for r in await cur.fetchall()}
            last_at: dict[str, float] = {}
            ids = [v[1] for v in counts.values()]
            if ids:
                marks = ",".join("?" * len(ids))
                cur = await db.execute(f"SELECT endpoint_id, received_at FROM requests WHERE id IN ({marks})", ids)
                last_at = {r[0]: r[1] for r in await cur.fetchall()}
        result = []
        for ep in sorted(self._endpoints.values(), key=lambda e: e.created_at, reverse=True):
            count, _ = counts.get(ep.id, (0, None))
            result.append((ep, EndpointStats(count, last_at.get(ep.id))))
        return result

    async def endpoint_stats(self, endpoint_id: str) -> EndpointStats:
        async with self._read() as db:
            cur = await db.execute("SELECT COUNT(*) FROM requests WHERE endpoint_id = ?", (endpoint_id,))
            (count,) = await cur.fetchone() or (0,)
            cur = await db.execute(
                "SELECT received_at FROM requests WHERE endpoint_id = ? ORDER BY id DESC LIMIT 1", (endpoint_id,)
            )
            row = await cur.fetchone()
        return EndpointStats(count, row[0] if row else None)

    # requests ----------------------------------------------------------------------------------------------
    def add_request(self, new: NewRequest) -> Awaitable[CapturedRequest]:
        body_file = self.bodies.name_of(new.spool) if new.spool is not None else None
        return self.writer.submit_item(self._insert, Capture(new, body_file), after_commit=self._added)

    def _added(self, req: CapturedRequest) -> None:
        if req.body is not None and len(req.body) > INLINE_BODY_MAX:
            req = replace(req, body=None)  # queued events must not pin large bodies; consumers load them
        self.events.emit(RequestAdded(req))

    async def get_request(self, request_id: int) -> CapturedRequest | None:
        async with self._read() as db:
            cur = await db.execute(f"SELECT {SUMMARY_COLUMNS}, body FROM requests WHERE id = ?", (request_id,))
            row = await cur.fetchone()
        if row is None:
            return None
        return _row_to_request(row, row[BODY_INDEX])

    async def load_body(self, request: CapturedRequest) -> bytes:
        """Raises BodyMissing when the request is gone or its body file is missing, cut short or unreadable."""
        if request.body is not None:
            return request.body
        inline, body_file = await self._stored_body(request.id)
        if body_file is None:
            return inline
        try:
            data = await self.bodies.read(body_file)
        except (OSError, ValueError) as exc:
            raise BodyMissing(request.id, _unavailable(exc)) from exc
        if len(data) != request.body_size:
            raise BodyMissing(request.id, f"body file holds {len(data)} bytes, expected {request.body_size}")
        return data

    async def iter_body(self, request: CapturedRequest) -> AsyncIterator[bytes]:
        """Opens a body file here, not at the first chunk: a missing or cut file raises BodyMissing before a
        handler starts a response, so a reader never gets a truncated 200."""
        if request.body is not None:
            return _one_chunk(request.body)
        inline, body_file = await self._stored_body(request.id)
        if body_file is None:
            return _one_chunk(inline)
        try:
            # A blocking open and fstat on the loop: microseconds, and it keeps the check before the response.
            f = self.bodies.open_for_read(body_file, request.body_size)
        except (OSError, ValueError) as exc:
            raise BodyMissing(request.id, _unavailable(exc)) from exc
        return iter_file(f)

    async def _stored_body(self, request_id: int) -> tuple[bytes, str | None]:
        """(inline bytes, None) or (b"", body file name) of a committed request; BodyMissing when it is gone."""
        async with self._read() as db:
            cur = await db.execute("SELECT body, body_file FROM requests WHERE id = ?", (request_id,))
            row = await cur.fetchone()
        if row is None:
            raise BodyMissing(request_id, "the request no longer exists")
        return bytes(row[0] or b""), row[1]

    async def list_requests(self, endpoint_id: str, query: RequestQuery) -> list[CapturedRequest]:
        where = ["endpoint_id = ?"]
        params: list[Any] = [endpoint_id]
        if query.before is not None:
            where.append("id < ?")
            params.append(query.before)
        if query.after is not None:
            where.append("id > ?")
            params.append(query.after)
        if query.methods:
            where.append(f"method IN ({','.join('?' * len(query.methods))})")
            params.extend(query.methods)
        if query.provider:
            where.append("provider = ?")
            params.append(query.provider)
        if query.verification:
            where.append("verify_status = ?")
            params.append(query.verification)
        if query.duplicate is not None:
            where.append("duplicate_of IS NOT NULL" if query.duplicate else "duplicate_of IS NULL")
        if query.text:
            raw = query.text.encode("utf-8")
            as_latin1 = raw.decode("latin-1")
            in_json = json.dumps(as_latin1, ensure_ascii=False)[1:-1]
            where.append(
                "(path LIKE ? ESCAPE '\\' OR query LIKE ? ESCAPE '\\' OR headers LIKE ? ESCAPE '\\'"
                " OR instr(body, ?) > 0 OR CAST(body AS TEXT) LIKE ? ESCAPE '\\')"
            )
            params.extend([_like(as_latin1), _like(as_latin1), _like(in_json), raw, _like(query.text)])
        order = "ASC" if query.ascending else "DESC"
        columns = SUMMARY_COLUMNS + (", body" if query.with_body else "")
        sql = (
            f"SELECT {columns} FROM requests WHERE {' AND '.join(where)} "
            f"ORDER BY id {order} LIMIT ?"
        )
        params.append(query.limit)
        async with self._read() as db:
            cur = await db.execute(sql, params)
            rows = await cur.fetchall()
        return [_row_to_request(r, r[BODY_INDEX] if query.with_body else None) for r in rows]

    async def requests_after(self, endpoint_id: str, after_seq: int, limit: int) -> list[CapturedRequest]:
        return await self.list_requests(endpoint_id, RequestQuery(after=after_seq, limit=limit, with_body=True))

    async def delete_request(self, request_id: int) -> bool:
        def op(conn: sqlite3.Connection) -> tuple[str, str | None] | None:
            row = conn.execute(
                "DELETE FROM requests WHERE id = ? RETURNING endpoint_id, body_file", (request_id,)
            ).fetchone()
            return (row[0], row[1]) if row else None

        def after(result: tuple[str, str | None] | None) -> None:
            if result is None:
                return
            endpoint_id, body_file = result
            if body_file:
                self.bodies.delete([body_file])
            self.events.emit(RequestsRemoved(endpoint_id, (request_id,), "deleted"))

        return await self.writer.submit(op, after_commit=after) is not None

    async def clear_requests(self, endpoint_id: str) -> int:
        def op(conn: sqlite3.Connection) -> list[str | None]:
            rows = conn.execute(
                "DELETE FROM requests WHERE endpoint_id = ? RETURNING body_file", (endpoint_id,)
            ).fetchall()
            return [r[0] for r in rows]

        def after(names: list[str | None]) -> None:
            self._delete_files(names)
            # Even when nothing was there: "cleared" means every request up to this commit is gone.
            self.events.emit(RequestsRemoved(endpoint_id, None, "cleared"))

        removed = await self.writer.submit(op, after_commit=after)
        return len(removed)

    def _delete_files(self, names: list[str | None]) -> None:
        self.bodies.delete(n for n in names if n)

    async def prune(self, now: float, ceiling: int | None = None) -> PruneResult:
        rules = RetentionRules.at(now, self.retention_count, self.retention_age, ceiling)

        def op(conn: sqlite3.Connection) -> list[PrunedEndpoint]:
            return prune_all(conn, rules)

        def after(pruned: list[PrunedEndpoint]) -> None:
            for p in pruned:
                self.bodies.delete(p.files)
                self.events.emit(RequestsRemoved(p.endpoint_id, p.ids, "pruned", p.skipped))

        pruned = await self.writer.submit(op, after_commit=after)
        return PruneResult(sum(len(p.ids) for p in pruned), tuple(s for p in pruned for s in p.skipped))

    async def update_verdicts(self, verdicts: list[tuple[int, VerdictStatus, str]]) -> None:
        def op(conn: sqlite3.Connection) -> dict[str, list[Verdict]]:
            changed: dict[str, list[Verdict]] = {}
            for rid, status, reason in verdicts:
                row = conn.execute(
                    "UPDATE requests SET verify_status = ?, verify_reason = ? WHERE id = ? RETURNING endpoint_id",
                    (status, reason, rid),
                ).fetchone()
                if row is not None:  # deleted or pruned since it was read: nothing to tell
                    changed.setdefault(row[0], []).append(Verdict(rid, status, reason))
            return changed

        def after(changed: dict[str, list[Verdict]]) -> None:
            for endpoint_id, rows in changed.items():
                self.events.emit(VerdictsChanged(endpoint_id, tuple(rows)))

        await self.writer.submit(op, after_commit=after)

    def new_spool(self) -> BodySpool:
        return self.bodies.new_spool()

    # leases (in memory: one instance per database; leases.py) ---------------------------------------------------
    async def acquire_lease(self, kind: LeaseKind, endpoint_id: str, name: str, owner: str, ttl: float) -> bool:
        return endpoint_id in self._endpoints and self._leases.acquire(kind, endpoint_id, name, owner, ttl)

    async def take_over_lease(self, kind: LeaseKind, endpoint_id: str, name: str, owner: str, ttl: float) -> bool:
        if endpoint_id not in self._endpoints:
            return False
        self._leases.take_over(kind, endpoint_id, name, owner, ttl)
        return True

    async def release_lease(self, kind: LeaseKind, endpoint_id: str, name: str, owner: str) -> bool:
        return self._leases.release(kind, endpoint_id, name, owner)

    async def lease_owner(self, kind: LeaseKind, endpoint_id: str, name: str) -> str | None:
        return self._leases.owner(kind, endpoint_id, name)

    async def lease_owners(self, endpoint_id: str, kind: LeaseKind) -> dict[str, str]:
        return self._leases.owners(endpoint_id, kind)


async def _one_chunk(body: bytes) -> AsyncIterator[bytes]:
    yield body


def _unavailable(exc: Exception) -> str:
    if isinstance(exc, FileNotFoundError):
        return "its body file is missing"
    if isinstance(exc, OSError):
        return f"its body file is unreadable: {exc.strerror or exc}"
    return "its body file name is invalid"


class _Reader:
    """Borrow one read connection from the pool for the duration of a block."""

    def __init__(self, pool: asyncio.Queue[aiosqlite.Connection]) -> None:
        self._pool = pool
        self._conn: aiosqlite.Connection | None = None

    async def __aenter__(self) -> aiosqlite.Connection:
        self._conn = await self._pool.get()
        return self._conn

    async def __aexit__(self, *exc: object) -> None:
        assert self._conn is not None
        self._pool.put_nowait(self._conn)
        self._conn = None
