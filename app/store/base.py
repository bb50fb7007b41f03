"""The interface every storage backend implements. Handlers depend on this, never on a backend.

`Store` is the one type callers name; it is composed of one interface per concern, each in its own module with
its contract: lifecycle (open, close, claim, health), endpoints, requests (and body spools), deliveries, cursors,
retention, and leases (which instance delivers what when several share the storage). Every mutating method
returns after COMMIT. The exceptions are in app/store/errors.py; the backend-independent tests of this contract
are tests/store/test_contract.py and tests/store/test_leases.py.
"""

from __future__ import annotations

from app.store.cursors import CursorAdvance, CursorStore
from app.store.deliveries import DeliveryStore
from app.store.endpoints import EndpointStore
from app.store.leases import LeaseKind, LeaseStore
from app.store.lifecycle import LifecycleStore
from app.store.requests import BodySpool, RequestQuery, RequestStore
from app.store.retention import PruneResult, RetentionStore, default_retention_ceiling

# The value types of the contract, so a caller imports everything it needs from one place.
__all__ = [
    "BodySpool", "CursorAdvance", "LeaseKind", "PruneResult", "RequestQuery", "Store", "default_retention_ceiling",
]


class Store(LifecycleStore, EndpointStore, RequestStore, DeliveryStore, CursorStore, RetentionStore, LeaseStore):
    """Durable storage of endpoints, captured requests, deliveries and cursors.

    Every mutating method returns after COMMIT. A backend takes an `EventSink` (app/events/types.py) and emits one
    event per committed change to it, after the commit, in commit order, before the mutating call returns.
    """
