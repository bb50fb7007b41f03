"""Retention for the SQLite backend (a part of SQLiteStore.prune): the count cap and the maximum age, per
endpoint, holding back captures a relay or forward target still owes, up to a ceiling.

Runs inside one write transaction, so the rows removed and the `skipped` counts of the cursors that had not
acknowledged them commit together.
"""

from __future__ import annotations

import bisect
import sqlite3
from dataclasses import dataclass
from typing import Any

from app.endpoint_settings import settings_from_json
from app.events.types import CursorKind, Skipped
from app.store.retention import RetentionRules


@dataclass(frozen=True, slots=True)
class PrunedEndpoint:
    """What one prune removed from one endpoint (only endpoints that lost rows are reported)."""

    endpoint_id: str
    ids: tuple[int, ...]  # ascending
    files: tuple[str, ...]  # body files of the removed rows, to delete after COMMIT
    skipped: tuple[Skipped, ...]  # the cursors of this endpoint that lost captures they were owed


def prune_all(conn: sqlite3.Connection, rules: RetentionRules) -> list[PrunedEndpoint]:
    """Prune every endpoint; returns, per endpoint that lost rows, what it lost."""
    pruned: list[PrunedEndpoint] = []
    for endpoint_id, options in conn.execute("SELECT id, options FROM endpoints").fetchall():
        result = prune_endpoint(conn, endpoint_id, _forward_targets(options), rules)
        if result is not None:
            pruned.append(result)
    return pruned


def prune_endpoint(
    conn: sqlite3.Connection, endpoint_id: str, targets: frozenset[str], rules: RetentionRules
) -> PrunedEndpoint | None:
    """None when the endpoint lost nothing."""
    expired, expired_args = _expired(conn, endpoint_id, rules)
    if expired is None:
        return None
    where = f"endpoint_id = ? AND ({expired})"
    args: list[Any] = [endpoint_id, *expired_args]
    owing = _owing_cursors(conn, endpoint_id, targets)
    hold, hold_args = "", []
    if owing:
        floor = min(acked for _, _, acked in owing)
        (unexpired,) = conn.execute(
            f"SELECT COUNT(*) FROM requests WHERE endpoint_id = ? AND NOT ({expired})", args
        ).fetchone()
        # Owed captures fill the room left under the ceiling, newest first: past it the oldest owed ones go
        # (whoever is that far behind is the one to lose, not the captures everyone else still needs).
        allowance = rules.ceiling - int(unexpired)
        if allowance > 0:
            row = conn.execute(
                f"SELECT id FROM requests WHERE {where} AND id > ? AND rejected IS NULL"
                " ORDER BY id DESC LIMIT 1 OFFSET ?",
                (*args, floor, allowance - 1),
            ).fetchone()
            hold = " AND NOT (id >= ? AND rejected IS NULL)"
            hold_args = [row[0] if row else floor + 1]
    rows = conn.execute(
        f"DELETE FROM requests WHERE {where}{hold} RETURNING id, rejected, body_file", (*args, *hold_args)
    ).fetchall()
    lost = sorted(r[0] for r in rows if r[1] is None)  # rejected records carry nothing to deliver
    skipped: list[Skipped] = []
    for kind, name, acked in owing:
        count = len(lost) - bisect.bisect_right(lost, acked)
        if count:
            (total,) = conn.execute(
                "UPDATE cursors SET skipped = skipped + ? WHERE kind = ? AND endpoint_id = ? AND name = ?"
                " RETURNING skipped",
                (count, kind, endpoint_id, name),
            ).fetchone()
            skipped.append(Skipped(kind, endpoint_id, name, count, int(total)))
    if not rows:
        return None
    ids = tuple(sorted(r[0] for r in rows))
    return PrunedEndpoint(endpoint_id, ids, tuple(r[2] for r in rows if r[2]), tuple(skipped))


def _expired(conn: sqlite3.Connection, endpoint_id: str, rules: RetentionRules) -> tuple[str | None, list[Any]]:
    """The SQL condition (and its arguments) of the captures plain retention would remove; None for none."""
    conditions: list[str] = []
    args: list[Any] = []
    if rules.cap > 0:
        row = conn.execute(
            "SELECT id FROM requests WHERE endpoint_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?", (endpoint_id, rules.cap)
        ).fetchone()
        if row is not None:
            conditions.append("id <= ?")
            args.append(row[0])
    if rules.cutoff is not None:
        conditions.append("received_at < ?")
        args.append(rules.cutoff)
    return (" OR ".join(conditions) if conditions else None), args


def _owing_cursors(
    conn: sqlite3.Connection, endpoint_id: str, targets: frozenset[str]
) -> list[tuple[CursorKind, str, int]]:
    """(kind, name, acked_id) of the cursors whose owner will still come for what lies past them."""
    owing: list[tuple[CursorKind, str, int]] = []
    for kind, name, acked in conn.execute(
        "SELECT kind, name, acked_id FROM cursors WHERE endpoint_id = ?", (endpoint_id,)
    ).fetchall():
        # A relay may come back any time (until it is forgotten). A forward cursor outlives its target's removal
        # from the endpoint (re-adding it resumes there), but while removed nobody delivers to it.
        if kind == "relay":
            owing.append(("relay", name, int(acked)))
        elif kind == "forward" and name in targets:
            owing.append(("forward", name, int(acked)))
    return owing


def _forward_targets(options: str) -> frozenset[str]:
    """The endpoint's forward targets from its raw `options` column, decoded as the store's cache decodes it,
    so retention holds captures back for exactly the targets the forwarder delivers to."""
    try:
        return frozenset(settings_from_json(options).forward_targets or ())
    except ValueError:  # not a JSON object (the store refuses to load such a row): nothing is owed to targets
        return frozenset()
