"""Committed captures with their bodies, for forwarders, relays and the smee stream: subscribe, backfill, stream.

`follow` yields an endpoint's requests after a cursor (a seq) in seq order. It subscribes to the event bus's
RequestAdded events first (with bodies: the store inlines those up to INLINE_BODY_MAX, so a caught-up consumer
never touches the database for a small body), backfills from the database, then streams the queued events,
skipping seqs already yielded. When its queue overflows (a slow consumer) it is evicted and drops back to the
database. Seqs follow commit order within the endpoint, so the catch-up is exact.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from app.events.bus import EventBus, SubscriptionEvicted
from app.events.types import RequestAdded
from app.models import CapturedRequest
from app.store.base import Store

BACKFILL_BATCH = 500
QUEUE_SIZE = 512


class CaptureFeed:
    def __init__(self, store: Store, bus: EventBus, queue_size: int = QUEUE_SIZE) -> None:
        self.store = store
        self.bus = bus
        self.queue_size = queue_size

    async def follow(self, endpoint_id: str, after_seq: int) -> AsyncIterator[CapturedRequest]:
        """Every request of the endpoint with seq > after_seq, in seq order, forever (until the consumer stops)."""
        after = after_seq
        while True:
            sub = self.bus.subscribe(endpoint_id, kinds=(RequestAdded,), bodies=True, maxsize=self.queue_size)
            try:
                while True:
                    rows = await self.store.requests_after(endpoint_id, after, BACKFILL_BATCH)
                    for row in rows:
                        yield row
                        after = row.seq
                    if len(rows) < BACKFILL_BATCH:
                        break
                while True:
                    try:
                        event = await sub.get()
                    except SubscriptionEvicted:
                        break  # fell behind: back to the database
                    if not isinstance(event, RequestAdded) or event.request.seq <= after:
                        continue
                    yield event.request
                    after = event.request.seq
            finally:
                sub.close()

    async def body_of(self, req: CapturedRequest) -> bytes:
        """The request's body: the one it carries, else read from the store (b"" when the request is gone).
        Raises BodyMissing when its stored body cannot be read."""
        if req.body is not None:
            return req.body
        if req.body_size == 0 or req.rejected:
            return b""
        # Left out of the event (large) or not loaded: read the row, whose body the store loads when it can.
        full = await self.store.get_request(req.id)
        if full is None:
            return b""
        return await self.store.load_body(full)
