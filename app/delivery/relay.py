"""The server side of `hookscope forward`: named relays with durable, acknowledged cursors.

Protocol (JSON text frames over the websocket `/api/endpoints/{id}/relay?name=NAME[&from=now|all|ID]`):

server -> client
  {"type": "hello", "endpoint": ID, "relay": NAME, "acked_id": S, "acked_seq": S, "ping_interval": SECONDS,
   "skipped": T}                                     (S: the position (seq) acknowledged; both fields hold it)
  {"type": "skipped", "count": N, "total": T}       (retention pruned N more captures this relay had not acked)
  {"type": "request", "id": N, "seq": S, "received_at": EPOCH, "method": M, "path": SUB_PATH, "query": RAW_QUERY,
   "headers": [[name, value], ...], "body": BASE64, "want_response": BOOL}
      id: the request (as in /api/requests/{id}); seq: its position in the endpoint.
      header names/values, path and query are ISO-8859-1 strings of the raw bytes (lossless)
  {"type": "batch", "items": [request, ...]}         (several waiting requests in one frame, in order)
  {"type": "ping"} / {"type": "pong"}
  {"type": "error", "code": CODE, "message": TEXT}   (then the server closes)
client -> server
  {"type": "ack", "id": N, "target": URL, "attempts": K, "status": S | null, "latency_ms": MS | null,
   "error": TEXT | null, "headers": [[name, value], ...], "body": BASE64, "body_size": BYTES}
  {"type": "acks", "items": [ack, ...]}              (several acks in one frame, in order)
  {"type": "ping"} / {"type": "pong"}

The server sends requests in seq order, at most WINDOW unacknowledged. The client delivers them in order and
acks each one, by id, after the target answered (any status), or after it gave up on an unreachable target
(`error` set): either way the request is done for that relay and the cursor moves past the seq the server sent
with that id, in the same transaction that records the delivery. An ack naming no request this connection sent
and has not had acknowledged is ignored. A request sent but not acked (crash, lost connection, laptop asleep)
is sent again on the next connection: at-least-once. `from` (all, now, or a seq to start at) resets the cursor;
without it a known relay resumes from its cursor, and a new one starts at "now".

Several instances on one database: a relay is served by the instance it is connected to, which holds the store's
lease ("relay", endpoint, name) for its instance id (app/store/leases.py). A connection TAKES the lease over,
whoever held it (a relay reconnecting through another instance after a network change, a load balancer, or the old
instance's death), and renews it with each ping; a renewal that finds another owner means the relay connected
elsewhere since, and this stale socket is closed (4000, as for a reconnection to this same instance). The lease
lasts three ping intervals, the silence after which a relay counts as gone. `RelaySessions` stays this instance's;
passthrough asks it first, then the relay leases (a relay held by another instance answers a capture taken here
through its recorded delivery: app/ingest/passthrough.py).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import re
import time
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from app.delivery.feed import CaptureFeed
from app.delivery.pending_writes import PendingWrites
from app.delivery.records import AnswerSink, DeliveryState, DeliveryUpdate, Outcome
from app.delivery.relay_sessions import RelaySession, RelaySessions
from app.delivery.wire import describe_error
from app.events.bus import EventBus, Subscription, SubscriptionEvicted
from app.events.types import RequestsRemoved
from app.models import CapturedRequest, Endpoint
from app.store.base import CursorAdvance, Store
from app.tasks import first_completed
from app.unicode_safe import find_surrogate

log = logging.getLogger("hookscope.relay")

WINDOW = 64
MAX_BATCH = 32
NAME_RE = re.compile(r"^[A-Za-z0-9._:@-]{1,100}$")
MAX_ACK_BODY = 1024 * 1024


class RelayHub:
    def __init__(
        self, store: Store, bus: EventBus, feed: CaptureFeed, writes: PendingWrites, passthrough: AnswerSink | None,
        sessions: RelaySessions, ping_interval: float, instance: str,
    ) -> None:
        """instance: this process's id, the owner of the relay leases of its connections."""
        self.store = store
        self.instance = instance
        self.bus = bus
        self.feed = feed
        self.writes = writes
        self.passthrough = passthrough
        self.ping_interval = ping_interval
        self.sessions = sessions

    async def status(self, endpoint_id: str) -> list[dict[str, Any]]:
        """Relays of an endpoint: connected ones and every one with a stored cursor."""
        rows: dict[str, dict[str, Any]] = {}
        skipped = await self.store.skipped_counts(endpoint_id, "relay")
        owners = await self.store.lease_owners(endpoint_id, "relay")
        for name, acked, updated in await self.store.list_cursors(endpoint_id, "relay"):
            # "acked_id" holds a seq (the field keeps its historical name).
            rows[name] = {"name": name, "connected": False, "acked_id": acked, "acked_at": updated,
                          "connected_at": None, "last_seen_at": None, "remote": None, "in_flight": 0}
        for s in self.sessions.of_endpoint(endpoint_id):
            row = rows.setdefault(s.name, {"name": s.name, "acked_at": None})
            row.update(connected=True, acked_id=max(s.acked_seq, row.get("acked_id") or 0),
                       connected_at=s.connected_at, last_seen_at=s.last_seen_at, remote=s.remote,
                       in_flight=s.in_flight)
        for row in rows.values():
            row["pending"] = await self.store.count_requests_after(endpoint_id, row["acked_id"])
            row["skipped"] = skipped.get(row["name"], 0)
            # The instance serving it, maybe another one ("connected" and what follows it are this instance's).
            row["owner"] = owners.get(row["name"])
        return sorted(rows.values(), key=lambda r: r["name"])

    async def close_all(self) -> None:
        """At shutdown: close every relay socket (its handler then ends on its own)."""
        for s in self.sessions.all():
            if s.websocket is not None:
                with contextlib.suppress(Exception):
                    await s.websocket.close(1001)

    async def serve(self, ws: WebSocket) -> None:
        """The websocket handler. Its three tasks (sender, receiver, pinger) are owned and awaited here."""
        ep = await self.store.find_endpoint(ws.path_params["endpoint_id"])
        name = ws.query_params.get("name", "")
        await ws.accept()
        if ep is None:
            await _refuse(ws, "endpoint_not_found", "no such endpoint")
            return
        if not NAME_RE.match(name):
            await _refuse(ws, "invalid_name", "name must be 1-100 characters of A-Z a-z 0-9 . _ : @ -")
            return
        # Before the cursor is read: the instance serving this relay until now stops at its next renewal, and
        # whatever it still acks only moves the cursor forward (never back past what we read).
        if not await self.store.take_over_lease("relay", ep.id, name, self.instance, self._lease_ttl):
            await _refuse(ws, "endpoint_not_found", "no such endpoint")
            return
        try:
            cursor = await self._start_cursor(ep, name, ws.query_params.get("from"))
        except ValueError as exc:
            await self._release(ep.id, name)
            await _refuse(ws, "invalid_from", str(exc))
            return
        client = ws.client
        session = RelaySession(ep.id, name, f"{client.host}:{client.port}" if client else None, cursor)
        session.websocket = ws
        old = self.sessions.put(session)
        if old is not None and old.websocket is not None:
            # The same relay reconnected (laptop woke up, network changed): the old socket is stale.
            with contextlib.suppress(Exception):
                await old.websocket.close(4000, "replaced by a new connection")
        log.info("relay %s connected to endpoint %s at cursor %d", name, ep.id, cursor)
        window = asyncio.Semaphore(WINDOW)
        # Subscribed before the hello's total is read: a prune committed after that read is in this queue.
        removals = self.bus.subscribe(ep.id, kinds=(RequestsRemoved,))
        try:
            skipped = (await self.store.skipped_counts(ep.id, "relay")).get(name, 0)
            await ws.send_text(json.dumps({"type": "hello", "endpoint": ep.id, "relay": name, "acked_id": cursor,
                                           "acked_seq": cursor, "ping_interval": self.ping_interval,
                                           "skipped": skipped}))
            tasks = [
                asyncio.create_task(self._sender(ws, session, window), name="relay-sender"),
                asyncio.create_task(self._receiver(ws, session, window), name="relay-receiver"),
                asyncio.create_task(self._pinger(ws, session), name="relay-pinger"),
                asyncio.create_task(self._notifier(ws, session, removals, skipped), name="relay-notifier"),
            ]
            done = await first_completed(tasks)
            for t in done:
                error = t.exception()
                if error is not None and not isinstance(error, WebSocketDisconnect | OSError):
                    log.warning("relay %s ended: %r", name, error)
        finally:
            removals.close()
            self.sessions.remove(session)
            with contextlib.suppress(Exception):
                await ws.close()
            await self._release(ep.id, name)
            log.info("relay %s disconnected (acked %d)", name, session.acked_seq)

    @property
    def _lease_ttl(self) -> float:
        # The silence after which the pinger drops a relay: the lease outlives a live connection's renewals.
        return 3 * self.ping_interval

    async def _release(self, endpoint_id: str, name: str) -> None:
        """Give the relay's lease up unless a newer connection of it to this instance holds it (the lease is the
        instance's, so it is that connection's now). Best effort: unreleased, the lease expires."""
        if self.sessions.get(endpoint_id, name) is not None:
            return
        try:
            await self.store.release_lease("relay", endpoint_id, name, self.instance)
        except Exception as exc:
            log.warning("relay %s: could not release its lease (it will expire): %s", name, exc)

    async def _start_cursor(self, ep: Endpoint, name: str, start: str | None) -> int:
        if start is None or start == "":
            stored = await self.store.get_cursor("relay", ep.id, name)
            if stored is not None:
                return stored
            start = "now"
        if start == "all":
            value = 0
        elif start == "now":
            value = await self.store.last_seq(ep.id)
        else:
            # A position (seq) in the endpoint, the first one to send (on SQLite the same number as a request id).
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
                async for req in self.feed.follow(session.endpoint_id, session.acked_seq):
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
                    try:
                        item = await self._request_item(req)
                    except Exception as exc:  # one request we cannot send (body file gone) must not end the relay
                        window.release()
                        self._unsendable(session, req, exc)
                        continue
                    items.append(item)
                    session.unacked[req.id] = req.seq
                if not items:
                    continue
                frame = items[0] if len(items) == 1 else {"type": "batch", "items": items}
                await ws.send_text(json.dumps(frame))
        finally:
            pump_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump_task

    def _unsendable(self, session: RelaySession, req: CapturedRequest, exc: Exception) -> None:
        """Record a request we could not even send as this relay's dead delivery. The cursor moves past it only
        when nothing sent before it is still unacknowledged (the cursor never jumps over an unacked request);
        otherwise the next ack after it moves it, and a reconnect tries it once more."""
        reason = f"could not relay this request: {describe_error(exc)}"[:1000]
        log.warning("relay %s: request %d: %s", session.name, req.id, reason)
        cursor: CursorAdvance | None = ("relay", session.name, req.seq) if not session.unacked else None
        update = DeliveryUpdate(req.id, session.endpoint_id, "relay", "", session.name, "dead", 1,
                                Outcome.failure(reason))
        self.writes.track(self.store.record_delivery(update, cursor))
        if cursor is not None:
            session.acked_seq = max(session.acked_seq, req.seq)

    async def _request_item(self, req: CapturedRequest) -> dict[str, Any]:
        body = await self.feed.body_of(req)
        ep = self.store.cached_endpoint(req.endpoint_id)
        headers = req.headers
        resigner = ep.settings.resign if ep is not None else None
        if resigner is not None:
            try:
                headers, body = resigner.relayed(req.method, req.path, req.query, req.headers, body)
            except ValueError:
                log.warning("re-signing failed for request %d; relaying it as captured", req.id, exc_info=True)
        return {
            "type": "request",
            "id": req.id,
            "seq": req.seq,
            "received_at": req.received_at,
            "method": req.method,
            "path": req.path,
            "query": req.query,
            "headers": headers,
            "body": base64.b64encode(body).decode("ascii"),
            "want_response": ep is not None and ep.settings.passthrough is not None,
        }

    async def _receiver(self, ws: WebSocket, session: RelaySession, window: asyncio.Semaphore) -> None:
        while True:
            text = await ws.receive_text()
            session.last_seen_at = time.time()
            try:
                msg = json.loads(text, parse_constant=_not_json)
                kind = msg.get("type")
            except (ValueError, AttributeError, RecursionError):
                continue
            if kind == "ping":
                await ws.send_text('{"type":"pong"}')
            elif kind in ("ack", "acks"):
                for item in [msg] if kind == "ack" else _list(msg.get("items")):
                    if self._settle(session, item):
                        window.release()

    def _settle(self, session: RelaySession, item: Any) -> bool:
        """Apply one ack item; returns whether it settled a request this connection sent and had not had
        acknowledged (then its window slot is free). Anything else is logged and ignored: acking a request not
        sent yet would move the cursor past it."""
        rid = item.get("id") if isinstance(item, dict) else None
        # The type check first: JSON true is an int to Python, and a float 1.0 would find the key 1.
        seq = session.unacked.pop(rid, None) if isinstance(rid, int) and not isinstance(rid, bool) else None
        if seq is None or not isinstance(rid, int):
            log.warning("relay %s sent an ack for no request it was sent: %.100r", session.name, item)
            return False
        try:
            self._ack(session, item, rid, seq)
        except Exception as exc:  # one unusable ack must not hold its window slot or end the relay
            self._bad_ack(session, rid, seq, exc)
        return True

    def _ack(self, session: RelaySession, msg: dict[str, Any], rid: int, seq: int) -> None:
        """Record the delivery the ack reports for request `rid`, moving the cursor to `seq` (what was sent with
        it). Raises ValueError when the ack's values are unusable."""
        check_ack(msg)
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
        state: DeliveryState = "delivered" if outcome.ok else ("failed" if outcome.status is not None else "dead")
        update = DeliveryUpdate(
            rid, session.endpoint_id, "relay", str(msg.get("target") or "")[:2000], session.name, state,
            max(1, int(msg.get("attempts") or 1)), outcome,
        )
        self.writes.track(self.store.record_delivery(update, ("relay", session.name, seq)))
        session.acked_seq = max(session.acked_seq, seq)

    def _bad_ack(self, session: RelaySession, rid: int, seq: int, exc: Exception) -> None:
        """An ack we could not use becomes the dead delivery of the request it names (one this connection sent):
        the request is then done for this relay like after any ack (the client would answer a resend with the
        same ack)."""
        reason = f"the relay sent an unusable ack: {exc}"[:1000].encode("utf-8", "replace").decode("utf-8")
        log.warning("relay %s: request %d: %s", session.name, rid, reason)
        update = DeliveryUpdate(rid, session.endpoint_id, "relay", "", session.name, "dead", 1,
                                Outcome.failure(reason))
        self.writes.track(self.store.record_delivery(update, ("relay", session.name, seq)))
        session.acked_seq = max(session.acked_seq, seq)

    async def _notifier(self, ws: WebSocket, session: RelaySession, removals: Subscription, total: int) -> None:
        """Tell the relay at once when retention prunes captures it had not acknowledged (the store's
        RequestsRemoved(reason="pruned") events). `total` is the count it already knows (from the hello); a
        notice never repeats or goes backwards. Evicted, it rereads the count from the database."""
        try:
            while True:
                try:
                    event = await removals.get()
                except SubscriptionEvicted:
                    removals = self.bus.subscribe(session.endpoint_id, kinds=(RequestsRemoved,))
                    now = (await self.store.skipped_counts(session.endpoint_id, "relay")).get(session.name, 0)
                    if now > total:
                        await ws.send_text(json.dumps({"type": "skipped", "count": now - total, "total": now}))
                        total = now
                    continue
                if not isinstance(event, RequestsRemoved):
                    continue
                for s in event.skipped:
                    if s.kind == "relay" and s.name == session.name and s.total > total:
                        await ws.send_text(json.dumps({"type": "skipped", "count": s.count, "total": s.total}))
                        total = s.total
        finally:
            removals.close()

    async def _pinger(self, ws: WebSocket, session: RelaySession) -> None:
        """Ping every interval; a client silent for three intervals is gone (sleeping laptop, dead network).
        Each ping renews the relay's lease; when another instance holds it, the relay reconnected there and
        this socket is stale: closed like one replaced on this instance."""
        while True:
            await asyncio.sleep(self.ping_interval)
            if time.time() - session.last_seen_at > 3 * self.ping_interval:
                log.info("relay %s missed its pings; closing", session.name)
                return
            if not await self._renew(session):
                log.info("relay %s connected through another instance; closing this connection", session.name)
                with contextlib.suppress(Exception):
                    await ws.close(4000, "replaced by a new connection")
                return
            await ws.send_text('{"type":"ping"}')

    async def _renew(self, session: RelaySession) -> bool:
        """False when another owner holds the lease (or the endpoint is gone). A store error keeps the
        connection (the relay is here and live; its acks tell whether the store works): the next ping tries
        again."""
        try:
            return await self.store.acquire_lease("relay", session.endpoint_id, session.name, self.instance,
                                                  self._lease_ttl)
        except Exception as exc:
            log.warning("relay %s: renewing its lease failed: %s", session.name, exc)
            return True


