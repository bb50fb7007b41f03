"""Retention for the PostgreSQL backend (a part of PostgresStore.prune): the count cap and the maximum age, per
endpoint, holding back captures a relay or forward target still owes (seq above its acked seq), up to a ceiling.

Runs inside one write transaction, so the rows removed and the `skipped` counts of the cursors that had not
acknowledged them commit together. One instance prunes at a time: the transaction first tries an advisory lock,
and an instance that does not get it prunes nothing this round (another one is doing it). The same transaction
sweeps body spools left unlinked (bodies.py) and outbox rows older than an hour (changes.py).
"""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass
from typing import Any

import asyncpg

from app.endpoint_settings import settings_from_json
from app.events.types import CursorKind, Skipped
from app.store.postgres.bodies import SPOOL_ORPHAN_SECONDS
from app.store.postgres.changes import KEEP_SECONDS
from app.store.retention import RetentionRules

# pg_try_advisory_xact_lock key of retention (the migration key + 1).
RETENTION_LOCK = (0x686F6F6B73636F70 & 0x7FFF_FFFF_FFFF_FFFF) + 1


@dataclass(frozen=True, slots=True)
class PrunedEndpoint:
    """What one prune removed from one endpoint (only endpoints that lost rows are reported)."""

    endpoint_id: str
    ids: tuple[int, ...]  # request ids, ascending
    skipped: tuple[Skipped, ...]  # the cursors of this endpoint that lost captures they were owed


async def prune_all(conn: asyncpg.Connection, rules: RetentionRules, now: float) -> list[PrunedEndpoint]:
    """Prune every endpoint; returns, per endpoint that lost rows, what it lost. [] when another instance holds
    the retention lock."""
    if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", RETENTION_LOCK):
        return []
    await conn.execute(
        "DELETE FROM spools WHERE request_id IS NULL AND created_at < $1", now - SPOOL_ORPHAN_SECONDS
    )
    # The outbox other instances read (changes.py): an hour is far beyond any catch-up. By the clock its rows were
    # stamped with, not `now` (which a caller may move to expire captures).
    await conn.execute("DELETE FROM changes WHERE created_at < $1", time.time() - KEEP_SECONDS)
    pruned: list[PrunedEndpoint] = []
    for row in await conn.fetch("SELECT id, options FROM endpoints ORDER BY id"):
        result = await prune_endpoint(conn, row["id"], _forward_targets(row["options"]), rules)
        if result is not None:
            pruned.append(result)
    return pruned


async def prune_endpoint(
    conn: asyncpg.Connection, endpoint_id: str, targets: frozenset[str], rules: RetentionRules
) -> PrunedEndpoint | None:
    """None when the endpoint lost nothing."""
    expired, args = await _expired(conn, endpoint_id, rules)
    if expired is None:
        return None
    owing = await _owing_cursors(conn, endpoint_id, targets)
    hold = ""
    if owing:
        floor = min(acked for _, _, acked in owing)
        unexpired = await conn.fetchval(
            f"SELECT count(*) FROM requests WHERE endpoint_id = $1 AND NOT ({expired})", *args
        )
        # Owed captures fill the room left under the ceiling, newest first: past it the oldest owed ones go
        # (whoever is that far behind is the one to lose, not the captures everyone else still needs).
        allowance = rules.ceiling - int(unexpired)
        if allowance > 0:
            n = len(args)
            kept_from = await conn.fetchval(
                f"SELECT seq FROM requests WHERE endpoint_id = $1 AND ({expired}) AND seq > ${n + 1}"
                f" AND rejected IS NULL ORDER BY seq DESC OFFSET ${n + 2} LIMIT 1",
                *args, floor, allowance - 1,
            )
            hold = f" AND NOT (seq >= ${n + 1} AND rejected IS NULL)"
            args = [*args, kept_from if kept_from is not None else floor + 1]
    rows = await conn.fetch(
        f"DELETE FROM requests WHERE endpoint_id = $1 AND ({expired}){hold} RETURNING id, seq, rejected", *args
    )
    if not rows:
        return None
    lost = sorted(int(r["seq"]) for r in rows if r["rejected"] is None)  # rejected records carry nothing to deliver
    skipped: list[Skipped] = []
    for kind, name, acked in owing:
        count = len(lost) - bisect.bisect_right(lost, acked)
        if count:
            total = await conn.fetchval(
                "UPDATE cursors SET skipped = skipped + $1 WHERE kind = $2 AND endpoint_id = $3 AND name = $4"
                " RETURNING skipped",
                count, kind, endpoint_id, name,
            )
            skipped.append(Skipped(kind, endpoint_id, name, count, int(total)))
    return PrunedEndpoint(endpoint_id, tuple(sorted(int(r["id"]) for r in rows)), tuple(skipped))


async def _expired(
    conn: asyncpg.Connection, endpoint_id: str, rules: RetentionRules
) -> tuple[str | None, list[Any]]:
    """The SQL condition of the captures plain retention would remove, and its arguments ($1 is the endpoint);
    None for none."""
    conditions: list[str] = []
    args: list[Any] = [endpoint_id]
    if rules.cap > 0:
        # The newest capture past the cap: it and everything older go.
        newest_over = await conn.fetchval(
            "SELECT seq FROM requests WHERE endpoint_id = $1 ORDER BY seq DESC OFFSET $2 LIMIT 1",
            endpoint_id, rules.cap,
        )
        if newest_over is not None:
            args.append(newest_over)
            conditions.append(f"seq <= ${len(args)}")
    if rules.cutoff is not None:
        args.append(rules.cutoff)
        conditions.append(f"received_at < ${len(args)}")
    return (" OR ".join(conditions) if conditions else None), args


async def _owing_cursors(
    conn: asyncpg.Connection, endpoint_id: str, targets: frozenset[str]
) -> list[tuple[CursorKind, str, int]]:
    """(kind, name, acked seq) of the cursors whose owner will still come for what lies past them."""
    owing: list[tuple[CursorKind, str, int]] = []
    for row in await conn.fetch("SELECT kind, name, acked_seq FROM cursors WHERE endpoint_id = $1", endpoint_id):
        kind, name, acked = row["kind"], row["name"], int(row["acked_seq"])
        # A relay may come back any time (until it is forgotten). A forward cursor outlives its target's removal
        # from the endpoint (re-adding it resumes there), but while removed nobody delivers to it.
        if kind == "relay":
            owing.append(("relay", name, acked))
        elif kind == "forward" and name in targets:
            owing.append(("forward", name, acked))
    return owing


def _forward_targets(options: str) -> frozenset[str]:
    """The endpoint's forward targets from its raw `options` column, decoded as the store's cache decodes it."""
    try:
        return frozenset(settings_from_json(options).forward_targets or ())
    except ValueError:  # not a JSON object: nothing is owed to targets
        return frozenset()
