"""Replay and edit-and-replay: send a captured request (possibly changed) to a target once; the result is a
delivery of kind "replay". Manual retry of a dead or failed delivery lives here too. The SSRF guard applies
(the Sender connects only through it)."""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass
from typing import Any

from app.delivery.outgoing import TargetError, build_outgoing, parse_target
from app.delivery.records import Delivery, DeliveryState, DeliveryUpdate, Outcome
from app.delivery.resign import Resigner
from app.delivery.sender import Sender
from app.delivery.wire import describe_error
from app.models import CapturedRequest, display_to_latin1
from app.providers import mask_secret
from app.store.base import Store

log = logging.getLogger("hookscope.replay")

_TOKEN_CHARS = set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
MAX_EDIT_BODY = 2 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Edits:
    """Changes to apply before sending; None keeps the captured value."""

    method: str | None = None
    path: str | None = None
    query: str | None = None
    headers: tuple[tuple[str, str], ...] | None = None  # ISO-8859-1 strings of the bytes to send
    body: bytes | None = None

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.method, self.path, self.query, self.headers, self.body))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.method is not None:
            out["method"] = self.method
        if self.path is not None:
            out["path"] = self.path
        if self.query is not None:
            out["query"] = self.query
        if self.headers is not None:
            out["headers"] = [list(h) for h in self.headers]
        if self.body is not None:
            out["body"] = base64.b64encode(self.body).decode("ascii")
            out["body_encoding"] = "base64"
        return out

    @classmethod
    def from_stored(cls, data: dict[str, Any] | None) -> Edits:
        if not data:
            return cls()
        return cls(
            method=data.get("method"),
            path=data.get("path"),
            query=data.get("query"),
            headers=tuple((n, v) for n, v in data["headers"]) if data.get("headers") is not None else None,
            body=base64.b64decode(data["body"]) if data.get("body") is not None else None,
        )


def _text(value: Any, what: str, limit: int = 8192) -> str:
    if not isinstance(value, str) or len(value) > limit or any(c in value for c in "\r\n\0"):
        raise ValueError(f"{what} must be a string without line breaks (at most {limit} characters)")
    return value


