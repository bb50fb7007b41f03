"""Stripe: ``Stripe-Signature: t=<ts>,v1=<hex>[,v1=…]`` over ``"{t}.{body}"``."""

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


class StripeScheme(HmacScheme):
    name = "stripe"
    signature_header = "Stripe-Signature"
    default_tolerance = 300
    future_ok = True

    def parse(self, req: SignedRequest, config: VerifyConfig) -> Parsed:
        header = require_header(req, "stripe-signature", self.signature_header)
        timestamp: int | None = None
        v1: list[str] = []
        for item in header.split(","):
            key, sep, value = item.strip().partition("=")
            if not sep:
                raise Problem(
                    "malformed header (Stripe-Signature items must be key=value)"
                )
            if key == "t":
                timestamp = crypto.parse_int(value)
            elif key == "v1":
                v1.append(value.strip())
        if timestamp is None:
            raise Problem(
                "malformed header (Stripe-Signature has no valid t= timestamp)"
            )
        if not v1:
            raise Problem("malformed header (Stripe-Signature has no v1= signature)")
        # Like stripe-go, undecodable v1 values are ignored rather than fatal:
        # one bad entry must not hide a good one during secret rotation.
        decoded = tuple(
            d for d in (crypto.decode(s, "hex") for s in v1) if d is not None
        )
        message = str(timestamp).encode("ascii") + b"." + req.body
        return Parsed(tuple(v1), decoded, (message,), timestamp)

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
        digest = crypto.mac(
            "sha256", self.key(secret), ts.encode("ascii") + b"." + body
        )
        value = f"t={ts},v1={digest.hex()}"
        return Resigned(
            url, set_headers(headers, [(self.signature_header, value)]), body
        )
