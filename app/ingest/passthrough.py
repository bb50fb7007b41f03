"""Passthrough: answer the sender with the dev server's real response when it comes within a deadline.

Providers with synchronous handshakes (Slack URL verification, Meta's GET challenge) need the target's answer,
not ours. For an endpoint with `passthrough` set, a waiter is created the moment the capture commits (by a bus
listener, in the store's after-commit step, so an answer can never arrive before anyone waits for it); the first
delivery of that request that gets an HTTP response (server-side forward or relay) completes it. If none comes
in time, the endpoint's configured response goes out and the request stays queued for delivery as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from app.delivery.outgoing import HOP_BY_HOP, RawHeaders
from app.delivery.relay_sessions import RelaySessions
from app.endpoint_settings import DEFAULT_PASSTHROUGH_TIMEOUT
from app.events.types import Event, RequestAdded
from app.ingest.capture import Reply
from app.models import CapturedRequest, Endpoint

MAX_WAITING = 10_000


class Passthrough:
    def __init__(self, endpoint_of: Callable[[str], Endpoint | None], relays: RelaySessions) -> None:
        self.endpoint_of = endpoint_of
        self.relays = relays
        self._waiting: dict[int, asyncio.Future[Reply]] = {}

    def on_event(self, event: Event) -> None:
        """Bus listener: open a waiter for new requests of passthrough endpoints that something will deliver."""
        if not isinstance(event, RequestAdded):
            return
        req = event.request
        ep = self.endpoint_of(req.endpoint_id)
        if ep is None or ep.settings.passthrough is None or req.rejected:
            return
        # Nothing will deliver it (no forward target, no relay connected): the sender gets the configured answer
        # at once instead of waiting out the deadline.
        if not ep.settings.forward_targets and not self.relays.connected(req.endpoint_id):
            return
        if len(self._waiting) >= MAX_WAITING:  # a sender that vanished never collected its waiter
            self._waiting.pop(next(iter(self._waiting)))
        self._waiting[req.id] = asyncio.get_running_loop().create_future()

    def offer(self, request_id: int, status: int, headers: RawHeaders, body: bytes, complete: bool) -> None:
        """A delivery got an answer; the first one for a waiting request is what the sender sees."""
        fut = self._waiting.get(request_id)
        if fut is None or fut.done() or not complete:
            return
        fut.set_result(Reply(status, response_headers_for_sender(headers), body))

    async def hook(self, endpoint: Endpoint, captured: CapturedRequest) -> Reply | None:
        """CaptureApp.response_hook: the target's reply, or None for the configured response."""
        fut = self._waiting.get(captured.id)
        if fut is None:
            return None
        try:
            # The endpoint as captured; its passthrough may have been switched off since the waiter opened.
            setting = endpoint.settings.passthrough
            timeout = setting.timeout if setting is not None else DEFAULT_PASSTHROUGH_TIMEOUT
            remaining = timeout - (time.time() - captured.received_at)
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(asyncio.shield(fut), max(remaining, 0.0))
            return None
        finally:
            self._waiting.pop(captured.id, None)


def response_headers_for_sender(headers: RawHeaders) -> RawHeaders:
    """A target's response headers as passthrough returns them: hop-by-hop and framing dropped (the capture
    server recomputes Content-Length; Date and Server would be duplicated by uvicorn)."""
    tokens = {t.strip().lower() for n, v in headers if n.lower() == b"connection" for t in v.split(b",")}
    drop = HOP_BY_HOP | {b"content-length", b"date", b"server"} | tokens
    return [(n, v) for n, v in headers if n.lower() not in drop]
