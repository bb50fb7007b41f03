"""Schemes that MAC the body (optionally after the URL) with no timestamp.

Shopify: ``X-Shopify-Hmac-Sha256: <base64>`` over the body.
Square: ``x-square-hmacsha256-signature: <base64>`` over notification URL + body.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.providers import crypto
from app.providers.config import VerifyConfig
from app.providers.schemes.base import (
    HmacScheme,
    Parsed,
    Problem,
    Resigned,
    set_headers,
)
from app.providers.types import SignedRequest


def _single(value: str, header: str) -> tuple[tuple[str, ...], tuple[bytes, ...]]:
    decoded = crypto.decode(value, "base64")
    if decoded is None:
        raise Problem(f"malformed header ({header} is not base64)")
    return (value,), (decoded,)


class ShopifyScheme(HmacScheme):
    name = "shopify"
    signature_header = "X-Shopify-Hmac-Sha256"
    encoding = "base64"

    def parse(self, req: SignedRequest, config: VerifyConfig) -> Parsed:
        # Events-API deliveries use the unprefixed name; the SDK checks it first.
        for header in ("shopify-hmac-sha256", "x-shopify-hmac-sha256"):
            value = req.header(header)
            if value is not None and value.strip():
                shown, decoded = _single(value.strip(), header)
                return Parsed(shown, decoded, (req.body,), header=header)
        raise Problem("no signature header (expected X-Shopify-Hmac-Sha256)")

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
        value = crypto.encode(crypto.mac("sha256", self.key(secret), body), "base64")
        updates = [("X-Shopify-Hmac-Sha256", value)]
        if any(name.lower() == "shopify-hmac-sha256" for name, _ in headers):
            updates.append(("shopify-hmac-sha256", value))
        return Resigned(url, set_headers(headers, updates), body)


class SquareScheme(HmacScheme):
    name = "square"
    signature_header = "x-square-hmacsha256-signature"
    encoding = "base64"

    def parse(self, req: SignedRequest, config: VerifyConfig) -> Parsed:
        value = req.header("x-square-hmacsha256-signature")
        if value is None or not value.strip():
            raise Problem(
                "no signature header (expected x-square-hmacsha256-signature)"
            )
        shown, decoded = _single(value.strip(), "x-square-hmacsha256-signature")
        # Square signs the notification URL exactly as configured on the
        # subscription, which behind a proxy differs from what we received.
        url = config.url or req.url
        note = f"signed URL: {url}" + (
            ""
            if config.url
            else " (set verify.url if Square calls a different public URL)"
        )
        return Parsed(shown, decoded, (url.encode("utf-8") + req.body,), notes=(note,))

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
        digest = crypto.mac("sha256", self.key(secret), url.encode("utf-8") + body)
        value = crypto.encode(digest, "base64")
        return Resigned(
            url, set_headers(headers, [(self.signature_header, value)]), body
        )
