"""Paddle Billing: ``Paddle-Signature: ts=<ts>;h1=<hex>[;h1=…]`` over ``"{ts}:{body}"``."""

from __future__ import annotations

from collections.abc import Sequence

from app.providers import crypto
from app.providers.config import VerifyConfig
from app.providers.schemes.base import (
    HmacScheme,
    Parsed,
    Problem,
    Resigned,
    require_header,
    set_headers,
)
from app.providers.types import SignedRequest


class PaddleScheme(HmacScheme):
    name = "paddle"
    signature_header = "Paddle-Signature"
    # Paddle's SDKs allow only 5 s of clock skew; captures are stamped on
    # arrival, so this is met unless the sender's clock is off.
    default_tolerance = 5

    def parse(self, req: SignedRequest, config: VerifyConfig) -> Parsed:
        header = require_header(req, "paddle-signature", self.signature_header)
        timestamp: int | None = None
        h1: list[str] = []
        for item in header.split(";"):
            key, sep, value = item.strip().partition("=")
            if not sep:
                raise Problem(
                    "malformed header (Paddle-Signature items must be key=value)"
                )
            if key == "ts":
                timestamp = crypto.parse_int(value)
            elif key == "h1":
                h1.append(value.strip())
        if timestamp is None:
            raise Problem("malformed header (Paddle-Signature has no valid ts=)")
        if not h1:
            raise Problem("malformed header (Paddle-Signature has no h1=)")
        decoded = tuple(
            d for d in (crypto.decode(s, "hex") for s in h1) if d is not None
        )
        message = str(timestamp).encode("ascii") + b":" + req.body
        return Parsed(tuple(h1), decoded, (message,), timestamp)

    def resign(
        self,
        config: VerifyConfig,
        secret: str,
        method: str,
        url: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        now: float,
    ) -> Resigned:
        ts = str(int(now))
        digest = crypto.mac("sha256", self.key(secret), ts.encode() + b":" + body)
        value = f"ts={ts};h1={digest.hex()}"
        return Resigned(
            url, set_headers(headers, [(self.signature_header, value)]), body
        )
