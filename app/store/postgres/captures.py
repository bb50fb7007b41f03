"""The capture insert: a run of queued captures committed as a few statements inside the writer's transaction.

1. Per endpoint, in sorted endpoint-id order (two instances lock endpoints in the same order, so they never
   deadlock): `UPDATE endpoints SET next_seq = next_seq + n ... RETURNING next_seq` takes a contiguous block of
   seqs (and the endpoint's outbox counter, which places the captures after the changes committed before them:
   changes.py). The row lock is held until COMMIT, so another writer of the same endpoint takes its block after this
   transaction committed: per endpoint, seq order is commit order. An endpoint that is gone fails its captures
   with NotFound and the rest go on.
2. Duplicate detection after the locks, in the same transaction: a capture whose provider event id was already
   captured on the endpoint gets `duplicate_of` = the id of the first such capture (lowest seq), even when that
   one is earlier in the same run or was committed by another instance an instant ago (READ COMMITTED: each
   statement sees what committed before it, and the lock above orders us after any writer of the endpoint).
3. ONE multi-row `INSERT ... SELECT FROM unnest(...)` for every capture of the run.
4. Spooled bodies are linked to their request (`spools.request_id`), so deleting a request deletes its chunks.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import asyncpg

from app.models import CapturedRequest, NewRequest
from app.store.errors import NotFound, StoreError
from app.store.postgres.bodies import CHUNK, INLINE_MAX
from app.unicode_safe import REPLACEMENT, scrub_text

_INSERT = """
INSERT INTO requests (endpoint_id, seq, received_at, method, path, query, headers, body, body_spool, body_size,
    client, http_version, rejected, provider, event_type, event_id, verify_status, verify_reason, duplicate_of)
