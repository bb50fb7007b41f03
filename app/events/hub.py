"""In-process fan-out of committed events to live subscribers (browser pages, relays, waiters).

`publish` never blocks and never waits on a subscriber: it puts the event into each subscriber's bounded
queue, and a subscriber whose queue is full is evicted (its `evicted` flag set, its queue woken) so that a slow
or dead client can never slow capture or other clients. An evicted client resynchronises from the database by
id, which is exact because ids are monotonic.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

DEFAULT_QUEUE = 1000


class Subscription:
    def __init__(self, hub: Hub, topic: str, maxsize: int) -> None:
        self.hub = hub
        self.topic = topic
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=maxsize)
        self.evicted = False

    async def get(self) -> Any:
        """Next event; raises SubscriptionEvicted once this subscriber fell behind."""
        if self.evicted:
            raise SubscriptionEvicted()
        item = await self.queue.get()
        if item is _EVICT:
            raise SubscriptionEvicted()
        return item

    def close(self) -> None:
        self.hub._remove(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SubscriptionEvicted(Exception):
    pass


_EVICT = object()


class Hub:
    def __init__(self, queue_size: int = DEFAULT_QUEUE) -> None:
        self.queue_size = queue_size
        self._subs: dict[str, set[Subscription]] = defaultdict(set)
        self.evictions = 0

    def subscribe(self, topic: str, maxsize: int | None = None) -> Subscription:
        sub = Subscription(self, topic, maxsize or self.queue_size)
        self._subs[topic].add(sub)
        return sub

    def publish(self, topic: str, event: Any) -> None:
        subs = self._subs.get(topic)
        if not subs:
            return
        for sub in list(subs):
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                self._evict(sub)

    def subscriber_count(self, topic: str) -> int:
        return len(self._subs.get(topic, ()))

    def _evict(self, sub: Subscription) -> None:
        self.evictions += 1
        sub.evicted = True
        self._remove(sub)
        # Make room for the wake-up marker so a waiting consumer notices at once.
        while True:
            try:
                sub.queue.get_nowait()
            except asyncio.QueueEmpty:
                break
        sub.queue.put_nowait(_EVICT)

    def _remove(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.topic)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.topic]
