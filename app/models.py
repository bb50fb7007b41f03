"""Value types shared by the store, the API and the capture path, and their JSON shapes.

Captured header names and values, the sub-path and the query string are kept as ``str`` decoded from the raw
bytes with ISO-8859-1. That mapping is one byte to one code point, so it is lossless and never fails: the
original bytes are always ``value.encode("latin-1")``. JSON shows a value as UTF-8 text when its bytes are
valid UTF-8, and otherwise as the ISO-8859-1 text, listing its index in ``headers_latin1``.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from app.endpoint_settings import EndpointSettings
from app.providers.types import VerdictStatus

if TYPE_CHECKING:
    from app.store.requests import BodySpool

Header = tuple[str, str]


def new_endpoint_id() -> str:
    """128 random bits, URL-safe (22 characters)."""
    return secrets.token_urlsafe(16)


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def latin1_to_display(value: str) -> tuple[str, bool]:
    """Return (text, is_latin1): UTF-8 text when the raw bytes are valid UTF-8, else the ISO-8859-1 text."""
    if value.isascii():
        return value, False
    try:
        return value.encode("latin-1").decode("utf-8"), False
    except UnicodeDecodeError:
        return value, True


def display_to_latin1(text: str) -> str:
    """Inverse of latin1_to_display for user-supplied text (UTF-8 on the wire)."""
    return text.encode("utf-8").decode("latin-1")


@dataclass(frozen=True, slots=True)
class ResponseSpec:
    """What an endpoint answers the sender. body None means the default JSON naming the request id."""

    status: int = 200
    headers: tuple[Header, ...] = ()
    body: str | None = None
    delay: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "headers": [list(h) for h in self.headers],
            "body": self.body,
            "delay": self.delay,
        }


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: str
    name: str
    created_at: float
    response: ResponseSpec = field(default_factory=ResponseSpec)
    # Feature settings (verification, re-signing, forwarding, passthrough), parsed once when written.
    settings: EndpointSettings = field(default_factory=EndpointSettings)


@dataclass(frozen=True, slots=True)
class EndpointStats:
    request_count: int = 0
    last_request_at: float | None = None


# NewRequest and CapturedRequest are built for every capture, so they are plain slotted dataclasses: a frozen
# one's __init__ sets each of ~20 fields through object.__setattr__, ten times the cost (bench/profile.py). They
# are values all the same: the capture path fills a NewRequest's analysis before handing it to the store, and
# nothing changes either afterwards (a CapturedRequest is shared by every consumer of its event); derive a changed
# copy with dataclasses.replace.


@dataclass(slots=True)
class NewRequest:
    """A request as captured, before it has an id. Its body is either in memory (`body`) or in the store's
    `spool` the capture path streamed it into (then body is None); the store takes over the spool on commit."""

    endpoint_id: str
    received_at: float
    method: str
    path: str
    query: str
    headers: tuple[Header, ...]
    body: bytes | None
    body_size: int
    client: str | None
    http_version: str
    rejected: str | None = None
    # Provider awareness, computed at capture time from the exact bytes (see app/awareness.py).
    provider: str | None = None
    event_type: str | None = None
    event_id: str | None = None
    verify_status: VerdictStatus = "unconfigured"
    verify_reason: str = ""
    spool: BodySpool | None = None

    @property
    def content_type(self) -> str:
        for name, value in self.headers:
            if name == "content-type":
                return value
        return ""


@dataclass(slots=True)
class CapturedRequest:
    """A committed capture. `id` is unique across the store and names the request (`/api/requests/{id}`);
    `seq` is its position in its endpoint: >= 1, strictly increasing in commit order within the endpoint, never
    reused (gaps allowed). Every "everything after N" cursor is a seq, because with several writers ids commit
    out of order (docs/events.md)."""

    id: int
    seq: int
    endpoint_id: str
    received_at: float
    method: str
    path: str
    query: str
    headers: tuple[Header, ...]
    body_size: int
    content_type: str
    client: str | None
    http_version: str
    rejected: str | None
    # The body when loaded; None when not (summaries, large bodies): the store's load_body / iter_body read it.
    body: bytes | None = None
    provider: str | None = None
    event_type: str | None = None
    event_id: str | None = None
    verify_status: VerdictStatus = "unconfigured"
    verify_reason: str = ""
    # The first request on the endpoint with the same provider event id (a provider retry), if any.
    duplicate_of: int | None = None

    @classmethod
    def from_new(cls, rid: int, new: NewRequest, duplicate_of: int | None = None, *, seq: int) -> CapturedRequest:
        # Positional, in field order: keyword arguments cost as much again on the capture path.
        return cls(
            rid, seq, new.endpoint_id, new.received_at, new.method, new.path, new.query, new.headers, new.body_size,
            new.content_type, new.client, new.http_version, new.rejected, new.body, new.provider, new.event_type,
            new.event_id, new.verify_status, new.verify_reason, duplicate_of,
        )

    def header(self, name: str) -> str | None:
        name = name.lower()
        for n, v in self.headers:
            if n == name:
                return v
        return None

    def summary_json(self) -> dict[str, Any]:
        """The list/live shape: everything but headers and body."""
        ctype, _ = latin1_to_display(self.content_type)
        return {
            "id": self.id,
            "seq": self.seq,
            "endpoint_id": self.endpoint_id,
            "received_at": rfc3339(self.received_at),
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "body_size": self.body_size,
            "content_type": ctype,
            "client": self.client,
            "rejected": self.rejected,
            "provider": self.provider,
            "event_type": self.event_type,
            "event_id": self.event_id,
            "verification": {"status": self.verify_status, "reason": self.verify_reason},
            "duplicate_of": self.duplicate_of,
        }

    def to_json(self, body: bytes | None, max_body: int | None = None) -> dict[str, Any]:
        """The full shape. body is the loaded body bytes (None for a summary without body)."""
        data = self.summary_json()
        headers: list[list[str]] = []
        latin1: list[int] = []
        for i, (name, value) in enumerate(self.headers):
            n, n_l1 = latin1_to_display(name)
            v, v_l1 = latin1_to_display(value)
            if n_l1 or v_l1:
                latin1.append(i)
            headers.append([n, v])
        data["headers"] = headers
        data["headers_latin1"] = latin1
        data["http_version"] = self.http_version
        if body is not None:
            truncated = max_body is not None and len(body) > max_body
            if truncated:
                body = body[:max_body]
            text, encoding = body_to_text(body, allow_partial=truncated)
            data["body"] = text
            data["body_encoding"] = encoding
            data["body_truncated"] = truncated
        return data


def body_to_text(body: bytes, allow_partial: bool = False) -> tuple[str, str]:
    """("text", "utf-8") for valid UTF-8 bytes, else ("<base64>", "base64").

    allow_partial accepts a UTF-8 sequence cut by truncation at the very end, dropping those 1-3 bytes.
    """
    try:
        return body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        if allow_partial and exc.start >= len(body) - 3 and exc.reason == "unexpected end of data":
            return body[: exc.start].decode("utf-8"), "utf-8"
        return base64.b64encode(body).decode("ascii"), "base64"
