"""The inspector's live websocket: subscribe, backfill from the database, then stream the endpoint's events.

Route: `GET /api/endpoints/{endpoint_id}/live?after=<seq>` (websocket). `after` is the highest position (seq) in
the endpoint the page has already seen; without it the stream starts at the endpoint's last seq now (only new
requests). The frames, close codes and order guarantees are documented in docs/events.md.

Order of work: subscribe to the event bus first, then read the backlog, then stream the queued events skipping
seqs already sent. A request committed during the backfill is both in the database and in the queue; the skip
makes it appear once, and nothing can fall between the two (seqs follow commit order within the endpoint).
Every other event goes out in the order the store committed it, after the requests committed before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketDisconnected

from app.events.bus import Subscription, SubscriptionEvicted
from app.events.types import (
    DeliveryRecorded,
    EndpointChanged,
    EndpointDeleted,
    Event,
    RequestAdded,
    RequestsRemoved,
    VerdictsChanged,
)
from app.models import CapturedRequest
from app.services import services_of
from app.store.base import RequestQuery, Store
from app.tasks import first_completed
from app.web.endpoint_schema import endpoint_json
from app.web.security_headers import same_origin
from app.web.urls import base_url

log = logging.getLogger("hookscope.live")

BACKFILL_BATCH = 500
MAX_FRAME = 500
# A client whose socket does not drain for this long is treated like an evicted one: it cannot block the handler
# (and the bus queue behind it) forever.
SEND_TIMEOUT = 10.0
QUEUE_SIZE = 1000
# uvicorn's message for a send after it closed the socket itself (keepalive timeout), before the app is told.
_CLOSED_BY_SERVER = "after sending 'websocket.close'"


class _EndpointGone(Exception):
    """The endpoint was deleted: its "endpoint_deleted" frame went out; the socket closes with 4404."""


async def live_socket(ws: WebSocket) -> None:
    if not same_origin(ws):
        await ws.accept()
        await ws.close(1008, "cross-origin websocket refused")
        return
    services = services_of(ws)
    store, bus = services.store, services.bus
    ep = await store.find_endpoint(ws.path_params["endpoint_id"])
    ws.state.send_lock = asyncio.Lock()
    await ws.accept()
    if ep is None:
        await _close(ws, 4404, "no such endpoint")
        return
    raw_after = ws.query_params.get("after", "")
    try:
        after = int(raw_after) if raw_after != "" else None
    except ValueError:
        after = -1
    if after is not None and not 0 <= after < 2**63:
        await _close(ws, 4400, "after must be a non-negative integer")
        return
    # Subscribed before anything is read: whatever commits from now on is in this queue. Summaries only.
    sub = bus.subscribe(ep.id, maxsize=QUEUE_SIZE)
    try:
        await _serve(ws, store, sub, ep.id, after)
    finally:
        sub.close()
        with contextlib.suppress(Exception):
            await ws.close()


async def _serve(ws: WebSocket, store: Store, sub: Subscription, endpoint_id: str, after: int | None) -> None:
    newest = await store.last_seq(endpoint_id)
    reset = after is not None and after > newest
    cursor = newest if after is None or reset else after
    try:
        await _send(ws, {"type": "hello", "last_id": cursor})
        if reset:
            await _send(ws, {"type": "reset"})
    except WebSocketDisconnect:
        # Gone between the handshake and the first frame (a page closed or reloaded at once): nothing to serve,
        # and not an error (left to propagate, uvicorn would log it as one).
        return
    # The receiver notices the browser leaving (and answers pings); without it a send-only handler never learns
    # that the page closed, and server shutdown waits on it.
    receiver = asyncio.create_task(_receive(ws), name="live-receiver")
    sender = asyncio.create_task(_stream(ws, store, sub, endpoint_id, cursor), name="live-sender")
    tasks = [receiver, sender]
    done = await first_completed(tasks)
    for t in done:
        if t.cancelled():
            continue
        error = t.exception()
        if isinstance(error, SubscriptionEvicted | TimeoutError):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(1013, "too slow; reconnect with after=<last seq>"), 2)
        elif isinstance(error, _EndpointGone):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(4404, "endpoint deleted"), 2)
        elif error is not None and not isinstance(error, WebSocketDisconnect | OSError):
            log.warning("live socket for %s ended: %r", endpoint_id, error)


async def _stream(ws: WebSocket, store: Store, sub: Subscription, endpoint_id: str, cursor: int) -> None:
    while True:
        rows = await store.list_requests(endpoint_id, RequestQuery(after=cursor, limit=BACKFILL_BATCH))
        if rows:
            await _send_requests(ws, rows)
            cursor = rows[-1].seq
        if len(rows) < BACKFILL_BATCH:
            break
    await _send(ws, {"type": "synced", "last_id": cursor})
    while True:
        batch: list[CapturedRequest] = []
        items = [await sub.get()]
        while len(items) < MAX_FRAME and sub.ready():
            items.append(await sub.get())
        for event in items:
            if isinstance(event, RequestAdded):
                if event.request.seq > cursor:
                    batch.append(event.request)
                    cursor = event.request.seq
                continue
            # Keep the order of events: rows captured before a removal or a delivery go out before it.
            if batch:
                await _send_requests(ws, batch)
                batch = []
            await _send(ws, await _frame(ws, store, event))
            if isinstance(event, EndpointDeleted):
                raise _EndpointGone()
        if batch:
            await _send_requests(ws, batch)


async def _frame(ws: WebSocket, store: Store, event: Event) -> dict[str, Any]:
    """The frame of any event but RequestAdded (those are batched into "requests" frames)."""
    if isinstance(event, RequestsRemoved):
        if event.ids is None:
            return {"type": "cleared"}
        reason = "pruned" if event.reason == "pruned" else "deleted"
        return {"type": "deleted", "ids": list(event.ids), "reason": reason}
    if isinstance(event, DeliveryRecorded):
        return {"type": "delivery", "delivery": event.delivery.to_json()}
    if isinstance(event, VerdictsChanged):
        return {"type": "verdicts", "verdicts": [
            {"id": v.request_id, "verification": {"status": v.status, "reason": v.reason}} for v in event.verdicts
        ]}
    if isinstance(event, EndpointChanged):
        stats = await store.endpoint_stats(event.endpoint_id)
        return {"type": "endpoint", "endpoint": endpoint_json(event.endpoint, stats, base_url(ws))}
    if isinstance(event, EndpointDeleted):
        return {"type": "endpoint_deleted"}
    raise AssertionError(f"no frame for {event!r}")


async def _send_requests(ws: WebSocket, rows: list[CapturedRequest]) -> None:
    await _send(ws, {"type": "requests", "requests": [r.summary_json() for r in rows]})


async def _send(ws: WebSocket, frame: dict[str, Any]) -> None:
    """Send one frame; a socket that is already closed raises WebSocketDisconnect, like one closing now.

    Sender and receiver (pong) race the client's disconnect: whichever sends second after it finds the socket
    closed, which Starlette reports as WebSocketDisconnected (a RuntimeError) and uvicorn, in the moment between
    its keepalive timeout's close and the connection's end, as a plain RuntimeError. Both mean "gone", not a bug.
    """
    lock: asyncio.Lock = ws.state.send_lock
    # Sender and receiver share the socket; a frame must never interleave with another.
    async with lock:
        try:
            await asyncio.wait_for(ws.send_text(json.dumps(frame, separators=(",", ":"))), SEND_TIMEOUT)
        except WebSocketDisconnected:
            raise WebSocketDisconnect(1006) from None
        except RuntimeError as exc:
            if _CLOSED_BY_SERVER not in str(exc):
                raise
            raise WebSocketDisconnect(1006) from None


async def _close(ws: WebSocket, code: int, reason: str) -> None:
    # The client may already be gone; its close frame is then moot.
    with contextlib.suppress(WebSocketDisconnect, WebSocketDisconnected, OSError):
        await ws.close(code, reason)


async def _receive(ws: WebSocket) -> None:
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None:
            continue
        try:
            frame = json.loads(text)
        except (ValueError, RecursionError):
            continue
        if isinstance(frame, dict) and frame.get("type") == "ping":
            await _send(ws, {"type": "pong"})


routes = [WebSocketRoute("/api/endpoints/{endpoint_id}/live", live_socket)]
