"""Committed captures with their bodies, for the forwarders and relays: subscribe, backfill, stream.

The browser hub carries summaries only; delivery needs the bytes. This feed publishes each committed capture
with its inline body when small (so a caught-up forwarder never touches the database), and `follow` yields an
endpoint's requests after a cursor in id order: it subscribes first, backfills from the database, then streams,
skipping ids already yielded; when its queue overflows (a slow consumer), it drops back to the database. Ids are
monotonic, so the catch-up is exact.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

from app.events.hub import Hub, SubscriptionEvicted
from app.models import CapturedRequest
from app.store.base import Store

FEED_BODY_MAX = 64 * 1024
BACKFILL_BATCH = 500


def topic(endpoint_id: str) -> str:
    return f"feed:{endpoint_id}"


class CaptureFeed:
    def __init__(self, store: Store, queue_size: int = 512) -> None:
        self.store = store
        self.hub = Hub(queue_size)

    def publish(self, req: CapturedRequest) -> None:
        """Store listener: runs after COMMIT, in id order."""
        if self.hub.subscriber_count(topic(req.endpoint_id)) == 0:
            return
        if req.body is not None and len(req.body) > FEED_BODY_MAX:
            req = replace(req, body=None)  # body_of() reloads it; queues must not pin large bodies
        self.hub.publish(topic(req.endpoint_id), req)

    async def follow(self, endpoint_id: str, after: int) -> AsyncIterator[CapturedRequest]:
        """Every request of the endpoint with id > after, in order, forever (until the consumer stops)."""
        while True:
            sub = self.hub.subscribe(topic(endpoint_id))
            try:
                while True:
                    rows = await self.store.requests_after(endpoint_id, after, BACKFILL_BATCH)
                    for row in rows:
                        yield row
                        after = row.id
                    if len(rows) < BACKFILL_BATCH:
                        break
                while True:
                    try:
                        req: CapturedRequest = await sub.get()
                    except SubscriptionEvicted:
                        break  # fell behind: back to the database
                    if req.id <= after:
                        continue
                    yield req
                    after = req.id
            finally:
                sub.close()

    async def body_of(self, req: CapturedRequest) -> bytes:
        if req.body is not None:
            return req.body
        if req.body_file is not None:
            return await self.store.load_body(req)
        if req.body_size == 0 or req.rejected:
            return b""
        full = await self.store.get_request(req.id)
        return full.body or b"" if full is not None else b""
