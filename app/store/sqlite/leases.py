"""Leases on SQLite: a table in memory, with the contract's semantics (app/store/leases.py).

SQLite serves one instance per database (DatabaseLock), so every lease could simply be granted; keeping the real
rules (exclusive, expiring, taken over, released) costs nothing and lets the same contract tests run on both
backends. In memory, not in the database: a lease only means something while its owner runs, and its owner is
this process; after a restart every lease is free, which is what expiry would give anyway. The clock is this
process's monotonic clock (the "store's clock" of the contract).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from app.store.leases import LeaseKind


@dataclass(slots=True)
class _Lease:
    owner: str
    until: float


class LocalLeases:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._leases: dict[tuple[LeaseKind, str, str], _Lease] = {}

    def acquire(self, kind: LeaseKind, endpoint_id: str, name: str, owner: str, ttl: float) -> bool:
        now = self._clock()
        key = (kind, endpoint_id, name)
        held = self._leases.get(key)
        if held is not None and held.owner != owner and held.until >= now:
            return False
        self._leases[key] = _Lease(owner, now + ttl)
        return True

    def take_over(self, kind: LeaseKind, endpoint_id: str, name: str, owner: str, ttl: float) -> None:
        self._leases[(kind, endpoint_id, name)] = _Lease(owner, self._clock() + ttl)

    def release(self, kind: LeaseKind, endpoint_id: str, name: str, owner: str) -> bool:
        key = (kind, endpoint_id, name)
        held = self._leases.get(key)
        if held is None or held.owner != owner:
            return False
        del self._leases[key]
        return True

    def owner(self, kind: LeaseKind, endpoint_id: str, name: str) -> str | None:
        held = self._leases.get((kind, endpoint_id, name))
        return held.owner if held is not None and held.until >= self._clock() else None

    def owners(self, endpoint_id: str, kind: LeaseKind) -> dict[str, str]:
        now = self._clock()
        return {
            name: lease.owner
            for (k, eid, name), lease in self._leases.items()
            if k == kind and eid == endpoint_id and lease.until >= now
        }

    def forget_endpoint(self, endpoint_id: str) -> None:
        """The endpoint is gone, and its leases with it (as its rows cascade on PostgreSQL)."""
        for key in [k for k in self._leases if k[1] == endpoint_id]:
            del self._leases[key]
