"""The SQLite queries behind deliveries, cursors and forwarding catch-up (a part of SQLiteStore)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Any

from app.delivery.records import MAX_HISTORY, Delivery, DeliveryUpdate
from app.events.types import CursorKind, DeliveryRecorded, EventSink
from app.store.cursors import CursorAdvance
from app.store.errors import NotFound, StoreBusy
from app.store.sqlite.writer import Writer

# The cursors table's `acked_id` column holds the acked seq, which on SQLite is a request id (store.py).
DELIVERY_COLUMNS = (
    "id, request_id, endpoint_id, kind, target, relay, state, attempts, created_at, updated_at, next_attempt_at,"
    " status, latency_ms, error, response_headers, response_body, response_size, history, sent"
)



def _append_history(column: str) -> str:
    """SQL for `column` with one more entry (the next `?`, a JSON object), keeping the newest MAX_HISTORY.

    The newest, not the first plus the newest: the window stays contiguous, so it reads as "the last N attempts",
    while created_at still says when delivering began and `attempts` counts them all. Each append drops the
    oldest entry once the history is full, and one more while it is over (a history an older version let grow
    converges). '$[#]' (one past the end) selects nothing, so json_remove ignores it; measured: json_each over
    the whole history instead costs ~10x a plain append at 200 entries, this ~1.4x.
    """
    drop_full = f"CASE WHEN json_array_length({column}) >= {MAX_HISTORY} THEN '$[0]' ELSE '$[#]' END"
    drop_over = f"CASE WHEN json_array_length({column}) > {MAX_HISTORY} THEN '$[0]' ELSE '$[#]' END"
    return f"json_remove(json_insert({column}, '$[#]', json(?)), {drop_full}, {drop_over})"


_UPSERT = (
    "INSERT INTO deliveries (request_id, endpoint_id, kind, target, relay, state, attempts, created_at, updated_at,"
    " next_attempt_at, status, latency_ms, error, response_headers, response_body, response_size, history, sent)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, json_array(json(?)), ?)"
    " ON CONFLICT (request_id, kind, target, relay) WHERE kind != 'replay' DO UPDATE SET"
    " state = excluded.state, attempts = deliveries.attempts + excluded.attempts, updated_at = excluded.updated_at,"
    " next_attempt_at = excluded.next_attempt_at, status = excluded.status, latency_ms = excluded.latency_ms,"
    " error = excluded.error, response_headers = excluded.response_headers,"
    " response_body = excluded.response_body, response_size = excluded.response_size,"
    f" history = {_append_history('deliveries.history')}"
    f" RETURNING {DELIVERY_COLUMNS}"
)
_UPDATE_BY_ID = (
    "UPDATE deliveries SET state = ?, attempts = attempts + ?, updated_at = ?, next_attempt_at = ?, status = ?,"
    " latency_ms = ?, error = ?, response_headers = ?, response_body = ?, response_size = ?,"
    f" history = {_append_history('history')} WHERE id = ? RETURNING {DELIVERY_COLUMNS}"
)
_ADVANCE = (
    "INSERT INTO cursors (kind, endpoint_id, name, acked_id, updated_at) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (kind, endpoint_id, name) DO UPDATE SET acked_id = MAX(acked_id, excluded.acked_id),"
    " updated_at = excluded.updated_at"
)
# The same, but a no-op when the endpoint is gone (deleted while a delivery was in flight): a late outcome
# must not fail its write on the foreign key.
_ADVANCE_IF_ENDPOINT = (
    "INSERT INTO cursors (kind, endpoint_id, name, acked_id, updated_at)"
    " SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM endpoints WHERE id = ?)"
    " ON CONFLICT (kind, endpoint_id, name) DO UPDATE SET acked_id = MAX(acked_id, excluded.acked_id),"
    " updated_at = excluded.updated_at"
)


def _headers_json(headers: list[tuple[bytes, bytes]]) -> str:
    return json.dumps([[n.decode("latin-1"), v.decode("latin-1")] for n, v in headers], separators=(",", ":"))


def _row_to_delivery(row: Any) -> Delivery:
    return Delivery(
        id=row[0],
        request_id=row[1],
        endpoint_id=row[2],
        kind=row[3],
        target=row[4],
        relay=row[5],
        state=row[6],
        attempts=row[7],
        created_at=row[8],
        updated_at=row[9],
        next_attempt_at=row[10],
        status=row[11],
        latency_ms=row[12],
        error=row[13],
        response_headers=[(n.encode("latin-1"), v.encode("latin-1")) for n, v in json.loads(row[14])],
        response_body=bytes(row[15] or b""),
        response_size=row[16],
        history=json.loads(row[17]),
        sent=json.loads(row[18]) if row[18] else None,
    )


class DeliveryQueries:
    """Mixed into SQLiteStore, which provides writer, _read() and the request row decoder."""

    writer: Writer
    events: EventSink
    _read: Callable[[], Any]

    async def count_requests_after(self, endpoint_id: str, after_seq: int) -> int:
        async with self._read() as db:
            cur = await db.execute(
                "SELECT COUNT(*) FROM requests WHERE endpoint_id = ? AND id > ? AND rejected IS NULL",
                (endpoint_id, after_seq),
            )
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def last_seq(self, endpoint_id: str) -> int:
        """The newest id still there or, when the newest were deleted, the largest one deleted (`removed_seq`,
        kept by a trigger on every delete: schema.py, migration 5)."""
        async with self._read() as db:
            cur = await db.execute(
                "SELECT MAX(removed_seq, COALESCE((SELECT MAX(id) FROM requests WHERE endpoint_id = ?), 0))"
                " FROM endpoints WHERE id = ?",
                (endpoint_id, endpoint_id),
            )
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    def record_delivery(self, update: DeliveryUpdate, cursor: CursorAdvance | None = None) -> Awaitable[int]:
        o = update.outcome
        entry = json.dumps(o.history_entry() | {"attempts": update.attempts} if update.attempts != 1
                           else o.history_entry())
        now = time.time()
        headers = _headers_json(o.headers)
        sent = json.dumps(update.sent) if update.sent is not None else None

        # The committed row, as RETURNING gave it, for the DeliveryRecorded event (set by op on the writer thread,
        # read by after() on the loop once the transaction committed).
        recorded: Delivery | None = None

        def write(conn: sqlite3.Connection) -> Delivery | None:
            if update.delivery_id is not None:
                row = conn.execute(
                    _UPDATE_BY_ID,
                    (update.state, update.attempts, now, update.next_attempt_at, o.status, o.latency_ms, o.error,
                     headers, o.body, o.body_size, entry, update.delivery_id),
                ).fetchone()
            else:
                row = conn.execute(
                    _UPSERT,
                    (update.request_id, update.endpoint_id, update.kind, update.target, update.relay, update.state,
                     update.attempts, now, now, update.next_attempt_at, o.status, o.latency_ms, o.error, headers,
                     o.body, o.body_size, entry, sent, entry),
                ).fetchone()
            return _row_to_delivery(row) if row else None

        def op(conn: sqlite3.Connection) -> int:
            nonlocal recorded
            # Retention past its ceiling (or a user's delete) may have removed the request while it was being
            # delivered: the outcome has no row to hang on (the foreign key would fail the whole write), but the
            # cursor must still move past it.
            exists = conn.execute("SELECT 1 FROM requests WHERE id = ?", (update.request_id,)).fetchone()
            recorded = write(conn) if exists else None
            if cursor is not None:
                kind, name, acked = cursor
                conn.execute(_ADVANCE_IF_ENDPOINT, (kind, update.endpoint_id, name, acked, now, update.endpoint_id))
            return recorded.id if recorded is not None else 0

        def after(delivery_id: int) -> None:
            if recorded is not None:  # no row written (the request is gone): only a cursor moved
                self.events.emit(DeliveryRecorded(recorded))

        try:
            return self.writer.submit_nowait(op, after_commit=after)
        except StoreBusy:
            # Deliveries are never shed: wait for room (ingest is the one that answers 503).
            return asyncio.ensure_future(self.writer.submit(op, after_commit=after))

    async def get_delivery(self, delivery_id: int) -> Delivery | None:
        async with self._read() as db:
            cur = await db.execute(f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = ?", (delivery_id,))
            row = await cur.fetchone()
        return _row_to_delivery(row) if row else None

    async def list_deliveries(self, request_id: int) -> list[Delivery]:
        async with self._read() as db:
            cur = await db.execute(
                f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE request_id = ? ORDER BY id", (request_id,)
            )
            rows = await cur.fetchall()
        return [_row_to_delivery(r) for r in rows]

    async def get_cursor(self, kind: CursorKind, endpoint_id: str, name: str) -> int | None:
        async with self._read() as db:
            cur = await db.execute(
                "SELECT acked_id FROM cursors WHERE kind = ? AND endpoint_id = ? AND name = ?",
                (kind, endpoint_id, name),
            )
            row = await cur.fetchone()
        return int(row[0]) if row else None

    async def set_cursor(
        self, kind: CursorKind, endpoint_id: str, name: str, acked_seq: int, force: bool = False
    ) -> int:
        now = time.time()

        def op(conn: sqlite3.Connection) -> int:
            # Checked, not left to the foreign key: callers see the contract's NotFound, not an IntegrityError.
            if conn.execute("SELECT 1 FROM endpoints WHERE id = ?", (endpoint_id,)).fetchone() is None:
                raise NotFound(f"no endpoint with id {endpoint_id!r}")
            if force:
                conn.execute(
                    "INSERT INTO cursors (kind, endpoint_id, name, acked_id, updated_at) VALUES (?, ?, ?, ?, ?)"
                    " ON CONFLICT (kind, endpoint_id, name) DO UPDATE SET acked_id = excluded.acked_id,"
                    " updated_at = excluded.updated_at",
                    (kind, endpoint_id, name, acked_seq, now),
                )
            else:
                conn.execute(_ADVANCE, (kind, endpoint_id, name, acked_seq, now))
            row = conn.execute(
                "SELECT acked_id FROM cursors WHERE kind = ? AND endpoint_id = ? AND name = ?",
                (kind, endpoint_id, name),
            ).fetchone()
            return int(row[0])

        return await self.writer.submit(op)

    async def list_cursors(self, endpoint_id: str, kind: CursorKind) -> list[tuple[str, int, float]]:
        async with self._read() as db:
            cur = await db.execute(
                "SELECT name, acked_id, updated_at FROM cursors WHERE endpoint_id = ? AND kind = ? ORDER BY name",
                (endpoint_id, kind),
            )
            rows = await cur.fetchall()
        return [(r[0], int(r[1]), float(r[2])) for r in rows]

    async def skipped_counts(self, endpoint_id: str, kind: CursorKind) -> dict[str, int]:
        async with self._read() as db:
            cur = await db.execute(
                "SELECT name, skipped FROM cursors WHERE endpoint_id = ? AND kind = ?", (endpoint_id, kind)
            )
            rows = await cur.fetchall()
        return {r[0]: int(r[1]) for r in rows}

    async def delete_cursor(self, kind: CursorKind, endpoint_id: str, name: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "DELETE FROM cursors WHERE kind = ? AND endpoint_id = ? AND name = ?", (kind, endpoint_id, name)
            )
            return cur.rowcount > 0

        return await self.writer.submit(op)
