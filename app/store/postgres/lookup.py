"""Finding an endpoint another instance created before this one heard of it (EndpointStore.find_endpoint).

An instance learns of other instances' new endpoints from the doorbell (milliseconds) or, after a lost ring, the
periodic resync (seconds). A sender that got an endpoint's URL from one instance and posts to another through the
load balancer may come in between: the capture path then asks here once instead of answering 404.

Bounded, because ingest is public and ids are cheap to invent:
- only ids of the endpoint alphabet are looked up (anything else cannot exist: new_endpoint_id());
- one read at a time per id (concurrent misses of one id share it);
- a miss is remembered for MISS_SECONDS (at most MAX_MISSES ids, oldest forgotten first), so a sender retrying an
  unknown id costs no query;
- at most RATE reads a second (a token bucket of BURST): past that, a miss is a 404 without a query. A real new
  endpoint is known through the doorbell a few milliseconds later anyway; the bucket only stops a scan of random
  ids from turning into a query per request.

What a read finds goes into the store's cache only when the fan-out has not told this instance about the endpoint
meanwhile (its value is at least as new) and has not told of its deletion during the read (the row read may be
older than the deletion): `deleted` is the store's call for each EndpointDeleted it publishes.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable

from app.models import Endpoint

MISS_SECONDS = 2.0
MAX_MISSES = 4096
RATE = 50.0
BURST = 50.0
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class EndpointLookup:
    """`read(id)` reads the committed row (None when there is none); `cached(id)` and `remember(ep)` are the
    store's endpoint cache. Runs on the store's event loop."""

    def __init__(
        self,
        read: Callable[[str], Awaitable[Endpoint | None]],
        cached: Callable[[str], Endpoint | None],
        remember: Callable[[Endpoint], None],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._cached = cached
        self._remember = remember
        self._clock = clock
        self._misses: dict[str, float] = {}  # id -> when the miss stops counting
        self._reading: dict[str, asyncio.Future[Endpoint | None]] = {}
        self._deleted_while_reading: set[str] = set()
        self._tokens = BURST
        self._refilled = clock()
        self.reads = 0  # queries made, for tests and diagnostics

    def deleted(self, endpoint_id: str) -> None:
        """The store published EndpointDeleted for it: a read in flight must not bring it back into the cache."""
        if endpoint_id in self._reading:
            self._deleted_while_reading.add(endpoint_id)

    async def find(self, endpoint_id: str) -> Endpoint | None:
        """The cached endpoint, else (within the bounds above) the committed row, cached. Raises what `read`
        raises (the database is away)."""
        ep = self._cached(endpoint_id)
        if ep is not None or _ID.fullmatch(endpoint_id) is None:
            return ep
        pending = self._reading.get(endpoint_id)
        if pending is not None:
            return await asyncio.shield(pending)
        now = self._clock()
        if self._recently_missed(endpoint_id, now) or not self._take_token(now):
            return None
        fut: asyncio.Future[Endpoint | None] = asyncio.get_running_loop().create_future()
        self._reading[endpoint_id] = fut
        try:
            self.reads += 1
            found = await self._read(endpoint_id)
            deleted = endpoint_id in self._deleted_while_reading
            if found is None or deleted:
                self._miss(endpoint_id)
                found = None
            elif self._cached(endpoint_id) is None:
                self._remember(found)
            else:
                found = self._cached(endpoint_id)
            fut.set_result(found)
            return found
        except asyncio.CancelledError:
            fut.set_result(None)  # the sharers are not cancelled: to them the endpoint is unknown for now
            raise
        except Exception as exc:
            fut.set_exception(exc)
            # Sharers see the failure; there may be none, so mark it retrieved (asyncio would log it otherwise).
            fut.exception()
            raise
        finally:
            del self._reading[endpoint_id]
            self._deleted_while_reading.discard(endpoint_id)

    def _recently_missed(self, endpoint_id: str, now: float) -> bool:
        until = self._misses.get(endpoint_id)
        if until is None:
            return False
        if until > now:
            return True
        del self._misses[endpoint_id]
        return False

    def _miss(self, endpoint_id: str) -> None:
        self._misses.pop(endpoint_id, None)  # re-inserted at the end: insertion order is expiry order
        while len(self._misses) >= MAX_MISSES:
            del self._misses[next(iter(self._misses))]
        self._misses[endpoint_id] = self._clock() + MISS_SECONDS

    def _take_token(self, now: float) -> bool:
        self._tokens = min(BURST, self._tokens + (now - self._refilled) * RATE)
        self._refilled = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True