def parse_edits(data: dict[str, Any]) -> Edits:
    """The optional method/path/query/headers/body(+body_encoding) of a replay request (UTF-8 text in JSON)."""
    method = path = query = None
    headers: tuple[tuple[str, str], ...] | None = None
    body: bytes | None = None
    if data.get("method") is not None:
        method = _text(data["method"], "method", 32).upper()
        if not method or not set(method) <= _TOKEN_CHARS:
            raise ValueError("method must be an HTTP token such as POST")
    if data.get("path") is not None:
        path = display_to_latin1(_text(data["path"], "path"))
        if path and not path.startswith("/"):
            raise ValueError("path must be empty or start with /")
        if any(c in path for c in " ?#"):
            raise ValueError("path must not contain spaces, ? or # (put the query in query)")
    if data.get("query") is not None:
        query = display_to_latin1(_text(data["query"], "query")).lstrip("?")
        if " " in query or "#" in query:
            raise ValueError("query must not contain spaces or #")
    if data.get("headers") is not None:
        raw = data["headers"]
        if not isinstance(raw, list) or len(raw) > 200:
            raise ValueError("headers must be a list of [name, value] pairs (at most 200)")
        pairs = []
        for item in raw:
            if not (isinstance(item, list) and len(item) == 2):
                raise ValueError("headers must be a list of [name, value] pairs")
            name = _text(item[0], "a header name", 256)
            if not name or not set(name) <= _TOKEN_CHARS:
                raise ValueError(f"header name {name!r} is not a valid HTTP token")
            pairs.append((name.lower(), display_to_latin1(_text(item[1], f"header {name}"))))
        headers = tuple(pairs)
    if data.get("body") is not None:
        if not isinstance(data["body"], str):
            raise ValueError("body must be a string (UTF-8 text, or base64 with body_encoding: base64)")
        if data.get("body_encoding", "utf-8") == "base64":
            try:
                body = base64.b64decode(data["body"], validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("body is not valid base64") from None
        else:
            body = data["body"].encode("utf-8")
        if len(body) > MAX_EDIT_BODY:
            raise ValueError("an edited body can be at most 2 MiB")
    return Edits(method, path, query, headers, body)


class RequestGone(Exception):
    """The captured request disappeared (deleted, cleared or pruned) before its delivery could be recorded."""


class Replayer:
    def __init__(self, store: Store, sender: Sender) -> None:
        self.store = store
        self.sender = sender

    async def replay(
        self, req: CapturedRequest, target: str, edits: Edits = Edits(), resigner: Resigner | None = None
    ) -> Delivery:
        """Send once and record a new "replay" delivery; returns it."""
        outcome = await self._send(req, target, edits, resigner)
        state: DeliveryState = "delivered" if outcome.ok else "failed"
        sent = edits.to_json() if edits.any else None
        if resigner is not None:
            sent = {**(sent or {}), "resigned_with": f"{resigner.scheme} {mask_secret(resigner.secret)}"}
        update = DeliveryUpdate(
            req.id, req.endpoint_id, "replay", target, "", state, 1, outcome, sent=sent,
        )
        return await self._stored(await self.store.record_delivery(update))

    async def retry(self, delivery: Delivery, req: CapturedRequest) -> Delivery:
        """Manual retry of a forward or replay delivery: one attempt now, recorded on the same row."""
        ep = self.store.cached_endpoint(req.endpoint_id)
        resigner = ep.settings.resign if ep is not None and delivery.kind == "forward" else None
        if delivery.kind == "replay" and delivery.sent and "resigned_with" in delivery.sent and ep is not None:
            resigner = ep.settings.resign
        outcome = await self._send(req, delivery.target, Edits.from_stored(delivery.sent), resigner)
        state: DeliveryState
        if outcome.ok:
            state = "delivered"
        elif delivery.kind == "forward" and outcome.retryable:
            state = "dead"  # still unreachable; the worker has moved on, so it stays dead until retried again
        else:
            state = "failed"
        update = DeliveryUpdate(
            req.id, req.endpoint_id, delivery.kind, delivery.target, delivery.relay, state, 1, outcome,
            delivery_id=delivery.id,
        )
        return await self._stored(await self.store.record_delivery(update))

    async def _send(
        self, req: CapturedRequest, target: str, edits: Edits, resigner: Resigner | None = None
    ) -> Outcome:
        """One attempt; a bug while making it becomes this delivery's failure (a replay of many goes on with
        the next request) instead of an error without a record."""
        try:
            return await self._attempt(req, target, edits, resigner)
        except Exception as exc:
            log.exception("replaying request %d to %s failed unexpectedly", req.id, target)
            return Outcome.failure(f"internal error while replaying: {describe_error(exc)}", final=True)

    async def _attempt(
        self, req: CapturedRequest, target: str, edits: Edits, resigner: Resigner | None = None
    ) -> Outcome:
        body = edits.body if edits.body is not None else await self.store.load_body(req)
        try:
            out = build_outgoing(
                parse_target(target),
                edits.method or req.method,
                edits.path if edits.path is not None else req.path,
                edits.query if edits.query is not None else req.query,
                edits.headers if edits.headers is not None else req.headers,
                body,
            )
        except TargetError as exc:
            return Outcome.failure(str(exc), final=True)
        if resigner is not None:
            try:
                out = resigner.outgoing(out)
            except ValueError as exc:
                return Outcome.failure(f"re-signing failed: {exc}", final=True)
        outcome, _ = await self.sender.attempt(out)
        return outcome

    async def _stored(self, delivery_id: int) -> Delivery:
        # record_delivery gives 0 when the request was deleted or pruned while it was being sent.
        delivery = await self.store.get_delivery(delivery_id) if delivery_id else None
        if delivery is None:
            raise RequestGone("the request was deleted or pruned while it was being replayed")
        return delivery
