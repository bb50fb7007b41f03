"""Server-side forwarding: each endpoint's `forward_targets` get every new capture, in order, with retries.

One worker per (endpoint, target). The queue is durable without a queue table: a target's cursor (the position,
seq, of the last request of the endpoint it is done with) is stored, and everything of the endpoint after it is
still to deliver, so pending deliveries survive restarts and keep capture order. The cursor moves in the same
transaction that records a final outcome (delivered, failed, or dead after the retry schedule); a crash between
a delivery and that commit delivers the request again (at-least-once). Outcome writes are pipelined: the worker
queues the write and moves on, and the single writer commits them in order.

Several instances on one database each run a worker per (endpoint, target), but a worker delivers only while it
holds the store's lease ("forward", endpoint, target) for its instance (app/store/leases.py): it asks for it every
`retry` seconds, renews it every `renew` seconds, stops delivering at once when a renewal finds it taken (this
instance stalled past the ttl and another took over) or when it could not renew before the ttl ran out, and gives
it up on shutdown (after its queued outcomes committed) so a survivor takes over without waiting for expiry. The
cursor stays the truth: after a takeover the new owner starts from it, so the item the old owner had in flight
may be delivered twice (at-least-once).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from app.delivery.feed import CaptureFeed
from app.delivery.outgoing import Outgoing, TargetError, build_outgoing, parse_target
from app.delivery.pending_writes import PendingWrites
from app.delivery.records import AnswerSink, DeliveryState, DeliveryUpdate, Outcome
from app.delivery.retry import RetryPolicy
from app.delivery.sender import Sender
from app.delivery.wire import describe_error
from app.events.types import EndpointChanged, EndpointDeleted, Event, RequestAdded
from app.models import CapturedRequest, Endpoint
from app.store.base import CursorAdvance, Store
from app.store.errors import BodyMissing
from app.tasks import first_completed

log = logging.getLogger("hookscope.forward")

RELEASE_SECONDS = 10.0
# A worker delivers at most this many requests ahead of its committed outcomes (writes are pipelined): what a
# takeover after this instance dies can deliver twice, besides the request in flight (docs/forwarding.md).
UNCOMMITTED_MAX = 32


@dataclass(frozen=True, slots=True)
class LeaseTiming:
    """Seconds: a lease lasts `ttl` from each renewal, renewed every `renew` (well before it runs out); a worker
    without it asks again every `retry`. A dead owner's targets move after at most ttl + retry."""

    ttl: float = 15.0
    renew: float = 5.0
    retry: float = 2.0


@dataclass
class WorkerStatus:
    target: str
    # A seq (position in the endpoint), shown under its historical name "acked_id"; while another instance holds
    # the target's lease, the stored cursor as last read.
    acked_id: int | None = None
    current_id: int | None = None
    attempts: int = 0
    next_attempt_at: float | None = None
    last_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "acked_id": self.acked_id,
            "current_request_id": self.current_id,
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at,
            "last_error": self.last_error,
        }


class Forwarder:
    def __init__(
        self,
        store: Store,
        feed: CaptureFeed,
        sender: Sender,
        retry: RetryPolicy,
        passthrough: AnswerSink | None,
        writes: PendingWrites,
        instance: str,
        leases: LeaseTiming = LeaseTiming(),
    ) -> None:
        """instance: this process's id, the owner of the leases its workers take."""
        self.store = store
        self.instance = instance
        self.leases = leases
        self.feed = feed
        self.sender = sender
        self.retry = retry
        self.passthrough = passthrough
        self._workers: dict[tuple[str, str], _Worker] = {}
        # The last seq committed in each endpoint, where a new target's worker starts; kept current by on_event.
        self._last_seq: dict[str, int] = {}
        self.writes = writes
        self._started = False

    # lifecycle -------------------------------------------------------------------------------------------------
    async def start(self, endpoints: list[Endpoint]) -> None:
        for ep in endpoints:
            # max: a capture announced while this read was in flight must not be undone by it.
            seq = await self.store.last_seq(ep.id)
            self._last_seq[ep.id] = max(seq, self._last_seq.get(ep.id, 0))
        self._started = True
        for ep in endpoints:
            self.on_endpoint(ep.id, ep)

    async def stop(self) -> None:
        """Cancel the workers; each gives its lease up once the outcomes queued so far committed (so the
        instance that takes over starts after them)."""
        self._started = False
        workers = list(self._workers.values())
        self._workers.clear()
        for w in workers:
            w.task.cancel()
        for w in workers:
            with contextlib.suppress(asyncio.CancelledError):
                await w.task
        await self.writes.flush()
        await self.sender.aclose()

    # bus listener (runs in the store's after-commit step) ------------------------------------------------------
    def on_event(self, event: Event) -> None:
        """A listener, not a subscription: a new target's worker must start after exactly the last capture
        committed before its endpoint changed, and a removed target's worker stop before the next capture."""
        if isinstance(event, RequestAdded):
            req = event.request
            self._last_seq[req.endpoint_id] = max(self._last_seq.get(req.endpoint_id, 0), req.seq)
        elif isinstance(event, EndpointChanged):
            self.on_endpoint(event.endpoint_id, event.endpoint)
        elif isinstance(event, EndpointDeleted):
            self._last_seq.pop(event.endpoint_id, None)
            self.on_endpoint(event.endpoint_id, None)

    def on_endpoint(self, endpoint_id: str, ep: Endpoint | None) -> None:
        if not self._started:
            return
        wanted = set(ep.settings.forward_targets or ()) if ep is not None else set()
        for key in [k for k in self._workers if k[0] == endpoint_id and k[1] not in wanted]:
            self._workers.pop(key).task.cancel()
        for target in wanted:
            if (endpoint_id, target) not in self._workers:
                # A new target starts after the last committed capture: it does not replay history.
                worker = _Worker(self, endpoint_id, target, self._last_seq.get(endpoint_id, 0))
                self._workers[(endpoint_id, target)] = worker

    def has_targets(self, endpoint_id: str) -> bool:
        return any(k[0] == endpoint_id for k in self._workers)

    def status(self, endpoint_id: str) -> list[WorkerStatus]:
        return [w.status for k, w in self._workers.items() if k[0] == endpoint_id]

    def queued_for(self, req: CapturedRequest) -> list[str]:
        """Targets that have not finished with this request yet (for the deliveries view)."""
        return [
            w.target
            for k, w in self._workers.items()
            if k[0] == req.endpoint_id and w.status.acked_id is not None and w.status.acked_id < req.seq
            and req.seq > w.start_after
        ]

    def has_worker(self, endpoint_id: str, target: str) -> bool:
        return (endpoint_id, target) in self._workers


