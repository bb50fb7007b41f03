"""The interface every storage backend implements. Handlers depend on this, never on SQLite."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from app.models import CapturedRequest, Endpoint, EndpointStats, NewRequest, ResponseSpec

RequestListener = Callable[[CapturedRequest], None]


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
    async def prune(self, now: float) -> int:
        """Apply retention (count cap and max age); returns how many requests were removed."""

    # body spooling, used by the capture path while a body streams in
    @abc.abstractmethod
    def new_spool(self) -> BodySpool: ...


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
