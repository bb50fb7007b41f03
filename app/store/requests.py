"""The request part of the store contract: captures, their bodies, and the queries over them."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Literal

from app.models import CapturedRequest, NewRequest
from app.providers.types import VerdictStatus

VerificationStatus = Literal["valid", "invalid", "unconfigured"]


@dataclass(frozen=True, slots=True)
class RequestQuery:
    """Filters for listing requests of one endpoint. `before` and `after` are seqs (positions in the endpoint,
    exclusive): `before` pages backwards (newest first); `after` catches up (oldest first)."""

    before: int | None = None
    after: int | None = None
    limit: int = 50
    methods: tuple[str, ...] = ()
    text: str | None = None
    provider: str | None = None
    verification: VerificationStatus | None = None
    duplicate: bool | None = None
    # Load bodies up to the backend's inline size too; larger bodies stay None (load_body / iter_body read them).
    with_body: bool = False

    @property
    def ascending(self) -> bool:
        return self.after is not None and self.before is None


class BodySpool(abc.ABC):
    """Where a large body is written while it arrives, before its request exists. The capture path writes it,
    finish()es it and hands it to add_request inside a NewRequest; the store then owns it. A spool that never
    reaches a committed request must be discard()ed (a backend may also sweep leftovers at start-up)."""

    @abc.abstractmethod
    async def write(self, chunk: bytes) -> None:
        """Append a chunk; raises OSError when the storage takes no more (the spool keeps what it wrote until
        discard()). Async because a backend may send chunks over the network as they arrive (PostgreSQL)."""

    @abc.abstractmethod
    async def finish(self) -> None:
        """Make the written bytes durable; after it returns, add_request may reference the spool."""

    @abc.abstractmethod
    async def read(self) -> bytes:
        """The whole body (after finish)."""

    @abc.abstractmethod
    def discard(self) -> None:
        """Remove what was written; never raises."""


class RequestStore(abc.ABC):
    @abc.abstractmethod
    def add_request(self, new: NewRequest) -> Awaitable[CapturedRequest]:
        """Queue a capture; the awaitable completes after COMMIT with the request, its id and its seq.

        The id is unique across the store and never reused. The seq is allocated inside the writing transaction:
        within the endpoint it is >= 1, strictly increasing in COMMIT order and never reused (gaps allowed), so a
        reader that saw seq N and later reads "seq > N" misses nothing. Raises StoreBusy at once (not from
        the awaitable) when the write queue is full and StoreClosed when the store is closing; the awaitable
        raises NotFound when the endpoint does not exist (deleted meanwhile). A capture that was not stored does
        not own its spool: the caller discards it.
        """

    @abc.abstractmethod
    async def get_request(self, request_id: int) -> CapturedRequest | None:
        """The request with its body when the backend holds it inline (small bodies); else body None."""

    @abc.abstractmethod
    async def load_body(self, request: CapturedRequest) -> bytes:
        """The whole body: `request.body` when loaded, else read from storage by request id.

        Raises BodyMissing when the request was deleted or its stored body is gone, cut short or unreadable.
        """

    @abc.abstractmethod
    async def iter_body(self, request: CapturedRequest) -> AsyncIterator[bytes]:
        """Open the body for reading in chunks, without loading a large body into memory.

        Awaiting this opens the body and raises BodyMissing (as load_body) there, before a handler starts a
        response, so a reader never gets a truncated 200; iterating the result then reads it.
        """

    @abc.abstractmethod
    async def list_requests(self, endpoint_id: str, query: RequestQuery) -> list[CapturedRequest]:
        """At most query.limit requests of the endpoint matching the filters, in seq order: newest first (oldest
        first when only `after` is given)."""

    @abc.abstractmethod
    async def requests_after(self, endpoint_id: str, after_seq: int, limit: int) -> list[CapturedRequest]:
        """The endpoint's requests with seq > after_seq, in seq order, with inline bodies loaded (large bodies via
        load_body)."""

    @abc.abstractmethod
    async def count_requests_after(self, endpoint_id: str, after_seq: int) -> int:
        """How many deliverable (not rejected) requests of the endpoint have seq > after_seq."""

    @abc.abstractmethod
    async def last_seq(self, endpoint_id: str) -> int:
        """The largest seq ever assigned in the endpoint, 0 when none (or no such endpoint). It never goes down,
        not even when that request is deleted: a cursor above it means the database was replaced."""

    @abc.abstractmethod
    async def delete_request(self, request_id: int) -> bool:
        """Delete the request, its body and its deliveries; returns after COMMIT whether it existed."""

    @abc.abstractmethod
    async def clear_requests(self, endpoint_id: str) -> int:
        """Delete every request of the endpoint; returns after COMMIT how many there were."""

    @abc.abstractmethod
    async def update_verdicts(self, verdicts: list[tuple[int, VerdictStatus, str]]) -> None:
        """Store recomputed signature verdicts: (request id, status, reason); returns after COMMIT. Ids that no
        longer exist are ignored."""

    @abc.abstractmethod
    def new_spool(self) -> BodySpool:
        """A spool for a body too large to hold in memory while it streams in; raises OSError when the storage
        cannot take it."""
