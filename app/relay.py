"""The server side of `hookscope forward`: named relays with durable, acknowledged cursors.

Protocol (JSON text frames over the websocket `/api/endpoints/{id}/relay?name=NAME[&from=now|all|ID]`):

server -> client
  {"type": "hello", "endpoint": ID, "relay": NAME, "acked_id": N, "ping_interval": SECONDS}
  {"type": "request", "id": N, "received_at": EPOCH, "method": M, "path": SUB_PATH, "query": RAW_QUERY,
   "headers": [[name, value], ...], "body": BASE64, "want_response": BOOL}
      header names/values, path and query are ISO-8859-1 strings of the raw bytes (lossless)
  {"type": "batch", "items": [request, ...]}         (several waiting requests in one frame, in order)
  {"type": "ping"} / {"type": "pong"}
  {"type": "error", "code": CODE, "message": TEXT}   (then the server closes)
client -> server
  {"type": "ack", "id": N, "target": URL, "attempts": K, "status": S | null, "latency_ms": MS | null,
   "error": TEXT | null, "headers": [[name, value], ...], "body": BASE64, "body_size": BYTES}
  {"type": "acks", "items": [ack, ...]}              (several acks in one frame, in order)
  {"type": "ping"} / {"type": "pong"}

The server sends requests in id order, at most WINDOW unacknowledged. The client delivers them in order and
acks each one after the target answered (any status), or after it gave up on an unreachable target (`error`
set): either way the request is done for that relay and the cursor moves past it, in the same transaction
that records the delivery. A request sent but not acked (crash, lost connection, laptop asleep) is sent again
on the next connection: at-least-once. `from` (all, now, or an id to start at) resets the cursor; without it
a known relay resumes from its cursor, and a new one starts at "now".
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from app.deliveries import DeliveryUpdate, Outcome
from app.feed import CaptureFeed
from app.forwarder import Forwarder
from app.models import CapturedRequest, Endpoint
from app.passthrough import Passthrough
from app.resigning import resigner_of
from app.store.base import Store
from app.tasks import first_completed

log = logging.getLogger("hookscope.relay")

WINDOW = 64
MAX_BATCH = 32
NAME_RE = re.compile(r"^[A-Za-z0-9._:@-]{1,100}$")
MAX_ACK_BODY = 1024 * 1024


@dataclass
class RelaySession:
    endpoint_id: str
    name: str
    remote: str | None
    acked_id: int
    connected_at: float = field(default_factory=time.time)
    last_seen_at: float = field(default_factory=time.time)
    sent_id: int = 0
    in_flight: int = 0
    websocket: WebSocket | None = None
    replaced: bool = False


class RelayHub:
    def __init__(
        self, store: Store, feed: CaptureFeed, forwarder: Forwarder, passthrough: Passthrough | None,
        ping_interval: float = 5.0,
    ) -> None:
        self.store = store
        self.feed = feed
        self.forwarder = forwarder
        self.passthrough = passthrough
        self.ping_interval = ping_interval
        self.sessions: dict[tuple[str, str], RelaySession] = {}

    def connected(self, endpoint_id: str) -> bool:
        return any(k[0] == endpoint_id for k in self.sessions)

    async def status(self, endpoint_id: str) -> list[dict[str, Any]]:
        """Relays of an endpoint: connected ones and every one with a stored cursor."""
        rows: dict[str, dict[str, Any]] = {}
        for name, acked, updated in await self.store.list_cursors(endpoint_id, "relay"):
            rows[name] = {"name": name, "connected": False, "acked_id": acked, "acked_at": updated,
                          "connected_at": None, "last_seen_at": None, "remote": None, "in_flight": 0}
        for (eid, name), s in self.sessions.items():
            if eid != endpoint_id:
                continue
            row = rows.setdefault(name, {"name": name, "acked_at": None})
            row.update(connected=True, acked_id=max(s.acked_id, row.get("acked_id") or 0),
                       connected_at=s.connected_at, last_seen_at=s.last_seen_at, remote=s.remote,
                       in_flight=s.in_flight)
        for row in rows.values():
            row["pending"] = await self.store.count_requests_after(endpoint_id, row["acked_id"])
        return sorted(rows.values(), key=lambda r: r["name"])

    async def close_all(self) -> None:
        """At shutdown: close every relay socket (its handler then ends on its own)."""
        for s in list(self.sessions.values()):
            if s.websocket is not None:
                with contextlib.suppress(Exception):
                    await s.websocket.close(1001)

    async def serve(self, ws: WebSocket) -> None:
        """The websocket handler. Its three tasks (sender, receiver, pinger) are owned and awaited here."""
        ep = self.store.cached_endpoint(ws.path_params["endpoint_id"])
        name = ws.query_params.get("name", "")
        await ws.accept()
        if ep is None:
            await _refuse(ws, "endpoint_not_found", "no such endpoint")
            return
        if not NAME_RE.match(name):
            await _refuse(ws, "invalid_name", "name must be 1-100 characters of A-Z a-z 0-9 . _ : @ -")
            return
        try:
            cursor = await self._start_cursor(ep, name, ws.query_params.get("from"))
        except ValueError as exc:
            await _refuse(ws, "invalid_from", str(exc))
            return
        key = (ep.id, name)
        old = self.sessions.get(key)
        if old is not None and old.websocket is not None:
            # The same relay reconnected (laptop woke up, network changed): the old socket is stale.
            old.replaced = True
            with contextlib.suppress(Exception):
                await old.websocket.close(4000, "replaced by a new connection")
        client = ws.client
        session = RelaySession(ep.id, name, f"{client.host}:{client.port}" if client else None, cursor)
        session.websocket = ws
        self.sessions[key] = session
        log.info("relay %s connected to endpoint %s at cursor %d", name, ep.id, cursor)
        window = asyncio.Semaphore(WINDOW)
        try:
            await ws.send_text(json.dumps({"type": "hello", "endpoint": ep.id, "relay": name, "acked_id": cursor,
                                           "ping_interval": self.ping_interval}))
            tasks = [
                asyncio.create_task(self._sender(ws, session, window), name="relay-sender"),
                asyncio.create_task(self._receiver(ws, session, window), name="relay-receiver"),
                asyncio.create_task(self._pinger(ws, session), name="relay-pinger"),
            ]
            done = await first_completed(tasks)
            for t in done:
                error = t.exception()
                if error is not None and not isinstance(error, WebSocketDisconnect | OSError):
                    log.warning("relay %s ended: %r", name, error)
        finally:
            if self.sessions.get(key) is session:
                del self.sessions[key]
            with contextlib.suppress(Exception):
                await ws.close()
            log.info("relay %s disconnected (acked %d)", name, session.acked_id)

    async def _start_cursor(self, ep: Endpoint, name: str, start: str | None) -> int:
        if start is None or start == "":
            stored = await self.store.get_cursor("relay", ep.id, name)
            if stored is not None:
                return stored
            start = "now"
        if start == "all":
            value = 0
        elif start == "now":
            value = await self.store.last_request_id()
        else:
            try:
                value = int(start) - 1
            except ValueError:
                raise ValueError("from must be 'now', 'all' or a request id") from None
            if not 0 <= value < 2**63 - 1:
                raise ValueError("from must be a positive request id")
        return await self.store.set_cursor("relay", ep.id, name, value, force=True)

    async def _sender(self, ws: WebSocket, session: RelaySession, window: asyncio.Semaphore) -> None:
        """Send requests as the window allows; whatever is already waiting goes out in one "batch" frame
        (one write instead of dozens during catch-up; a lone live request still goes out at once)."""
        ready: asyncio.Queue[CapturedRequest | BaseException] = asyncio.Queue(maxsize=WINDOW)

        async def pump() -> None:
            try:
                async for req in self.feed.follow(session.endpoint_id, session.acked_id):
                    if not req.rejected:  # metadata-only records (body over the limit) have nothing to deliver
                        await ready.put(req)
            except Exception as exc:
                await ready.put(exc)

        pump_task = asyncio.create_task(pump(), name="relay-pump")
        try:
            while True:
                batch = [await ready.get()]
                await window.acquire()
                while len(batch) < MAX_BATCH and not ready.empty() and not window.locked():
                    await window.acquire()
                    batch.append(ready.get_nowait())
                items = []
                for req in batch:
                    if isinstance(req, BaseException):
                        raise req
                    items.append(await self._request_item(req))
                    session.in_flight += 1
                    session.sent_id = req.id
                frame = items[0] if len(items) == 1 else {"type": "batch", "items": items}
                await ws.send_text(json.dumps(frame))
        finally:
            pump_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump_task

    async def _request_item(self, req: CapturedRequest) -> dict[str, Any]:
        body = await self.feed.body_of(req)
        ep = self.store.cached_endpoint(req.endpoint_id)
        headers = req.headers
        resigner = resigner_of(ep.options) if ep is not None else None
        if resigner is not None:
            try:
                headers, body = resigner.relayed(req.method, req.path, req.query, req.headers, body)
            except ValueError:
                log.warning("re-signing failed for request %d; relaying it as captured", req.id, exc_info=True)
        return {
            "type": "request",
            "id": req.id,
            "received_at": req.received_at,
            "method": req.method,
            "path": req.path,
            "query": req.query,
            "headers": headers,
            "body": base64.b64encode(body).decode("ascii"),
            "want_response": ep is not None and "passthrough" in ep.options,
        }

    async def _receiver(self, ws: WebSocket, session: RelaySession, window: asyncio.Semaphore) -> None:
        while True:
            text = await ws.receive_text()
            session.last_seen_at = time.time()
            try:
                msg = json.loads(text)
                kind = msg.get("type")
            except (ValueError, AttributeError):
                continue
            if kind == "ping":
                await ws.send_text('{"type":"pong"}')
            elif kind in ("ack", "acks"):
                for item in [msg] if kind == "ack" else msg.get("items") or []:
                    try:
                        self._ack(session, item)
                    except (KeyError, TypeError, ValueError, AttributeError) as exc:
                        log.warning("relay %s sent a bad ack: %r", session.name, exc)
                        continue
                    if session.in_flight > 0:
                        session.in_flight -= 1
                        window.release()

    def _ack(self, session: RelaySession, msg: dict[str, Any]) -> None:
        rid = int(msg["id"])
        status = msg.get("status")
        headers = [(str(n).encode("latin-1"), str(v).encode("latin-1")) for n, v in msg.get("headers") or []]
        body = base64.b64decode(msg.get("body") or "")[:MAX_ACK_BODY]
        size = int(msg.get("body_size") or len(body))
        latency = msg.get("latency_ms")
        outcome = Outcome(
            status=int(status) if status is not None else None,
            latency_ms=float(latency) if latency is not None else None,
            headers=headers,
            body=body[:65536],
            body_size=size,
            error=str(msg["error"])[:1000] if msg.get("error") else None,
        )
        if outcome.status is not None and self.passthrough is not None:
            self.passthrough.offer(rid, outcome.status, headers, body, size == len(body))
        state = "delivered" if outcome.ok else ("failed" if outcome.status is not None else "dead")
        update = DeliveryUpdate(
            rid, session.endpoint_id, "relay", str(msg.get("target") or "")[:2000], session.name, state,
            max(1, int(msg.get("attempts") or 1)), outcome,
        )
        self.forwarder.track(self.store.record_delivery(update, ("relay", session.name, rid)))
        session.acked_id = max(session.acked_id, rid)

    async def _pinger(self, ws: WebSocket, session: RelaySession) -> None:
        """Ping every interval; a client silent for three intervals is gone (sleeping laptop, dead network)."""
        while True:
            await asyncio.sleep(self.ping_interval)
            if time.time() - session.last_seen_at > 3 * self.ping_interval:
                log.info("relay %s missed its pings; closing", session.name)
                return
            await ws.send_text('{"type":"ping"}')


async def _refuse(ws: WebSocket, code: str, message: str) -> None:
    with contextlib.suppress(Exception):
        await ws.send_text(json.dumps({"type": "error", "code": code, "message": message}))
        await ws.close(4400, message[:100])
