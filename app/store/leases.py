"""The lease part of the store contract: which instance delivers a forward target or serves a named relay.

Several instances may share one database; each forward target and each named relay must be delivered by one of
them at a time. A lease is (kind, endpoint, name) -> (owner, until): `owner` is an instance id (app/services.py),
`until` a time on the STORE's clock (the database server's on PostgreSQL), so instances whose clocks disagree still
agree on who holds what. A lease is held while unexpired; an expired lease is free. Leases are advisory timing, not
the truth: the cursor is (app/store/cursors.py), so an owner that stalls past its lease and loses it may deliver
its in-flight item once more after the new owner starts (at-least-once).

Contract tests: tests/store/test_leases.py.
"""

from __future__ import annotations

import abc

from app.events.types import CursorKind

# Leases name what cursors name: a relay (name = relay name) or a forward target (name = target URL).
LeaseKind = CursorKind


class LeaseStore(abc.ABC):
    @abc.abstractmethod
    async def acquire_lease(self, kind: LeaseKind, endpoint_id: str, name: str, owner: str, ttl: float) -> bool:
        """Take the lease when it is free, expired or already `owner`'s, until `ttl` seconds from now on the
        store's clock (renewing it when it is `owner`'s); returns after COMMIT whether `owner` holds it. False
        when another owner's lease is unexpired, or when the endpoint does not exist."""

    @abc.abstractmethod
    async def take_over_lease(self, kind: LeaseKind, endpoint_id: str, name: str, owner: str, ttl: float) -> bool:
        """Take the lease for `ttl` seconds whoever holds it (a relay reconnecting through another instance);
        the previous owner finds out at its next `acquire_lease`, which returns False. Returns after COMMIT
        whether `owner` holds it (False only when the endpoint does not exist)."""

    @abc.abstractmethod
    async def release_lease(self, kind: LeaseKind, endpoint_id: str, name: str, owner: str) -> bool:
        """Give the lease up if `owner` holds it, so another instance can take it at once; returns after COMMIT
        whether it did (an expired lease of `owner` counts as held until someone else takes it)."""

    @abc.abstractmethod
    async def lease_owner(self, kind: LeaseKind, endpoint_id: str, name: str) -> str | None:
        """The owner of the unexpired lease, or None when it is free or expired."""

    @abc.abstractmethod
    async def lease_owners(self, endpoint_id: str, kind: LeaseKind) -> dict[str, str]:
        """Name -> owner of every unexpired lease of that kind on the endpoint (for status pages)."""