def check_ack(msg: Any) -> None:
    """Raise ValueError unless an ack item has the shape of the protocol above, with values the store can keep:
    no lone surrogates, numbers in range, latin-1 headers. (Whether its id names a request this connection sent
    is the caller's check: RelayHub._settle.)"""
    if not isinstance(msg, dict):
        raise ValueError("an ack is a JSON object")
    where = find_surrogate(msg)
    if where is not None:
        raise ValueError(f"ack {where} holds a lone surrogate")
    for name, lo, hi in (("status", 100, 999), ("attempts", 0, 2**31), ("body_size", 0, 2**62)):
        if msg.get(name) is not None and not _int_in(msg[name], lo, hi):
            raise ValueError(f"ack {name} must be an integer from {lo} to {hi}")
    latency = msg.get("latency_ms")
    if latency is not None and (isinstance(latency, bool) or not isinstance(latency, int | float)
                                or not 0 <= latency <= 1e10):
        raise ValueError("ack latency_ms must be a number of milliseconds")
    for name in ("target", "error", "body"):
        if msg.get(name) is not None and not isinstance(msg[name], str):
            raise ValueError(f"ack {name} must be a string")
    headers = msg.get("headers")
    if headers is not None:
        if not isinstance(headers, list) or not all(
            isinstance(h, list) and len(h) == 2 and all(isinstance(x, str) for x in h) for h in headers
        ):
            raise ValueError("ack headers must be a list of [name, value] strings")
        for pair in headers:
            for text in pair:
                # Raises UnicodeEncodeError, a ValueError: header bytes travel as ISO-8859-1 text.
                text.encode("latin-1")


def _int_in(value: Any, lo: int, hi: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _not_json(name: str) -> Any:
    # json.loads takes NaN and Infinity; int(Infinity) would raise OverflowError, which nothing expects.
    raise ValueError(f"{name} is not JSON")


async def _refuse(ws: WebSocket, code: str, message: str) -> None:
    with contextlib.suppress(Exception):
        await ws.send_text(json.dumps({"type": "error", "code": code, "message": message}))
        await ws.close(4400, message[:100])
