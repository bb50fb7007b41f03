"""The endpoint part of the store contract: endpoints and their settings, with an in-memory read for ingest."""

from __future__ import annotations

import abc

from app.endpoint_settings import EndpointSettings
from app.models import Endpoint, EndpointStats, ResponseSpec


class EndpointStore(abc.ABC):
    @abc.abstractmethod
    def cached_endpoint(self, endpoint_id: str) -> Endpoint | None:
        """The endpoint from memory, without I/O: the ingest path calls this for every request. Reflects every
        committed create, update and delete by the time the mutating call returns."""

    @abc.abstractmethod
    async def find_endpoint(self, endpoint_id: str) -> Endpoint | None:
        """The endpoint, from the cache when it is there (no I/O). Entry points that may name an endpoint this
        instance has not heard of yet (capture, pages, the API, the live and relay sockets) call this. A store that
        is the only writer of its storage answers from memory (its cache is complete). A store shared by several
        instances may read the storage once for an endpoint another instance created, and keeps what it finds in
        the cache; it bounds those reads (a flood of unknown ids must not become a flood of queries), so None
        means "unknown here, now", not "never existed". Never raises for an unknown id."""

    @abc.abstractmethod
    async def create_endpoint(self, name: str, response: ResponseSpec, settings: EndpointSettings) -> Endpoint:
        """Returns the new endpoint after COMMIT."""

    @abc.abstractmethod
    async def update_endpoint(
        self,
        endpoint_id: str,
        *,
        name: str | None = None,
        response: ResponseSpec | None = None,
        settings: EndpointSettings | None = None,
    ) -> Endpoint | None:
        """Change the given fields; returns the committed value after COMMIT, or None when there is no such
        endpoint."""

    @abc.abstractmethod
    async def delete_endpoint(self, endpoint_id: str) -> bool:
        """Delete the endpoint with its requests, deliveries and cursors; returns after COMMIT whether it
        existed."""

    @abc.abstractmethod
    async def list_endpoints(self) -> list[tuple[Endpoint, EndpointStats]]:
        """Every endpoint, newest first, with its request count and last capture time."""

    @abc.abstractmethod
    async def endpoint_stats(self, endpoint_id: str) -> EndpointStats: ...
