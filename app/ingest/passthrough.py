"""Passthrough: answer the sender with the dev server's real response when it comes within a deadline.

Providers with synchronous handshakes (Slack URL verification, Meta's GET challenge) need the target's answer,
not ours. For an endpoint with `passthrough` set, a waiter is created the moment the capture commits (by a bus
listener, in the store's after-commit step, so an answer can never arrive before anyone waits for it); the first
delivery of that request that gets a complete HTTP response (server-side forward or relay) completes it. If none
comes in time, the endpoint's configured response goes out and the request stays queued for delivery as usual.

Where the answer comes from:
- a deliverer of this instance calls `offer` with the whole answer (up to PASSTHROUGH_KEEP, 1 MiB);
- a deliverer of another instance sharing the database (it holds the forward target's or the relay's lease)
  records the delivery, and the fan-out brings its `DeliveryRecorded` here, after the capture's RequestAdded (the
  endpoint's commit order). The row keeps the first KEEP_BODY (64 KiB) of the body: a row whose body was cut is
  never an answer (the sender gets the configured response at the deadline unless a complete answer comes first),
  so across instances passthrough returns bodies up to 64 KiB. Raising KEEP_BODY would put up to 1 MiB in every
  delivery row and every instance's event queues, for handshake answers that are a few bytes.

Will anything deliver it? A forward target (whichever instance holds its lease) or a relay connected here, known
without I/O in the listener. When the store is shared (`leases` given), a relay connected to another instance
counts too: the listener cannot await, so it opens the waiter for every capture of a passthrough endpoint, and
the handler, which can, reads the relay leases once (when nothing local will deliver) before making the sender
wait. On a store of one instance (SQLite) nothing changes: no relay and no target means the answer at once.

A shared store also emits the other instances' captures here: their waiters are never collected by a handler of
this instance and go when their deadline has passed (or, past MAX_WAITING, oldest first).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from app.delivery.outgoing import HOP_BY_HOP, RawHeaders
from app.delivery.records import Delivery
from app.delivery.relay_sessions import RelaySessions
from app.endpoint_settings import DEFAULT_PASSTHROUGH_TIMEOUT
from app.events.types import DeliveryRecorded, Event, RequestAdded
from app.ingest.capture import Reply
from app.models import CapturedRequest, Endpoint
from app.store.leases import LeaseStore

log = logging.getLogger("hookscope.passthrough")

MAX_WAITING = 10_000
# A waiter is dropped this long after its deadline when no handler collected it (another instance's capture).
EXPIRY_SLACK = 1.0


@dataclass(frozen=True, slots=True)
class _Waiter:
    future: asyncio.Future[Reply]
    expires_at: float  # wall clock, like received_at


class Passthrough:
    def __init__(
        self, endpoint_of: Callable[[str], Endpoint | None], relays: RelaySessions, leases: LeaseStore | None = None
    ) -> None:
        """leases: the store's, when other instances share it (their relays count as deliverers); None when this
        instance is the only one (SQLite)."""
        self.endpoint_of = endpoint_of
        self.relays = relays
        self.leases = leases
        self._waiting: dict[int, _Waiter] = {}

    def on_event(self, event: Event) -> None:
        """Bus listener: open a waiter for new requests of passthrough endpoints that something may deliver, and
        take another instance's recorded answer."""
        if isinstance(event, DeliveryRecorded):
            self._recorded(event.delivery)
            return
        if not isinstance(event, RequestAdded):
            return
        req = event.request
        ep = self.endpoint_of(req.endpoint_id)
        if ep is None or ep.settings.passthrough is None or req.rejected:
            return
        # Nothing will deliver it (no forward target, no relay connected here, no other instance): the sender gets
        # the configured answer at once instead of waiting out the deadline.
        if self.leases is None and not ep.settings.forward_targets and not self.relays.connected(req.endpoint_id):
            return
        now = time.time()
        while self._waiting:  # oldest first: stop at the first one still current
            first = next(iter(self._waiting))
            if self._waiting[first].expires_at > now and len(self._waiting) < MAX_WAITING:
                break
            del self._waiting[first]
        expires = req.received_at + ep.settings.passthrough.timeout + EXPIRY_SLACK
        self._waiting[req.id] = _Waiter(asyncio.get_running_loop().create_future(), expires)

    def offer(self, request_id: int, status: int, headers: RawHeaders, body: bytes, complete: bool) -> None:
        """A delivery got an answer; the first complete one for a waiting request is what the sender sees."""
        waiter = self._waiting.get(request_id)
        if waiter is None or waiter.future.done() or not complete:
            return
        waiter.future.set_result(Reply(status, response_headers_for_sender(headers), body))

    def _recorded(self, d: Delivery) -> None:
        """A committed delivery (another instance's, or one of ours whose answer was already offered): an answer
        when it got an HTTP response whose body the row holds whole. Replays are not deliveries of the capture."""
        if d.kind == "replay" or d.status is None:
            return
        self.offer(d.request_id, d.status, d.response_headers, d.response_body,
                   d.response_size == len(d.response_body))

    async def hook(self, endpoint: Endpoint, captured: CapturedRequest) -> Reply | None:
        """CaptureApp.response_hook: the target's reply, or None for the configured response."""
        waiter = self._waiting.get(captured.id)
        if waiter is None:
            return None
        fut = waiter.future
        try:
            if not fut.done() and not await self._anyone_delivering(endpoint):
                return None
            # The endpoint as captured; its passthrough may have been switched off since the waiter opened.
            setting = endpoint.settings.passthrough
            timeout = setting.timeout if setting is not None else DEFAULT_PASSTHROUGH_TIMEOUT
            remaining = timeout - (time.time() - captured.received_at)
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(asyncio.shield(fut), max(remaining, 0.0))
            return None
        finally:
            self._waiting.pop(captured.id, None)

    async def _anyone_delivering(self, endpoint: Endpoint) -> bool:
        """Whether a deliverer may answer. Only a shared store is asked (one read of the relay leases); the rest was
        decided when the waiter opened."""
        if self.leases is None or endpoint.settings.forward_targets or self.relays.connected(endpoint.id):
            return True
        try:
            return bool(await self.leases.lease_owners(endpoint.id, "relay"))
        except Exception as exc:  # the database is away: nothing would be delivered in time anyway
            log.warning("passthrough: could not read the relay leases of %s: %s", endpoint.id, exc)
            return False


def response_headers_for_sender(headers: RawHeaders) -> RawHeaders:
    """A target's response headers as passthrough returns them: hop-by-hop and framing dropped (the capture
    server recomputes Content-Length; Date and Server would be duplicated by uvicorn)."""
    tokens = {t.strip().lower() for n, v in headers if n.lower() == b"connection" for t in v.split(b",")}
    drop = HOP_BY_HOP | {b"content-length", b"date", b"server"} | tokens
    return [(n, v) for n, v in headers if n.lower() not in drop]
