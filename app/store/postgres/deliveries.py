"""The PostgreSQL queries behind deliveries, cursors and forwarding catch-up (a part of PostgresStore).

Cursors hold acked SEQS (positions in the endpoint): everything of the endpoint with a larger seq is still owed.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from app.delivery.records import MAX_HISTORY, Delivery, DeliveryUpdate
from app.events.types import CursorKind, DeliveryRecorded, EventSink
from app.store.cursors import CursorAdvance
from app.store.errors import NotFound, StoreBusy
from app.store.postgres.captures import pg_text
from app.store.postgres.changes import Placed, record
from app.store.postgres.doorbell import EndpointTouched, Ring
from app.store.postgres.rows import DELIVERY_COLUMNS, row_to_delivery
from app.store.postgres.writer import Writer

T = TypeVar("T")
R = TypeVar("R")

def _append_history(column: str, entry: str) -> str:
    """SQL for `column` (a json array) with `entry` (a parameter) appended, keeping the newest MAX_HISTORY
    entries: the window stays contiguous ("the last N attempts") while `attempts` counts them all.

    The column is parsed once (row_number over the elements): measured, a filter on json_array_length(column)
    re-parses the whole history for every element, 60x slower at 200 entries.
    """
    return (
        "(SELECT json_agg(x.e ORDER BY x.i) FROM ("
        " SELECT u.e, u.i, row_number() OVER (ORDER BY u.i DESC) AS r FROM ("
        f" SELECT t.e, t.i FROM json_array_elements({column}) WITH ORDINALITY AS t(e, i)"
        f" UNION ALL SELECT {entry}::json, 9223372036854775807) AS u) AS x"
        f" WHERE x.r <= {MAX_HISTORY})"
    )


_UPSERT = (
    "INSERT INTO deliveries (request_id, endpoint_id, kind, target, relay, state, attempts, created_at, updated_at,"
    " next_attempt_at, status, latency_ms, error, response_header_names, response_header_values, response_body,"
    " response_size, history, sent)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10, $11, $12, $13, $14, $15, $16, json_build_array($17::json),"
    " $18::json)"
    " ON CONFLICT (request_id, kind, target, relay) WHERE kind <> 'replay' DO UPDATE SET"
    " state = excluded.state, attempts = deliveries.attempts + excluded.attempts, updated_at = excluded.updated_at,"
    " next_attempt_at = excluded.next_attempt_at, status = excluded.status, latency_ms = excluded.latency_ms,"
    " error = excluded.error, response_header_names = excluded.response_header_names,"
    " response_header_values = excluded.response_header_values, response_body = excluded.response_body,"
    f" response_size = excluded.response_size, history = {_append_history('deliveries.history', '$17')}"
    f" RETURNING {DELIVERY_COLUMNS}"
)
_UPDATE_BY_ID = (
    "UPDATE deliveries SET state = $2, attempts = attempts + $3, updated_at = $4, next_attempt_at = $5,"
    " status = $6, latency_ms = $7, error = $8, response_header_names = $9, response_header_values = $10,"
    f" response_body = $11, response_size = $12, history = {_append_history('history', '$13')}"
    f" WHERE id = $1 RETURNING {DELIVERY_COLUMNS}"
)
_ADVANCE_IF_ENDPOINT = (
    "INSERT INTO cursors (kind, endpoint_id, name, acked_seq, updated_at)"
    " SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM endpoints WHERE id = $2)"
    " ON CONFLICT (kind, endpoint_id, name) DO UPDATE SET acked_seq = greatest(cursors.acked_seq,"
    " excluded.acked_seq), updated_at = excluded.updated_at"
)


class DeliveryQueries:
    """Mixed into PostgresStore, which provides writer, events and the read pool."""

    writer: Writer
    events: EventSink

    def _local(self, placed: list[Placed]) -> None:
        """Emit (or leave to the fan-out's catch-up) committed changes: PostgresStore's."""
        raise NotImplementedError

    def _chain(
        self, fut: asyncio.Future[T], placed: Callable[[T], Placed | None], result: Callable[[T], R]
    ) -> asyncio.Future[R]:
        """PostgresStore's: `result(value)` once `fut` completed and its change was emitted on this instance."""
        raise NotImplementedError

    @property
    def pool(self) -> asyncpg.Pool:
        """The read pool (PostgresStore's; StoreClosed when it is not open)."""
        raise NotImplementedError

    async def count_requests_after(self, endpoint_id: str, after_seq: int) -> int:
        count = await self.pool.fetchval(
            "SELECT count(*) FROM requests WHERE endpoint_id = $1 AND seq > $2 AND rejected IS NULL",
            endpoint_id, after_seq,
        )
        return int(count or 0)

    async def last_seq(self, endpoint_id: str) -> int:
        """endpoints.next_seq: the last seq handed out, which deletes never lower."""
        value = await self.pool.fetchval("SELECT next_seq FROM endpoints WHERE id = $1", endpoint_id)
        return int(value or 0)

    def record_delivery(self, update: DeliveryUpdate, cursor: CursorAdvance | None = None) -> Awaitable[int]:
        o = update.outcome
        entry = json.dumps(o.history_entry() | {"attempts": update.attempts} if update.attempts != 1
                           else o.history_entry())
        now = time.time()
        error = pg_text(o.error) if o.error is not None else None
        # The outcome's columns, in the order both statements number them.
        outcome: list[Any] = [
            update.state, update.attempts, now, update.next_attempt_at, o.status, o.latency_ms, error,
            [n for n, _ in o.headers], [v for _, v in o.headers], o.body, o.body_size,
        ]
        args: list[Any]
        if update.delivery_id is not None:
            args = [update.delivery_id, *outcome, entry]
        else:
            args = [
                update.request_id, update.endpoint_id, update.kind, update.target, update.relay, *outcome, entry,
                json.dumps(update.sent) if update.sent is not None else None,
            ]
        sql = _UPDATE_BY_ID if update.delivery_id is not None else _UPSERT

        async def op(conn: asyncpg.Connection) -> tuple[int, Placed | None]:
            placed: Placed | None = None
            # Retention past its ceiling (or a user's delete, on any instance) may have removed the request while
            # it was being delivered: the outcome has no row to hang on, but the cursor must still move past it.
            if await conn.fetchval("SELECT 1 FROM requests WHERE id = $1", update.request_id):
                row = await conn.fetchrow(sql, *args)
                if row is not None:
                    # The committed row, as RETURNING gave it, for the DeliveryRecorded event.
                    placed = await record(conn, DeliveryRecorded(row_to_delivery(row)))
            if cursor is not None:
                kind, name, acked = cursor
                await conn.execute(_ADVANCE_IF_ENDPOINT, kind, update.endpoint_id, name, acked, now)
            delivery_id = placed.event.delivery.id if placed is not None and isinstance(
                placed.event, DeliveryRecorded) else 0
            return delivery_id, placed

        def after(result: tuple[int, Placed | None]) -> None:
            if result[1] is not None:  # no row written (the request is gone): only a cursor moved
                self._local([result[1]])

        try:
            fut = self.writer.submit_nowait(op, after_commit=after, rings=_touched)
        except StoreBusy:
            # Deliveries are never shed: wait for room (ingest is the one that answers 503).
            fut = asyncio.ensure_future(self.writer.submit(op, after_commit=after, rings=_touched))
        return self._chain(fut, _second, _first)

    async def get_delivery(self, delivery_id: int) -> Delivery | None:
        row = await self.pool.fetchrow(f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = $1", delivery_id)
        return row_to_delivery(row) if row is not None else None

    async def list_deliveries(self, request_id: int) -> list[Delivery]:
        rows = await self.pool.fetch(
            f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE request_id = $1 ORDER BY id", request_id
        )
        return [row_to_delivery(r) for r in rows]

    async def get_cursor(self, kind: CursorKind, endpoint_id: str, name: str) -> int | None:
        value = await self.pool.fetchval(
            "SELECT acked_seq FROM cursors WHERE kind = $1 AND endpoint_id = $2 AND name = $3", kind, endpoint_id, name
        )
        return int(value) if value is not None else None

    async def set_cursor(
        self, kind: CursorKind, endpoint_id: str, name: str, acked_seq: int, force: bool = False
    ) -> int:
        now = time.time()
        # force sets it exactly; otherwise never backwards.
        merge = "excluded.acked_seq" if force else "greatest(cursors.acked_seq, excluded.acked_seq)"

        async def op(conn: asyncpg.Connection) -> int:
            # Checked, not left to the foreign key: callers see the contract's NotFound, not a driver error.
            if await conn.fetchval("SELECT 1 FROM endpoints WHERE id = $1", endpoint_id) is None:
                raise NotFound(f"no endpoint with id {endpoint_id!r}")
            value = await conn.fetchval(
                "INSERT INTO cursors (kind, endpoint_id, name, acked_seq, updated_at) VALUES ($1, $2, $3, $4, $5)"
                f" ON CONFLICT (kind, endpoint_id, name) DO UPDATE SET acked_seq = {merge},"
                " updated_at = excluded.updated_at RETURNING acked_seq",
                kind, endpoint_id, name, acked_seq, now,
            )
            return int(value)

        return await self.writer.submit(op)

    async def list_cursors(self, endpoint_id: str, kind: CursorKind) -> list[tuple[str, int, float]]:
        rows = await self.pool.fetch(
            "SELECT name, acked_seq, updated_at FROM cursors WHERE endpoint_id = $1 AND kind = $2 ORDER BY name",
            endpoint_id, kind,
        )
        return [(r["name"], int(r["acked_seq"]), float(r["updated_at"])) for r in rows]

    async def skipped_counts(self, endpoint_id: str, kind: CursorKind) -> dict[str, int]:
        rows = await self.pool.fetch(
            "SELECT name, skipped FROM cursors WHERE endpoint_id = $1 AND kind = $2", endpoint_id, kind
        )
        return {r["name"]: int(r["skipped"]) for r in rows}

    async def delete_cursor(self, kind: CursorKind, endpoint_id: str, name: str) -> bool:
        async def op(conn: asyncpg.Connection) -> bool:
            status = await conn.execute(
                "DELETE FROM cursors WHERE kind = $1 AND endpoint_id = $2 AND name = $3", kind, endpoint_id, name
            )
            return bool(status != "DELETE 0")

        return await self.writer.submit(op)


def _touched(result: tuple[int, Placed | None]) -> list[Ring]:
    return [EndpointTouched(result[1].endpoint_id)] if result[1] is not None else []


def _first(result: tuple[int, Placed | None]) -> int:
    return result[0]


def _second(result: tuple[int, Placed | None]) -> Placed | None:
    return result[1]
