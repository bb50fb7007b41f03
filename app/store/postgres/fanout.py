"""Fan-out across instances: every instance's bus gets every instance's events of an endpoint, exactly once, in
the endpoint's commit order.

Each instance keeps, per endpoint, ONE watermark `(seq, n)`: the highest request seq and the highest outbox change
number (changes.py) it has emitted. Every event has a place between two watermarks (`Placed.before` ->
`Placed.after`): a request moves `seq` from seq-1 to seq (with `n` as its transaction saw it under the endpoint's
row lock), a change moves `n` from n-1 to n (with `seq` as it saw it). So:

- A local commit whose `before` is exactly the watermark is emitted at once, from the writer's after-commit
  step, as on a single instance. When the watermark is behind `before`, another instance committed in between
  and that was not emitted yet: a catch-up reads the gap (and the local item with it) from the database, and the
  local write's awaitable completes once the watermark has passed it (`settled`). When the watermark is already
  past `after`, a catch-up emitted it first.
- A ring from another instance (doorbell.py), and every resync, schedules a catch-up of the endpoint: one
  REPEATABLE READ snapshot of requests with seq and changes with n above the watermark, merged in commit order (a
  change follows the requests up to its recorded seq and precedes the later ones), emitted, and the watermark set
  to the endpoint's counters in that snapshot (so deleted rows leave no hole to wait for). Catch-ups of one
  endpoint run one at a time; a ring during one makes it read again.

Emitting is synchronous (no await between reading a watermark and moving it), so a local commit and a catch-up
never interleave inside one emission. Each catch-up and the resync are tasks this object owns; `stop` cancels and
awaits them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg

from app.events.types import INLINE_BODY_MAX, EndpointChanged, EndpointDeleted, Event, RequestAdded
from app.store.postgres.changes import Placed, decode, read_deliveries
from app.store.postgres.doorbell import RequestsCommitted, ResyncReason, Ring
from app.store.postgres.rows import SUMMARY_COLUMNS, row_to_endpoint, row_to_request

log = logging.getLogger("hookscope.fanout")

Mark = tuple[int, int]  # (highest seq, highest change n) emitted on this instance
PAGE = 500
# Catch-ups share the store's small read pool with the API: at most this many read at once.
READING = 2


@dataclass(eq=False, slots=True)
class _Tail:
    mark: Mark
    # False for an endpoint first heard of in a ring: this instance has not seen its row yet.
    known: bool
    task: asyncio.Task[None] | None = None
    again: bool = False
    waiters: list[tuple[Mark, asyncio.Future[None]]] = field(default_factory=list)


def _reached(mark: Mark, target: Mark) -> bool:
    return mark[0] >= target[0] and mark[1] >= target[1]


def _bytes(value: object) -> bytes | None:
    return bytes(value) if isinstance(value, bytes | bytearray | memoryview) else None


class Fanout:
    """`publish(event)` is the store's one way to emit (it keeps the endpoint cache and strips large bodies); it
    must not block or raise. `pool()` gives the read pool."""

    def __init__(self, pool: Callable[[], asyncpg.Pool], publish: Callable[[Event], None]) -> None:
        self._pool = pool
        self._publish = publish
        self._tails: dict[str, _Tail] = {}
        self._ready = False
        self._closed = False
        self._heard_early: set[str] = set()
        self._reading = asyncio.Semaphore(READING)
        self._resync_task: asyncio.Task[None] | None = None
        self._resync_again = False
        self.catch_ups = 0  # finished catch-up reads, for tests and diagnostics

    # start and stop ------------------------------------------------------------------------------------------
    def track(self, endpoint_id: str, mark: Mark) -> None:
        """At open: the endpoint as loaded, everything up to `mark` counted as emitted (it predates this store)."""
        self._tails[endpoint_id] = _Tail(mark, known=True)

    def ready(self) -> None:
        """Loading is done: catch up the endpoints rings named meanwhile."""
        self._ready = True
        for endpoint_id in sorted(self._heard_early):
            self._schedule(endpoint_id)
        self._heard_early.clear()

    async def stop(self) -> None:
        """Cancel and await every catch-up and the resync; complete every waiter (its write did commit). No event
        is emitted after this returns, except by local commits the writer still drains (in order, or not at all)."""
        self._closed = True
        tasks = [t.task for t in self._tails.values() if t.task is not None]
        if self._resync_task is not None:
            tasks.append(self._resync_task)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        for tail in self._tails.values():
            _release(tail.waiters)

    # local commits -------------------------------------------------------------------------------------------
    def local(self, placed: Placed) -> None:
        """A commit of this instance, from the writer's after-commit step: emitted now when nothing another
        instance committed before it is still unemitted, else left to a catch-up (see `settled`)."""
        tail = self._tails.get(placed.endpoint_id)
        if tail is None:
            if self._closed:
                return
            # Created here (its creation is n=1 from (0, 0)), or known only from the database so far.
            tail = self._tails[placed.endpoint_id] = _Tail((0, 0), known=True)
        if _reached(tail.mark, placed.after):
            return  # a catch-up read it from the database first
        if tail.mark == placed.before:
            self._emit(placed.endpoint_id, tail, placed.event, placed.after)
        elif not self._closed:
            self._schedule(placed.endpoint_id)

    def settled(self, endpoint_id: str, target: Mark) -> asyncio.Future[None] | None:
        """None when this instance has emitted everything of the endpoint up to `target` (or the endpoint is gone,
        or the store closed); else a future completed once it has."""
        tail = self._tails.get(endpoint_id)
        if tail is None or self._closed or _reached(tail.mark, target):
            return None
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        tail.waiters.append((target, fut))
        return fut

    # the doorbell's callbacks --------------------------------------------------------------------------------
    def on_ring(self, ring: Ring) -> None:
        if isinstance(ring, RequestsCommitted):
            tail = self._tails.get(ring.endpoint_id)
            if tail is not None and tail.mark[0] >= ring.seq:
                return  # already emitted (our own catch-up read it before the ring came)
        self._schedule(ring.endpoint_id)

    def resync(self, reason: ResyncReason) -> None:
        """Re-read every endpoint whose counters moved past this instance's watermarks, and those gone."""
        if not self._ready or self._closed:
            return
        if self._resync_task is not None:
            self._resync_again = True
            return
        log.debug("fan-out resync (%s)", reason)
        self._resync_task = asyncio.create_task(self._resync(), name="hookscope fan-out resync")

    async def _resync(self) -> None:
        try:
            while True:
                self._resync_again = False
                rows = await self._pool().fetch("SELECT id, next_seq, next_change FROM endpoints")
                present = set()
                for row in rows:
                    present.add(row["id"])
                    tail = self._tails.get(row["id"])
                    if tail is None or not _reached(tail.mark, (int(row["next_seq"]), int(row["next_change"]))):
                        self._schedule(row["id"])
                for endpoint_id in [e for e in self._tails if e not in present]:
                    self._schedule(endpoint_id)  # deleted: the catch-up tells
                if not self._resync_again:
                    return
        except Exception as exc:  # the database is away: the next periodic resync tries again
            log.warning("fan-out resync failed: %r", exc)
        finally:
            self._resync_task = None

    # catch-up --------------------------------------------------------------------------------------------------
    def _schedule(self, endpoint_id: str) -> None:
        if self._closed:
            return
        if not self._ready:
            self._heard_early.add(endpoint_id)
            return
        tail = self._tails.get(endpoint_id)
        if tail is None:
            tail = self._tails[endpoint_id] = _Tail((0, 0), known=False)
        if tail.task is not None:
            tail.again = True
            return
        tail.task = asyncio.create_task(self._catch_up(endpoint_id, tail), name=f"hookscope catch-up {endpoint_id}")

    async def _catch_up(self, endpoint_id: str, tail: _Tail) -> None:
        try:
            while True:
                tail.again = False
                try:
                    async with self._reading:
                        more = await self._read_and_emit(endpoint_id, tail)
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    # Waiters wait for the next ring or periodic resync; the watermark has not moved.
                    log.warning("fan-out catch-up of %s failed: %r", endpoint_id, exc)
                    return
                self.catch_ups += 1
                if self._tails.get(endpoint_id) is not tail or not (more or tail.again):
                    return
        finally:
            tail.task = None

    async def _read_and_emit(self, endpoint_id: str, tail: _Tail) -> bool:
        """One snapshot's worth; returns whether a page was full (read again)."""
        seq, n = tail.mark
        async with self._pool().acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            head = await conn.fetchrow(
                "SELECT id, name, created_at, response, options, next_seq, next_change FROM endpoints WHERE id = $1",
                endpoint_id,
            )
            reqs: list[asyncpg.Record] = []
            if head is None or int(head["next_seq"]) > seq:
                reqs = await conn.fetch(
                    f"SELECT {SUMMARY_COLUMNS}, CASE WHEN octet_length(body) <= $3 THEN body END AS body"
                    f" FROM requests WHERE endpoint_id = $1 AND seq > $2 ORDER BY seq LIMIT {PAGE}",
                    endpoint_id, seq, INLINE_BODY_MAX,
                )
            chs: list[asyncpg.Record] = []
            if head is None or int(head["next_change"]) > n:
                chs = await conn.fetch(
                    f"SELECT n, seq, kind, payload FROM changes WHERE endpoint_id = $1 AND n > $2 ORDER BY n"
                    f" LIMIT {PAGE}",
                    endpoint_id, n,
                )
            deliveries = await read_deliveries(conn, chs)
        if self._tails.get(endpoint_id) is not tail or self._closed:
            return False
        if not tail.known:
            if head is None:
                # Created and deleted elsewhere before this instance read it; told all the same, because the store
                # may have cached it from its row meanwhile (find_endpoint, lookup.py).
                del self._tails[endpoint_id]
                _release(tail.waiters)
                self._publish(EndpointDeleted(endpoint_id))
                return False
            tail.known = True
            if not chs or int(chs[0]["n"]) != 1:  # its creation left the outbox (retention): tell it from the row
                self._publish(EndpointChanged(row_to_endpoint(head)))
        self._merge(endpoint_id, tail, reqs, chs, deliveries)
        more = len(reqs) == PAGE or len(chs) == PAGE
        if more or self._tails.get(endpoint_id) is not tail:
            return more
        if head is not None:
            self._advance(tail, (int(head["next_seq"]), int(head["next_change"])))
        else:  # gone, and its deletion already left the outbox
            self._emit(endpoint_id, tail, EndpointDeleted(endpoint_id), tail.mark)
        return False

    def _merge(
        self,
        endpoint_id: str,
        tail: _Tail,
        reqs: list[asyncpg.Record],
        chs: list[asyncpg.Record],
        deliveries: dict[int, asyncpg.Record],
    ) -> None:
        """Emit requests and changes in commit order, stopping where a full page leaves the order unknown."""
        # Unread requests (past a full page) have larger seqs; unread changes follow the last one read.
        last_req = int(reqs[-1]["seq"]) if len(reqs) == PAGE else None
        last_change_seq = int(chs[-1]["seq"]) if len(chs) == PAGE else None
        i = j = 0
        while self._tails.get(endpoint_id) is tail:
            r = reqs[i] if i < len(reqs) else None
            c = chs[j] if j < len(chs) else None
            if r is not None and (c is None or int(r["seq"]) <= int(c["seq"])):
                seq = int(r["seq"])
                if c is None and last_change_seq is not None and seq > last_change_seq:
                    return  # an unread change may come first
                i += 1
                if seq > tail.mark[0]:
                    request = row_to_request(r, _bytes(r["body"]))
                    self._emit(endpoint_id, tail, RequestAdded(request), (seq, tail.mark[1]))
            elif c is not None:
                if last_req is not None and int(c["seq"]) > last_req:
                    return  # an unread request may come first
                j += 1
                n = int(c["n"])
                if n > tail.mark[1]:
                    after = (max(tail.mark[0], int(c["seq"])), n)
                    event = decode(endpoint_id, c, deliveries)
                    if event is None:
                        self._advance(tail, after)
                    else:
                        self._emit(endpoint_id, tail, event, after)
            else:
                return

    def _emit(self, endpoint_id: str, tail: _Tail, event: Event, after: Mark) -> None:
        if isinstance(event, EndpointDeleted):
            # Nothing of it comes any more: forget it (and let its waiters go).
            del self._tails[endpoint_id]
            _release(tail.waiters)
        else:
            self._advance(tail, after)
        self._publish(event)

    def _advance(self, tail: _Tail, mark: Mark) -> None:
        tail.mark = (max(tail.mark[0], mark[0]), max(tail.mark[1], mark[1]))
        if tail.waiters:
            waiting = []
            for target, fut in tail.waiters:
                if _reached(tail.mark, target):
                    if not fut.done():
                        fut.set_result(None)
                else:
                    waiting.append((target, fut))
            tail.waiters = waiting


def _release(waiters: list[tuple[Mark, asyncio.Future[None]]]) -> None:
    for _, fut in waiters:
        if not fut.done():
            fut.set_result(None)
    waiters.clear()
