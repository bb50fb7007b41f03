"""Deliveries as data: one row per (request, way of delivering it), updated on each attempt.

kind: "forward" (server-side, per target, retried), "relay" (a `hookscope forward` client acknowledged it),
"replay" (sent on demand, possibly edited). state: "pending" (waiting for a retry), "delivered" (the target
answered 1xx-3xx), "failed" (it answered 4xx, or the guard refused it: not worth retrying), "dead" (retries
exhausted; can be retried by hand).

Pure data: nothing here sends anything (the sender turns responses and errors into an `Outcome`); `AnswerSink`
is the one interface, so that deliverers need not know who waits for an answer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from app.delivery.outgoing import RawHeaders
from app.delivery.retry import retryable_status
from app.models import body_to_text, latin1_to_display, rfc3339

DeliveryKind = Literal["forward", "relay", "replay"]
DeliveryState = Literal["pending", "delivered", "failed", "dead"]
# The store keeps the newest this many history entries of a delivery (each attempt appends one); `attempts`
# still counts every attempt.
MAX_HISTORY = 200


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt got: a response, or an error message."""

    status: int | None = None
    latency_ms: float | None = None
    headers: RawHeaders = field(default_factory=list)
    body: bytes = b""
    body_size: int = 0
    error: str | None = None
    at: float = field(default_factory=time.time)
    final: bool = False  # never retry (the guard refused the target, or the target URL is unusable)

    @classmethod
    def failure(cls, error: str, latency_ms: float | None = None, final: bool = False) -> Outcome:
        return cls(error=error, latency_ms=latency_ms, final=final)

    @property
    def ok(self) -> bool:
        return self.status is not None and self.status < 400

    @property
    def retryable(self) -> bool:
        if self.final:
            return False
        return self.status is None or retryable_status(self.status)

    def history_entry(self) -> dict[str, Any]:
        return {"at": self.at, "status": self.status, "latency_ms": self.latency_ms, "error": self.error}


class AnswerSink(Protocol):
    """Who wants a target's answer to a delivered request before it is recorded (passthrough hands it back to
    the original sender). Deliverers call `offer` for every HTTP answer they get, complete or cut short; it runs
    on the event loop and must not block, await or raise."""

    def offer(self, request_id: int, status: int, headers: RawHeaders, body: bytes, complete: bool) -> None: ...


@dataclass(frozen=True, slots=True)
class DeliveryUpdate:
    """A write to the deliveries table: insert, or update the row of (request, kind, target, relay)."""

    request_id: int
    endpoint_id: str
    kind: DeliveryKind
    target: str
    relay: str
    state: DeliveryState
    attempts: int
    outcome: Outcome
    next_attempt_at: float | None = None
    sent: dict[str, Any] | None = None  # the edited request, for edit-and-replay
    delivery_id: int | None = None  # update this row (manual retry of a replay) instead of upserting


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    request_id: int
    endpoint_id: str
    kind: DeliveryKind
    target: str
    relay: str
    state: DeliveryState
    attempts: int
    created_at: float
    updated_at: float
    next_attempt_at: float | None
    status: int | None
    latency_ms: float | None
    error: str | None
    response_headers: RawHeaders
    response_body: bytes
    response_size: int
    history: list[dict[str, Any]]  # the newest MAX_HISTORY attempts, oldest first
    sent: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        body, encoding = body_to_text(self.response_body, allow_partial=self.response_size > len(self.response_body))
        return {
            "id": self.id,
            "request_id": self.request_id,
            "endpoint_id": self.endpoint_id,
            "kind": self.kind,
            "target": self.target,
            "relay": self.relay or None,
            "state": self.state,
            "attempts": self.attempts,
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(self.updated_at),
            "next_attempt_at": rfc3339(self.next_attempt_at) if self.next_attempt_at else None,
            "status": self.status,
            "latency_ms": self.latency_ms,
            "error": self.error,
            "response_headers": [
                [latin1_to_display(n.decode("latin-1"))[0], latin1_to_display(v.decode("latin-1"))[0]]
                for n, v in self.response_headers
            ],
            "response_body": body,
            "response_body_encoding": encoding,
            "response_size": self.response_size,
            "response_truncated": self.response_size > len(self.response_body),
            "history": [
                {**h, "at": rfc3339(h["at"])} for h in self.history
            ],
            "sent": self.sent,
        }
