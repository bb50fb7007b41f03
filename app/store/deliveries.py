"""The delivery part of the store contract: one record per (request, way of delivering it), with its history."""

from __future__ import annotations

import abc
from collections.abc import Awaitable

from app.delivery.records import Delivery, DeliveryUpdate
from app.store.cursors import CursorAdvance


class DeliveryStore(abc.ABC):
    @abc.abstractmethod
    def record_delivery(self, update: DeliveryUpdate, cursor: CursorAdvance | None = None) -> Awaitable[int]:
        """Insert or update a delivery record and, in the same transaction, advance the cursor (kind, name, seq)
        of update.endpoint_id to at least seq (the seq of update.request_id, which the caller knows).

        A record is keyed by (request, kind, target, relay) except for replays, which insert a new record each
        time unless update.delivery_id names the record to update. Each write appends one entry to the record's
        history, which keeps at most MAX_HISTORY entries (the oldest go; `Delivery.history_dropped` counts them).
        The write is queued at once, in call order, and never shed (no StoreBusy: it waits for room); the
        awaitable gives the delivery id after COMMIT, or 0 when the request no longer exists (pruned or deleted
        while it was being delivered): then no record is written but the cursor still moves (unless the endpoint
        is gone too).
        """

    @abc.abstractmethod
    async def get_delivery(self, delivery_id: int) -> Delivery | None: ...

    @abc.abstractmethod
    async def list_deliveries(self, request_id: int) -> list[Delivery]:
        """The request's delivery records, oldest first."""
