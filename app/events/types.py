"""The events a store emits: one per committed change, from its after-commit step, in commit order.

Every reaction to a change (live pages, the smee stream, relays, forward workers, passthrough waiters, `wait`)
starts from one of these. Nothing but the store creates them, and the store emits each one only after its
transaction committed, so a subscriber that reads the database on an event always finds what it announces.

Events are small and immutable. `RequestAdded` carries the request with its body only when the body is small
(`INLINE_BODY_MAX`); a consumer that needs a larger body loads it from the store. See docs/events.md for the
frames the live socket derives from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from app.delivery.records import Delivery
from app.models import CapturedRequest, Endpoint
from app.providers.types import VerdictStatus

# Bodies up to this size ride along with RequestAdded, so a caught-up forwarder or relay never reads the database;
# larger ones are left out so queued events never pin large bodies in memory.
INLINE_BODY_MAX = 64 * 1024

# An endpoint's deletion is EndpointDeleted alone (its requests go with it), not a removal.
RemovalReason = Literal["deleted", "cleared", "pruned"]
CursorKind = Literal["relay", "forward"]


@dataclass(frozen=True, slots=True)
class Skipped:
    """Captures one prune removed while a relay or forward target still owed them (past the ceiling)."""

    kind: CursorKind
    endpoint_id: str
    name: str
    count: int  # removed by this prune
    total: int  # removed before this cursor's owner got them, since the cursor was created


@dataclass(frozen=True, slots=True)
class RequestAdded:
    request: CapturedRequest

    @property
    def endpoint_id(self) -> str:
        return self.request.endpoint_id


@dataclass(frozen=True, slots=True)
class RequestsRemoved:
    """Requests of one endpoint are gone. ids is None when the endpoint was cleared (every request up to the
    time of the commit); `skipped` lists the cursors a prune passed over (retention ceiling)."""

    endpoint_id: str
    ids: tuple[int, ...] | None
    reason: RemovalReason
    skipped: tuple[Skipped, ...] = ()


@dataclass(frozen=True, slots=True)
class EndpointChanged:
    """An endpoint was created or its settings changed; `endpoint` is the committed value."""

    endpoint: Endpoint

    @property
    def endpoint_id(self) -> str:
        return self.endpoint.id


@dataclass(frozen=True, slots=True)
class EndpointDeleted:
    endpoint_id: str


@dataclass(frozen=True, slots=True)
class DeliveryRecorded:
    """A delivery row was inserted or updated (an attempt, a final outcome, a manual retry)."""

    delivery: Delivery

    @property
    def endpoint_id(self) -> str:
        return self.delivery.endpoint_id


@dataclass(frozen=True, slots=True)
class Verdict:
    request_id: int
    status: VerdictStatus
    reason: str


@dataclass(frozen=True, slots=True)
class VerdictsChanged:
    """Signature verdicts of some of an endpoint's requests were re-checked (its verification settings changed)."""

    endpoint_id: str
    verdicts: tuple[Verdict, ...]


Event = RequestAdded | RequestsRemoved | EndpointChanged | EndpointDeleted | DeliveryRecorded | VerdictsChanged


class EventSink(Protocol):
    """Where a store sends its events. `emit` runs on the event loop inside the store's after-commit step: it
    must not block, await or raise."""

    def emit(self, event: Event) -> None: ...
