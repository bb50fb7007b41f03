"""The capture insert: a run of queued captures committed as ONE statement.

1. Ids are handed out here, consecutively in queue order: one past the largest id ever handed out (AUTOINCREMENT
   keeps that in `sqlite_sequence`, so an id is never reused even after the newest rows were deleted), read once,
   then counted on. This is the single writer, so nothing else takes ids; a run that fails leaves a gap (allowed:
   seqs may have gaps), never a reuse. The ids are the seqs.
2. Duplicate detection, when the run has provider event ids: one query per endpoint finds the first stored
   capture (lowest id) of each event id (one index seek each); a capture whose event id has none gets the first
   capture of the run with that event id, if it is not that capture itself: the answers a lookup per capture
   would give.
3. One `INSERT ... SELECT ... FROM (VALUES ...)` for the whole run, padded to a power of two rows (padding rows
   have a NULL id and are filtered out), so only a dozen statements ever exist and all stay prepared.

Why so few statements: the database thread gives up the GIL for every statement and must win it back from the
busy event loop afterwards, which cost ~0.5 ms per statement under load (bench/ingest_profile.py). Called outside a
transaction (the writer does that when a batch holds nothing but captures), the insert is its own transaction: it
commits (with its fsync) or fails whole in one step, and the read before it cannot go stale, as nothing but this
writer writes. A failing insert raises; the writer then retries the run one capture at a time, where an endpoint
deleted meanwhile fails only its own captures with NotFound.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from app.models import CapturedRequest, Header, NewRequest
from app.store.errors import NotFound


class Capture:
    """A capture queued for the insert, prepared on the event loop: the database thread competes with the loop
    for the GIL, so it only numbers the rows and runs the statement. `request` is what the insert returns (it fills
    in id, seq and duplicate_of); `values` are the row's columns between id and duplicate_of."""

    __slots__ = ("request", "values")

    def __init__(self, new: NewRequest, body_file: str | None) -> None:
        content_type = new.content_type
        self.request = CapturedRequest(
            0, 0, new.endpoint_id, new.received_at, new.method, new.path, new.query, new.headers, new.body_size,
            content_type, new.client, new.http_version, new.rejected, new.body, new.provider, new.event_type,
            new.event_id, new.verify_status, new.verify_reason, None,
        )
        self.values = (
            new.endpoint_id, new.received_at, new.method, new.path, new.query, encode_headers(new.headers),
            content_type, new.body, body_file, new.body_size, new.client, new.http_version, new.rejected,
            new.provider, new.event_type, new.event_id, new.verify_status, new.verify_reason,
        )

_COLUMNS = (
    "id, endpoint_id, received_at, method, path, query, headers, content_type, body, body_file, body_size, client,"
    " http_version, rejected, provider, event_type, event_id, verify_status, verify_reason, duplicate_of"
)
_WIDTH = _COLUMNS.count(",") + 1
_ROW = "(" + ", ".join("?" * _WIDTH) + ")"
_SELECT = ", ".join(f"v.column{i}" for i in range(1, _WIDTH + 1))
_PAD = (None,) * _WIDTH
_NEXT_ID = (
    "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'requests'), 0),"
    " coalesce((SELECT max(id) FROM requests), 0))"
)
# Event ids asked about per duplicate query, padded to a power of two like the insert.
EVENT_IDS_PER_QUERY = 256


def encode_headers(headers: tuple[Header, ...]) -> str:
    return json.dumps(headers, ensure_ascii=False, separators=(",", ":"))


def decode_headers(text: str) -> tuple[Header, ...]:
    return tuple((n, v) for n, v in json.loads(text))


class CaptureInsert:
    """The writer's batch function for captures (writer.BatchFn). Self-committing: called outside a
    transaction, it commits its run alone and atomically (one statement, or its own transaction for a run longer
    than one statement holds)."""

    self_committing = True

    def __init__(self) -> None:
        self._last_id: int | None = None
        self._rows_max = 1

    def __call__(self, conn: sqlite3.Connection, items: Sequence[Capture]) -> list[CapturedRequest | Exception]:
        if self._last_id is None:
            (self._last_id,) = conn.execute(_NEXT_ID).fetchone()
            limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
            self._rows_max = 1 << ((limit // _WIDTH).bit_length() - 1)
        first_id = self._last_id + 1
        self._last_id += len(items)  # before the insert: a failed run leaves a gap, never a reused id
        firsts = _first_ids(conn, items)
        rows: list[list[object]] = []
        out: list[CapturedRequest | Exception] = []
        for rid, capture in enumerate(items, first_id):
            req = capture.request
            duplicate_of = None
            if req.event_id is not None:
                duplicate_of = firsts.setdefault((req.endpoint_id, req.event_id), rid)
                if duplicate_of == rid:
                    duplicate_of = None  # the first of its event: later ones in the run point here
            req.id = req.seq = rid
            req.duplicate_of = duplicate_of
            rows.append([rid, *capture.values, duplicate_of])
            out.append(req)
        try:
            if len(rows) <= self._rows_max:
                _insert(conn, rows)
            else:
                own = not conn.in_transaction
                if own:
                    conn.execute("BEGIN IMMEDIATE")
                try:
                    for start in range(0, len(rows), self._rows_max):
                        _insert(conn, rows[start : start + self._rows_max])
                    if own:
                        conn.execute("COMMIT")
                except BaseException:
                    if own:
                        conn.execute("ROLLBACK")
                    raise
        except sqlite3.IntegrityError as exc:
            if len(items) == 1:
                raise NotFound(f"no endpoint with id {items[0].request.endpoint_id!r}") from exc
            raise
        return out


def _insert(conn: sqlite3.Connection, rows: list[list[object]]) -> None:
    size = 1 << (len(rows) - 1).bit_length()
    params = [value for row in rows for value in row]
    params.extend(_PAD * (size - len(rows)))
    conn.execute(
        f"INSERT INTO requests ({_COLUMNS}) SELECT {_SELECT} FROM (VALUES "
        + ", ".join([_ROW] * size) + ") AS v WHERE v.column1 IS NOT NULL",
        params,
    )


def _first_ids(conn: sqlite3.Connection, items: Sequence[Capture]) -> dict[tuple[str, str], int]:
    """(endpoint id, event id) -> the lowest stored id with that provider event id, for the run's event ids."""
    wanted: dict[str, set[str]] = {}
    for capture in items:
        req = capture.request
        if req.event_id is not None:
            wanted.setdefault(req.endpoint_id, set()).add(req.event_id)
    firsts: dict[tuple[str, str], int] = {}
    for endpoint_id, event_ids in wanted.items():
        ordered = sorted(event_ids)
        for start in range(0, len(ordered), EVENT_IDS_PER_QUERY):
            chunk = ordered[start : start + EVENT_IDS_PER_QUERY]
            size = 1 << (len(chunk) - 1).bit_length()
            padded = chunk + [chunk[-1]] * (size - len(chunk))
            # A correlated min() per event id: each is one seek in the (endpoint_id, event_id) index, where a
            # GROUP BY would walk every capture of a repeated event id. One row (a JSON array) comes back: every
            # row fetched is another statement step, and another wait for the GIL.
            sql = (
                "SELECT json_group_array(json_array(v.column1, (SELECT min(id) FROM requests"
                " WHERE endpoint_id = ? AND event_id = v.column1))) FROM (VALUES "
                + ", ".join(["(?)"] * size) + ") AS v"
            )
            (found,) = conn.execute(sql, [endpoint_id, *padded]).fetchone()
            for event_id, first in json.loads(found):
                if first is not None:
                    firsts[(endpoint_id, event_id)] = first
    return firsts
