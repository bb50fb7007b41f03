"""The interface every storage backend implements. Handlers depend on this, never on SQLite."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from app.delivery.records import Delivery, DeliveryUpdate
from app.models import CapturedRequest, Endpoint, EndpointStats, NewRequest, ResponseSpec

RequestListener = Callable[[CapturedRequest], None]
# Called after COMMIT with the endpoint id and its new value (None when deleted).
EndpointListener = Callable[[str, Endpoint | None], None]
# Who a cursor belongs to: a named relay (`hookscope forward`) or a forward target (its URL).
CursorKind = Literal["relay", "forward"]


def default_retention_ceiling(retention_count: int) -> int:
    """The ceiling when none is configured: 10x the count cap, or 100,000 without one (Settings mirrors this)."""
    return 10 * retention_count if retention_count > 0 else 100_000


@dataclass(frozen=True, slots=True)
class Skipped:
    """Captures one prune removed while a relay or forward target still owed them (past the ceiling)."""

    kind: CursorKind
    endpoint_id: str
    name: str
    count: int  # removed by this prune
    total: int  # removed before this cursor's owner got them, since the cursor was created


@dataclass(frozen=True, slots=True)
class PruneResult:
    removed: int
    skipped: tuple[Skipped, ...] = ()


@dataclass(frozen=True, slots=True)
class RequestQuery:
    """Filters for listing requests. `before` pages backwards (newest first); `after` catches up (oldest first)."""

    before: int | None = None
    after: int | None = None
    limit: int = 50
    methods: tuple[str, ...] = ()
    text: str | None = None
    provider: str | None = None
    verification: str | None = None  # "valid" | "invalid" | "unconfigured"
    duplicate: bool | None = None
    with_body: bool = False  # load inline bodies too (file bodies still need load_body)

    @property
    def ascending(self) -> bool:
        return self.after is not None and self.before is None


class Store(abc.ABC):
    """Durable storage of endpoints and captured requests.

    Every mutating method returns after COMMIT. Committed requests are announced to the listeners registered
    with `on_request`, in id order, after the commit and before the mutating call returns.
    """

    @abc.abstractmethod
    async def open(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    def on_request(self, listener: RequestListener) -> None: ...

    # endpoints
    @abc.abstractmethod
    def cached_endpoint(self, endpoint_id: str) -> Endpoint | None:
        """The endpoint from memory, without I/O: the ingest path calls this for every request."""

    @abc.abstractmethod
    async def create_endpoint(self, name: str, response: ResponseSpec, options: dict[str, Any]) -> Endpoint: ...

    @abc.abstractmethod
    async def update_endpoint(
        self,
        endpoint_id: str,
        *,
        name: str | None = None,
        response: ResponseSpec | None = None,
        options: dict[str, Any] | None = None,
    ) -> Endpoint | None: ...

    @abc.abstractmethod
    async def delete_endpoint(self, endpoint_id: str) -> bool: ...

    @abc.abstractmethod
    async def list_endpoints(self) -> list[tuple[Endpoint, EndpointStats]]: ...

    @abc.abstractmethod
    async def endpoint_stats(self, endpoint_id: str) -> EndpointStats: ...

    # requests
    @abc.abstractmethod
    def add_request(self, new: NewRequest) -> Awaitable[CapturedRequest]:
        """Queue a capture; the awaitable completes after COMMIT.

        Raises WriterOverloaded at once (not from the awaitable) when the write queue is full.
        """

    @abc.abstractmethod
    async def get_request(self, request_id: int) -> CapturedRequest | None: ...

    @abc.abstractmethod
    async def load_body(self, request: CapturedRequest) -> bytes: ...

    @abc.abstractmethod
    def iter_body(self, request: CapturedRequest) -> AsyncIterator[bytes]:
        """The body in chunks, without loading a large body into memory."""

    @abc.abstractmethod
    async def list_requests(self, endpoint_id: str, query: RequestQuery) -> list[CapturedRequest]: ...

    @abc.abstractmethod
    async def delete_request(self, request_id: int) -> bool: ...

    @abc.abstractmethod
    async def clear_requests(self, endpoint_id: str) -> int: ...

    @abc.abstractmethod
    async def update_verdicts(self, verdicts: list[tuple[int, str, str]]) -> None:
        """Store recomputed signature verdicts: (request id, status, reason)."""

    @abc.abstractmethod
    async def prune(self, now: float, ceiling: int | None = None) -> PruneResult:
        """Apply retention (count cap and max age) per endpoint; returns after COMMIT.

        A capture still owed (id above the acked_id of a relay cursor, or of a forward cursor whose target is
        still configured; rejected records owe nothing) is kept even when the cap or age would remove it, as
        long as the endpoint holds at most `ceiling` captures (None: default_retention_ceiling). Past the
        ceiling the oldest owed captures go, and each cursor's `skipped` count grows, in the same transaction,
        by those it had not acknowledged; the result lists these increments.
        """

    # body spooling, used by the capture path while a body streams in
    @abc.abstractmethod
    def new_spool(self) -> BodySpool: ...

    # forwarding: endpoint changes, catch-up reads, deliveries and durable cursors
    @abc.abstractmethod
    def on_endpoint(self, listener: EndpointListener) -> None: ...

    @abc.abstractmethod
    async def requests_after(self, endpoint_id: str, after: int, limit: int) -> list[CapturedRequest]:
        """Requests with id > after, oldest first, with inline bodies loaded (file bodies via load_body)."""

    @abc.abstractmethod
    async def count_requests_after(self, endpoint_id: str, after: int) -> int: ...

    @abc.abstractmethod
    async def last_request_id(self) -> int:
        """The largest request id ever assigned (ids are never reused), 0 when none."""

    @abc.abstractmethod
    def record_delivery(self, update: DeliveryUpdate, cursor: tuple[str, str, int] | None = None) -> Awaitable[int]:
        """Insert or update a delivery row and, in the same transaction, advance the cursor (kind, name, id)
        of update.endpoint_id to at least id. The write is queued at once (in call order); the awaitable gives
        the delivery id after COMMIT, or 0 when the request no longer exists (pruned or deleted while it was
        being delivered): then no delivery row is written but the cursor still moves."""

    @abc.abstractmethod
    async def get_delivery(self, delivery_id: int) -> Delivery | None: ...

    @abc.abstractmethod
    async def list_deliveries(self, request_id: int) -> list[Delivery]: ...

    @abc.abstractmethod
    async def get_cursor(self, kind: str, endpoint_id: str, name: str) -> int | None: ...

    @abc.abstractmethod
    async def set_cursor(self, kind: str, endpoint_id: str, name: str, acked_id: int, force: bool = False) -> int:
        """Advance the cursor to acked_id (or set it exactly when force); returns the stored value."""

    @abc.abstractmethod
    async def list_cursors(self, endpoint_id: str, kind: str) -> list[tuple[str, int, float]]:
        """(name, acked_id, updated_at) of every cursor of that kind on the endpoint."""

    @abc.abstractmethod
    async def delete_cursor(self, kind: str, endpoint_id: str, name: str) -> bool: ...

    @abc.abstractmethod
    async def skipped_counts(self, endpoint_id: str, kind: CursorKind) -> dict[str, int]:
        """Cursor name -> captures retention pruned before that relay / forward target acknowledged them."""


class BodySpool(abc.ABC):
    """Where a large body is written while it arrives. finish() makes it durable; discard() removes it."""

    name: str

    @abc.abstractmethod
    def write(self, chunk: bytes) -> None: ...

    @abc.abstractmethod
    async def finish(self) -> None: ...

    @abc.abstractmethod
    async def read(self) -> bytes:
        """The whole body (after finish)."""

    @abc.abstractmethod
    def discard(self) -> None: ...
