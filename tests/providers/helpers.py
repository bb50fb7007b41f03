"""Small builders shared by the provider tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from app.providers import SignedRequest

NOW = 1_700_000_000.0


def make(
    headers: Mapping[str, str] | Sequence[tuple[str, str]] = (),
    body: bytes | str = b"",
    url: str = "https://hooks.example.test/in/ep1",
    method: str = "POST",
    received_at: float = NOW,
) -> SignedRequest:
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    raw = body.encode() if isinstance(body, str) else body
    return SignedRequest.build(method, url, pairs, raw, received_at)


def as_request(
    url: str, headers: Sequence[tuple[str, str]], body: bytes, now: float
) -> SignedRequest:
    return SignedRequest.build("POST", url, list(headers), body, now)