SELECT * FROM unnest($1::text[], $2::bigint[], $3::float8[], $4::text[], $5::bytea[], $6::bytea[], $7::bytea[],
    $8::bytea[], $9::bigint[], $10::bigint[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[],
    $16::text[], $17::text[], $18::text[], $19::bigint[])
RETURNING id, endpoint_id, seq
"""


@dataclass(frozen=True, slots=True)
class Capture:
    """A queued capture: the request with its text fields made storable, its encoded header block, and the
    spool holding its body (None when the body is in `new.body`)."""

    new: NewRequest
    headers: bytes
    spool_id: int | None


@dataclass(frozen=True, slots=True)
class Inserted:
    """A committed capture, and `endpoints.next_change` as its transaction saw it under the row lock: the
    endpoint's outbox changes up to that number committed before it, the later ones after."""

    request: CapturedRequest
    change: int


class SpoolGone(StoreError):
    """The spool a capture names no longer exists (swept after it was left unfinished too long)."""


async def insert_captures(conn: asyncpg.Connection, items: Sequence[Capture]) -> list[Inserted | Exception]:
    """Insert the captures in order; one result per item: the committed request, or NotFound for a capture whose
    endpoint is gone. Raises on anything else (the writer then retries job by job)."""
    results: list[Inserted | Exception | None] = [None] * len(items)
    by_endpoint: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        by_endpoint.setdefault(item.new.endpoint_id, []).append(i)
    seqs: dict[int, int] = {}
    changes: dict[str, int] = {}
    for endpoint_id in sorted(by_endpoint):
        members = by_endpoint[endpoint_id]
        counters = await conn.fetchrow(
            "UPDATE endpoints SET next_seq = next_seq + $2 WHERE id = $1 RETURNING next_seq, next_change",
            endpoint_id, len(members),
        )
        if counters is None:
            for i in members:
                results[i] = NotFound(f"no endpoint with id {endpoint_id!r}")
            continue
        last = int(counters["next_seq"])
        changes[endpoint_id] = int(counters["next_change"])
        for offset, i in enumerate(members):
            seqs[i] = int(last) - len(members) + 1 + offset
    rows = [i for i in range(len(items)) if i in seqs]
    if not rows:
        return [r for r in results if r is not None]

    duplicate_of, first_in_run = await _duplicates(conn, [items[i] for i in rows])
    spools = [items[i].spool_id for i in rows]
    bodies: list[bytes | None] = []
    for k, i in enumerate(rows):
        body = items[i].new.body
        if body is not None and len(body) > INLINE_MAX:
            # A large body handed over in memory: into chunks, like a spooled one, in this transaction.
            spools[k] = await _store_chunks(conn, body)
            body = None
        bodies.append(body)

    news = [items[i].new for i in rows]
    inserted = await conn.fetch(
        _INSERT,
        [n.endpoint_id for n in news],
        [seqs[i] for i in rows],
        [n.received_at for n in news],
        [n.method for n in news],
        [n.path.encode("latin-1") for n in news],
        [n.query.encode("latin-1") for n in news],
        [items[i].headers for i in rows],
        bodies,
        spools,
        [n.body_size for n in news],
        [n.client for n in news],
        [n.http_version for n in news],
        [n.rejected for n in news],
        [n.provider for n in news],
        [n.event_type for n in news],
        [n.event_id for n in news],
        [n.verify_status for n in news],
        [n.verify_reason for n in news],
        duplicate_of,
    )
    # Matched by (endpoint, seq), which is unique, rather than trusting RETURNING to keep the input order.
    ids = {(r["endpoint_id"], r["seq"]): int(r["id"]) for r in inserted}
    row_ids = [ids[(items[i].new.endpoint_id, seqs[i])] for i in rows]

    links = [(spool, rid) for spool, rid in zip(spools, row_ids, strict=True) if spool is not None]
    if links:
        linked = await conn.fetchval(
            "WITH l AS (UPDATE spools SET request_id = u.rid FROM unnest($1::bigint[], $2::bigint[]) AS u(sid, rid)"
            " WHERE spools.id = u.sid AND spools.request_id IS NULL RETURNING 1) SELECT count(*) FROM l",
            [s for s, _ in links],
            [r for _, r in links],
        )
        if linked != len(links):
            raise SpoolGone("a body spool of this capture no longer exists")

    # Captures whose first occurrence is earlier in this run: its id is known only now.
    fixes = [(row_ids[k], row_ids[first]) for k, first in first_in_run.items()]
    if fixes:
        await conn.execute(
            "UPDATE requests SET duplicate_of = u.dup FROM unnest($1::bigint[], $2::bigint[]) AS u(rid, dup)"
            " WHERE requests.id = u.rid",
            [f[0] for f in fixes],
            [f[1] for f in fixes],
        )
        for k, first in first_in_run.items():
            duplicate_of[k] = row_ids[first]

    for k, i in enumerate(rows):
        request = CapturedRequest.from_new(row_ids[k], items[i].new, duplicate_of[k], seq=seqs[i])
        results[i] = Inserted(request, changes[request.endpoint_id])
    return [r for r in results if r is not None]


async def _duplicates(
    conn: asyncpg.Connection, items: list[Capture]
) -> tuple[list[int | None], dict[int, int]]:
    """(duplicate_of per item from rows already stored, {item index: index of the earlier item of this run it
    repeats} for events first seen in this run)."""
    duplicate_of: list[int | None] = [None] * len(items)
    first_in_run: dict[int, int] = {}
    keyed = [(k, it.new.endpoint_id, it.new.event_id) for k, it in enumerate(items) if it.new.event_id is not None]
    if not keyed:
        return duplicate_of, first_in_run
    # One index probe per distinct key for its first stored row: a provider retrying one event thousands of times
    # must not make every later capture join against all of its repeats.
    keys = sorted({(e, v) for _, e, v in keyed if v is not None})
    stored = await conn.fetch(
        "SELECT k.endpoint_id, k.event_id, f.id FROM unnest($1::text[], $2::text[]) AS k(endpoint_id, event_id)"
        " CROSS JOIN LATERAL (SELECT r.id FROM requests r WHERE r.endpoint_id = k.endpoint_id"
        " AND r.event_id = k.event_id ORDER BY r.seq LIMIT 1) AS f",
        [e for e, _ in keys],
        [v for _, v in keys],
    )
    firsts = {(r["endpoint_id"], r["event_id"]): int(r["id"]) for r in stored}
    seen: dict[tuple[str, str], int] = {}
    for k, endpoint_id, event_id in keyed:
        assert event_id is not None
        key = (endpoint_id, event_id)
        if key in firsts:
            duplicate_of[k] = firsts[key]
        elif key in seen:
            first_in_run[k] = seen[key]
        else:
            seen[key] = k
    return duplicate_of, first_in_run


async def _store_chunks(conn: asyncpg.Connection, body: bytes) -> int:
    spool_id = int(await conn.fetchval("INSERT INTO spools (created_at) VALUES ($1) RETURNING id", time.time()))
    await conn.executemany(
        "INSERT INTO body_chunks (spool_id, n, data) VALUES ($1, $2, $3)",
        [(spool_id, n, body[off : off + CHUNK]) for n, off in enumerate(range(0, len(body), CHUNK))],
    )
    return spool_id


def storable(new: NewRequest) -> NewRequest:
    """The request with every text field PostgreSQL `text` can hold: U+0000 and lone surrogates (which a provider
    event id parsed out of a hostile JSON body may carry) become U+FFFD. The same object when nothing changes."""
    changes: dict[str, Any] = {
        name: clean
        for name in ("method", "client", "http_version", "rejected", "provider", "event_type", "event_id",
                     "verify_reason")
        if (value := getattr(new, name)) is not None and (clean := pg_text(value)) is not value
    }
    return replace(new, **changes) if changes else new


def pg_text(value: str) -> str:
    """value, or a copy with U+0000 and lone surrogates replaced by U+FFFD (the same object when clean)."""
    value = scrub_text(value)
    return value.replace("\x00", REPLACEMENT) if "\x00" in value else value