class _Worker:
    def __init__(self, owner: Forwarder, endpoint_id: str, target: str, start_after: int) -> None:
        """start_after: the seq a new target's cursor starts at (it does not replay history)."""
        self.owner = owner
        self.endpoint_id = endpoint_id
        self.target = target
        self.start_after = start_after
        self.status = WorkerStatus(target)
        # This worker's own outcome writes, oldest first, until known committed (owner.writes holds every worker's
        # for shutdown and logs the failed ones).
        self.uncommitted: collections.deque[asyncio.Future[int]] = collections.deque()
        self.task = asyncio.create_task(self._run(), name=f"forward {endpoint_id} -> {target}")

    async def _run(self) -> None:
        store = self.owner.store
        timing = self.owner.leases
        try:
            while True:
                try:
                    loop = asyncio.get_running_loop()
                    # Measured before asking: the lease runs ttl from the database's now(), which is later.
                    asked_at = loop.time()
                    if await store.acquire_lease("forward", self.endpoint_id, self.target, self.owner.instance,
                                                 timing.ttl):
                        await self._while_holding(asked_at + timing.ttl)
                        continue
                    # Another instance delivers this target: show its progress as stored.
                    self.status.acked_id = await store.get_cursor("forward", self.endpoint_id, self.target)
                    await asyncio.sleep(timing.retry)
                except asyncio.CancelledError:
                    raise
                except Exception:  # the feed or the store failed (not one request): log, pause, resume from the cursor
                    log.exception("forward worker %s -> %s failed; restarting", self.endpoint_id, self.target)
                    await asyncio.sleep(1.0)
        finally:
            self._idle()
            await self._give_up_lease()

    async def _give_up_lease(self) -> None:
        """Once this worker ended (shutdown, target removed): release the lease after the outcomes queued so far
        committed, unless this instance has a worker for the target again (the lease is the instance's, so
        that worker's now). Bounded: a broken store must not hold up shutdown (the lease then expires)."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(RELEASE_SECONDS):
                await self.owner.writes.flush()
                if not self.owner.has_worker(self.endpoint_id, self.target):
                    await self.owner.store.release_lease("forward", self.endpoint_id, self.target,
                                                         self.owner.instance)

    async def _while_holding(self, expires: float) -> None:
        """Deliver while the lease is ours; returns (having stopped delivering) once it is lost. `expires`: the
        loop time by which the lease has surely run out unless renewed."""
        delivering = asyncio.create_task(self._deliver_all(), name=f"forward {self.endpoint_id} -> {self.target}")
        renewing = asyncio.create_task(self._keep_lease(expires), name=f"lease {self.endpoint_id} -> {self.target}")
        try:
            for task in await first_completed([delivering, renewing]):
                error = task.exception()
                if error is not None:
                    raise error
        finally:
            self._idle()

    def _idle(self) -> None:
        self.status.current_id = None
        self.status.attempts = 0
        self.status.next_attempt_at = None

    async def _keep_lease(self, expires: float) -> None:
        """Renew every `renew` seconds; returns when the lease is lost: a renewal found another owner, or none
        succeeded before `expires` (from then on another instance may hold it)."""
        owner = self.owner
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(owner.leases.renew)
            asked_at = loop.time()
            try:
                async with asyncio.timeout_at(expires):
                    renewed = await owner.store.acquire_lease("forward", self.endpoint_id, self.target,
                                                              owner.instance, owner.leases.ttl)
            except TimeoutError:
                log.warning("forward %s -> %s: could not renew the lease in time; pausing", self.endpoint_id,
                            self.target)
                return
            except Exception as exc:  # keep trying until the lease runs out: a blip must not stop delivery
                log.warning("forward %s -> %s: renewing the lease failed: %s", self.endpoint_id, self.target, exc)
                if loop.time() >= expires:
                    return
                continue
            if not renewed:
                log.warning("forward %s -> %s: another instance took over", self.endpoint_id, self.target)
                return
            expires = asked_at + owner.leases.ttl

    async def _deliver_all(self) -> None:
        store = self.owner.store
        cursor = await store.get_cursor("forward", self.endpoint_id, self.target)
        if cursor is None:
            cursor = await store.set_cursor("forward", self.endpoint_id, self.target, self.start_after)
        self.status.acked_id = cursor
        async for req in self.owner.feed.follow(self.endpoint_id, cursor):
            if not req.rejected:
                await self._deliver_isolated(req)
            self.status.acked_id = req.seq

    async def _deliver_isolated(self, req: CapturedRequest) -> None:
        """Deliver one request; a bug while doing so becomes that request's dead delivery (retryable by hand)
        and the worker goes on. Restarting from the cursor instead would send the same request again, every
        second, for ever, with nothing recorded."""
        try:
            await self._deliver(req)
        except Exception as exc:
            log.exception("forwarding request %d to %s failed unexpectedly; moving on", req.id, self.target)
            outcome = Outcome.failure(f"internal error while forwarding: {describe_error(exc)}", final=True)
            update = DeliveryUpdate(req.id, req.endpoint_id, "forward", self.target, "", "dead", 1, outcome)
            self._record(update, ("forward", self.target, req.seq))
            self.status.current_id = None
            self.status.attempts = 0
            self.status.next_attempt_at = None
            self.status.last_error = outcome.error

    def _record(self, update: DeliveryUpdate, cursor: CursorAdvance | None) -> None:
        """Queue the outcome (and the cursor move) without waiting for its COMMIT."""
        write = asyncio.ensure_future(self.owner.store.record_delivery(update, cursor))
        self.owner.writes.track(write)
        self.uncommitted.append(write)

    async def _settle(self, limit: int) -> None:
        """Wait until at most `limit` of this worker's outcome writes are not committed yet."""
        while self.uncommitted and self.uncommitted[0].done():
            self.uncommitted.popleft()
        while len(self.uncommitted) > limit:
            with contextlib.suppress(Exception):
                await self.uncommitted.popleft()

    def _signed(self, out: Outgoing) -> Outgoing:
        """Re-sign each attempt afresh when the endpoint asks for it (a retry must not carry a stale timestamp)."""
        ep = self.owner.store.cached_endpoint(self.endpoint_id)
        resigner = ep.settings.resign if ep is not None else None
        if resigner is None:
            return out
        try:
            return resigner.outgoing(out)
        except ValueError:
            log.warning("re-signing failed for %s; sending as captured", self.target, exc_info=True)
            return out

    async def _deliver(self, req: CapturedRequest) -> None:
        owner = self.owner
        self.status.current_id = req.id
        started = time.monotonic()
        attempt = 0
        try:
            body = await owner.feed.body_of(req)
            out: Outgoing | None = build_outgoing(
                parse_target(self.target), req.method, req.path, req.query, req.headers, body
            )
        except (TargetError, BodyMissing) as exc:  # final: retrying cannot bring the body back
            out = None
            error = str(exc)
        while True:
            attempt += 1
            self.status.attempts = attempt
            if out is None:
                outcome, full = Outcome.failure(error, final=True), b""
            else:
                outcome, full = await owner.sender.attempt(self._signed(out))
            if outcome.status is not None and owner.passthrough is not None:
                owner.passthrough.offer(req.id, outcome.status, outcome.headers, full, bool(full) or not outcome.body)
            wait: float | None = None
            state: DeliveryState
            if outcome.ok or not outcome.retryable:
                state = "delivered" if outcome.ok else "failed"
            else:
                wait = owner.retry.next_delay(attempt, time.monotonic() - started)
                state = "pending" if wait is not None else "dead"
            next_at = time.time() + wait if wait is not None else None
            update = DeliveryUpdate(
                req.id, req.endpoint_id, "forward", self.target, "", state, 1, outcome, next_attempt_at=next_at
            )
            cursor: CursorAdvance | None = ("forward", self.target, req.seq) if wait is None else None
            self._record(update, cursor)
            await self._settle(UNCOMMITTED_MAX)
            await owner.writes.backpressure()
            self.status.last_error = outcome.error or (None if outcome.ok else f"HTTP {outcome.status}")
            if wait is None:
                self.status.current_id = None
                self.status.attempts = 0
                self.status.next_attempt_at = None
                return
            self.status.next_attempt_at = next_at
            await asyncio.sleep(wait)
