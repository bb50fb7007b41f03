"""Delivery records queued to the store but not yet committed, shared by the forward workers and the relay server.

Workers do not wait for each record's COMMIT before the next delivery (the single writer commits them in order);
this keeps the queued writes so shutdown can flush them before the store closes, logs the ones that failed, and
makes a worker that runs far ahead of the writer wait for it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable

log = logging.getLogger("hookscope.forward")

MAX_PENDING = 256


class PendingWrites:
    def __init__(self, limit: int = MAX_PENDING) -> None:
        self.limit = limit
        self._writes: collections.deque[Awaitable[int]] = collections.deque()

    def track(self, write: Awaitable[int]) -> Awaitable[int]:
        """Keep a queued delivery write until it commits; drop (and log failures of) the committed ones."""
        while self._writes:
            head = self._writes[0]
            if not (isinstance(head, asyncio.Future) and head.done()):
                break
            self._writes.popleft()
            if not head.cancelled() and head.exception() is not None:
                log.error("recording a delivery failed: %s", head.exception())
        self._writes.append(write)
        return write

    async def backpressure(self) -> None:
        """Let the writer catch up when the queued writes pass the limit."""
        while len(self._writes) > self.limit:
            with contextlib.suppress(Exception):
                await self._writes.popleft()

    async def flush(self) -> None:
        """Returns once every tracked write has committed (or failed)."""
        while self._writes:
            with contextlib.suppress(Exception):
                await self._writes.popleft()
