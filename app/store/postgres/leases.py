"""Leases on PostgreSQL (app/store/leases.py): rows of `leases`, each statement one conditional upsert.

Why a table of its own rather than owner/lease_until columns on `cursors` (scale-out.md's sketch): a lease is
taken BEFORE its cursor exists (a relay's lease comes first, then its cursor is read or reset), and a cursor can
be forgotten (DELETE /relays/{name}) while its relay is connected; and cursor rows are written by the writer's
batches, whose row locks last a whole group commit, which would delay a renewal queued behind them.

Why a conditional upsert rather than `SELECT ... FOR UPDATE SKIP LOCKED`: SKIP LOCKED serves a pool of workers
picking ANY free job; here every instance runs one worker per forward target, each asking for one known row, and
the single-statement upsert both creates the row and decides ownership atomically (row locks last one statement:
nothing to skip). Times are the database's `now()`, never an instance's clock. These statements run on the read
pool (autocommit), not through the writer: a renewal must not wait behind a queue of captures, or a busy instance
would lose its leases exactly when it is busiest.
"""

from __future__ import annotations

import asyncpg

from app.store.leases import LeaseKind

_ACQUIRE = (
    "INSERT INTO leases (kind, endpoint_id, name, owner, lease_until)"
    " SELECT $1, $2, $3, $4, now() + make_interval(secs => $5) WHERE EXISTS (SELECT 1 FROM endpoints WHERE id = $2)"
    " ON CONFLICT (kind, endpoint_id, name) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until"
)
_FREE_OR_OURS = " WHERE leases.owner = excluded.owner OR leases.lease_until < now()"


class LeaseQueries:
    """Mixed into PostgresStore, which provides the read pool."""

    @property
    def pool(self) -> asyncpg.Pool:
        """The read pool (PostgresStore's; StoreClosed when it is not open)."""
        raise NotImplementedError

    async def _upsert(self, sql: str, kind: LeaseKind, endpoint_id: str, name: str, owner: str, ttl: float) -> bool:
        try:
            status = await self.pool.execute(sql, kind, endpoint_id, name, owner, float(ttl))
        except asyncpg.ForeignKeyViolationError:
            return False  # the endpoint was deleted between the check and the insert
        return bool(status != "INSERT 0 0")

    async def acquire_lease(self, kind: LeaseKind, endpoint_id: str, name: str, owner: str, ttl: float) -> bool:
        return await self._upsert(_ACQUIRE + _FREE_OR_OURS, kind, endpoint_id, name, owner, ttl)

    async def take_over_lease(self, kind: LeaseKind, endpoint_id: str, name: str, owner: str, ttl: float) -> bool:
        return await self._upsert(_ACQUIRE, kind, endpoint_id, name, owner, ttl)

    async def release_lease(self, kind: LeaseKind, endpoint_id: str, name: str, owner: str) -> bool:
        status = await self.pool.execute(
            "DELETE FROM leases WHERE kind = $1 AND endpoint_id = $2 AND name = $3 AND owner = $4",
            kind, endpoint_id, name, owner,
        )
        return bool(status != "DELETE 0")

    async def lease_owner(self, kind: LeaseKind, endpoint_id: str, name: str) -> str | None:
        value = await self.pool.fetchval(
            "SELECT owner FROM leases WHERE kind = $1 AND endpoint_id = $2 AND name = $3 AND lease_until >= now()",
            kind, endpoint_id, name,
        )
        return str(value) if value is not None else None

    async def lease_owners(self, endpoint_id: str, kind: LeaseKind) -> dict[str, str]:
        rows = await self.pool.fetch(
            "SELECT name, owner FROM leases WHERE endpoint_id = $1 AND kind = $2 AND lease_until >= now()",
            endpoint_id, kind,
        )
        return {str(r["name"]): str(r["owner"]) for r in rows}
