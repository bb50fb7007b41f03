"""EventBus: the one in-process path from a committed change to everything that reacts to it.

The store is the only publisher (`emit`, from its after-commit step, in commit order). Two ways to receive:

- Listeners (`listen`) are plain functions called synchronously inside `emit`, so they run in the store's
  after-commit step, before the writing call's caller resumes and before any queue subscriber sees the event.
  They exist only for reactions that must be in place by then (a passthrough waiter must exist before any
  deliverer can see the capture; forward workers start and stop with their endpoint's settings). A listener must
  not block, await or raise (a raising one is logged and skipped), and the order listeners run in does not
  matter: none of them sees the effect of another.
- Subscriptions (`subscribe`) are bounded per-subscriber queues of one endpoint's events, for everything else
  (live pages, `wait`, forwarders, relays, the smee stream). `emit` never blocks and never waits on a subscriber:
  a subscriber whose queue is full is evicted (its `get` raises SubscriptionEvicted, at once if it is waiting),
  so a slow or dead consumer can never slow capture or the others. An evicted consumer resynchronises from the
  database by request id, which is exact because ids are monotonic and never reused.

A subscription may ask for some event types only, and gets request bodies only when it asks for them: a browser
queue of 1,000 events never pins 1,000 bodies. Even with bodies, RequestAdded carries a body only up to
INLINE_BODY_MAX (the store leaves larger ones out).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace

from app.events.types import Event, RequestAdded

log = logging.getLogger("hookscope.events")

DEFAULT_QUEUE = 1000

Listener = Callable[[Event], None]
EventKinds = tuple[type[Event], ...]


class SubscriptionEvicted(Exception):
    """The subscriber fell behind and lost events: it resynchronises from the database and subscribes again."""


class _Evicted:
    """The wake-up marker put into an evicted subscriber's emptied queue."""


_EVICTED = _Evicted()


class Subscription:
    """One consumer's queue of one endpoint's events. Close it (or use `with`) when done."""

    def __init__(self, bus: EventBus, endpoint_id: str, kinds: EventKinds | None, bodies: bool, maxsize: int) -> None:
        self.bus = bus
        self.endpoint_id = endpoint_id
        self.kinds = kinds
        self.bodies = bodies
        self.queue: asyncio.Queue[Event | _Evicted] = asyncio.Queue(maxsize=maxsize)
        self.evicted = False

    async def get(self) -> Event:
        """The next event, in emit order; raises SubscriptionEvicted once this subscriber fell behind."""
        if self.evicted:
            raise SubscriptionEvicted()
        item = await self.queue.get()
        if isinstance(item, _Evicted):
            raise SubscriptionEvicted()
        return item

    def ready(self) -> bool:
        """Whether `get` returns without waiting (an event or the eviction is queued)."""
        return self.evicted or not self.queue.empty()

    def wants(self, event: Event) -> bool:
        return self.kinds is None or isinstance(event, self.kinds)

    def close(self) -> None:
        """Stop receiving; idempotent."""
        self.bus._remove(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventBus:
    """Implements EventSink (app/events/types.py) for the store; see the module docstring for the contract."""

    def __init__(self, queue_size: int = DEFAULT_QUEUE) -> None:
        self.queue_size = queue_size
        self._listeners: list[Listener] = []
        self._subs: dict[str, set[Subscription]] = {}
        self.evictions = 0

    def listen(self, listener: Listener) -> None:
        """Call `listener(event)` for every event, synchronously inside `emit`, before any subscriber gets it.

        Only for reactions that must happen before the write's caller resumes; the listener must not block or
        raise, and must not depend on running before or after another listener.
        """
        self._listeners.append(listener)

    def subscribe(
        self,
        endpoint_id: str,
        *,
        kinds: EventKinds | None = None,
        bodies: bool = False,
        maxsize: int | None = None,
    ) -> Subscription:
        """Queue the endpoint's events from now on: those of `kinds` (all when None), RequestAdded with its inline
        body only when `bodies` is true. Whatever commits after this call returns is in the queue."""
        sub = Subscription(self, endpoint_id, kinds, bodies, maxsize or self.queue_size)
        self._subs.setdefault(endpoint_id, set()).add(sub)
        return sub

    def emit(self, event: Event) -> None:
        """Listeners first, then every subscriber of the event's endpoint that wants it. Never blocks or raises."""
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:  # a bug in one reaction must not cost the others (or the writer) this event
                log.exception("event listener %r failed on %s", listener, type(event).__name__)
        subs = self._subs.get(event.endpoint_id)
        if not subs:
            return
        summary: Event | None = None
        for sub in list(subs):
            if not sub.wants(event):
                continue
            item = event
            if not sub.bodies and isinstance(event, RequestAdded) and event.request.body is not None:
                if summary is None:  # one copy for all summary subscribers
                    summary = RequestAdded(replace(event.request, body=None))
                item = summary
            try:
                sub.queue.put_nowait(item)
            except asyncio.QueueFull:
                self._evict(sub)

    def subscriber_count(self, endpoint_id: str) -> int:
        return len(self._subs.get(endpoint_id, ()))

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
        sub.queue.put_nowait(_EVICTED)

    def _remove(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.endpoint_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.endpoint_id]
