"""smee.io compatibility: `GET /h/{id}` with `Accept: text/event-stream` streams captures as smee does.

The stream starts with `event: ready`; each capture is an unnamed message event whose data is one JSON line
holding the request's header fields (lower-case names, duplicates joined with ", "; Host, Content-Length and
hop-by-hop headers left out) plus `body`, `query` and `timestamp` (milliseconds), which is what smee-client
expects. Each event carries `id: <seq>` (the request's position in the endpoint; on SQLite its request id), so
a reconnecting EventSource sends Last-Event-ID and we resume after it (smee.io itself does not). A named `ping`
event goes out every 25 s to keep proxies from timing the stream out.

Last-Event-ID, like the live socket's `after` (app/web/live.py):
  absent or empty        start at the newest request: only new captures are streamed
  a position (seq)       resume after it
  beyond the last seq    the database was replaced under the client: after `ready` comes
                         `id: N` / `event: reset` / `data: {"last_id": N}` with N the endpoint's last seq, then
                         the stream goes on after N. The id resets the client's Last-Event-ID; smee-client
                         ignores the named event, a custom EventSource can listen for it and drop what it showed.
  anything else          400 JSON `invalid_last_event_id` (not digits, 20 digits or more, >= 2**63, or repeated):
                         an EventSource does not retry after a non-200 answer, so a bad id cannot loop.

Access: the ingest URL is public, but the stream would expose every captured request, so when the server has a
token the stream requires it, as `?token=` (smee-client can only put it in the URL, which then shows up in
proxy logs and shell history: prefer `hookscope forward`) or as `Authorization: Bearer`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any
from urllib.parse import parse_qs

from starlette.types import Message, Receive, Scope, Send

from app.credentials import bearer_matches, token_matches
from app.delivery.feed import CaptureFeed
from app.delivery.outgoing import HOP_BY_HOP
from app.json_errors import error_body
from app.models import CapturedRequest, Endpoint, latin1_to_display
from app.store.base import Store
from app.tasks import first_completed

# Not request fields but hop framing; smee-client sets its own Content-Length, and fetch refuses some of these.
_SKIP = {n.decode() for n in HOP_BY_HOP} | {"content-length", "host"}

PING_INTERVAL = 25.0
RETRY_MS = 1000


def _query_object(raw: str) -> dict[str, Any]:
    parsed = parse_qs(raw.encode("latin-1").decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] if len(v) == 1 else v for k, v in parsed.items()}


def smee_payload(req: CapturedRequest, body: bytes) -> dict[str, Any]:
    """The JSON smee.io puts in a message event's data."""
    data: dict[str, Any] = {}
    for name, value in req.headers:
        if name in _SKIP:
            continue
        text, _ = latin1_to_display(value)
        data[name] = f"{data[name]}, {text}" if name in data else text
    ctype = req.content_type.lower()
    parsed: Any
    if "json" in ctype:
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError):
            parsed = body.decode("utf-8", "replace")
    elif "application/x-www-form-urlencoded" in ctype:
        parsed = _query_object(body.decode("latin-1"))
    elif not body:
        parsed = {}
    else:
        parsed = body.decode("utf-8", "replace")
    data["body"] = parsed
    data["query"] = _query_object(req.query)
    data["timestamp"] = int(req.received_at * 1000)
    return data


def format_event(req: CapturedRequest, body: bytes) -> bytes:
    line = json.dumps(smee_payload(req, body), separators=(",", ":"), ensure_ascii=True)
    return f"id: {req.seq}\ndata: {line}\n\n".encode()


class SmeeStream:
    """CaptureApp.stream_handler."""

    def __init__(self, store: Store, feed: CaptureFeed, token: str | None, ping_interval: float = PING_INTERVAL):
        self.store = store
        self.feed = feed
        self.token = token
        self.ping_interval = ping_interval

    def _authorised(self, scope: Scope) -> bool:
        if self.token is None:
            return True
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if any(token_matches(self.token, t) for t in query.get("token", [])):
            return True
        return bearer_matches(scope["headers"], self.token)

    async def __call__(self, endpoint: Endpoint, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._authorised(scope):
            await _error(send, 401, "unauthorized", "this stream requires the server token: ?token=<token> or Bearer")
            return
        try:
            after = last_event_id(scope["headers"])
        except ValueError as exc:
            await _error(send, 400, "invalid_last_event_id", str(exc))
            return
        newest = await self.store.last_seq(endpoint.id)
        # Beyond the last seq ever assigned: the database was replaced under the client (as app/web/live.py's reset).
        reset = after is not None and after > newest
        if after is None or reset:
            after = newest
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache, no-transform"),
            (b"x-accel-buffering", b"no"),
        ]})
        opening = f"retry: {RETRY_MS}\n\nevent: ready\ndata: {{}}\n\n"
        if reset:
            # The id moves the client's Last-Event-ID back to ours, so a reconnect before the next capture
            # resumes exactly instead of resetting again and skipping what arrived meanwhile.
            opening += f"id: {after}\nevent: reset\ndata: {json.dumps({'last_id': after})}\n\n"
        await send({"type": "http.response.body", "body": opening.encode(), "more_body": True})
        # Always read beside writing: otherwise a client that goes away is never noticed and shutdown hangs.
        tasks = [
            asyncio.create_task(self._events(endpoint, after, send)),
            asyncio.create_task(self._pings(send)),
            asyncio.create_task(_until_disconnect(receive)),
        ]
        await first_completed(tasks)
        with contextlib.suppress(Exception):
            await send({"type": "http.response.body", "body": b""})

    async def _events(self, endpoint: Endpoint, after: int, send: Send) -> None:
        async for req in self.feed.follow(endpoint.id, after):
            if req.rejected:
                continue
            await send({"type": "http.response.body", "body": format_event(req, await self.feed.body_of(req)),
                        "more_body": True})

    async def _pings(self, send: Send) -> None:
        while True:
            await asyncio.sleep(self.ping_interval)
            await send({"type": "http.response.body", "body": b"event: ping\ndata: {}\n\n", "more_body": True})


def last_event_id(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The position (seq) a reconnecting EventSource resumes after; None without the header (or with it empty, as
    an EventSource sends before it saw any id). ValueError for anything that is not one seq: more than one
    header, or not 1 to 19 ASCII digits below 2**63 (the seq range)."""
    values = [v.strip(b" \t") for n, v in headers if n == b"last-event-id"]
    if not values or values == [b""]:
        return None
    if len(values) > 1:
        raise ValueError("Last-Event-ID is given more than once")
    value = values[0]
    if not (value.isdigit() and len(value) <= 19 and int(value) < 2**63):
        raise ValueError("Last-Event-ID must be a request id (an integer below 2**63)")
    return int(value)


async def _error(send: Send, status: int, code: str, message: str) -> None:
    body = error_body(code, message)
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _until_disconnect(receive: Receive) -> None:
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return
