"""Slack and Zoom: ``v0=<hex>`` over ``"v0:{ts}:{body}"`` with a timestamp header."""

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
    require_timestamp,
    set_headers,
)
from app.providers.types import SignedRequest


class V0Scheme(HmacScheme):
    sig_name = ""
    ts_name = ""
    ts_header = ""

    def parse(self, req: SignedRequest, config: VerifyConfig) -> Parsed:
        value = require_header(req, self.sig_name, self.signature_header)
        timestamp = require_timestamp(req, self.ts_name)
        label, sep, signature = value.partition("=")
        decoded = crypto.decode(signature, "hex") if sep and label == "v0" else None
        if decoded is None:
            raise Problem(
                f"malformed header ({self.signature_header} must look like v0=<hex>)"
            )
        message = b"v0:" + str(timestamp).encode("ascii") + b":" + req.body
        return Parsed((value,), (decoded,), (message,), timestamp)

    def render(self, digest: bytes, parsed: Parsed, config: VerifyConfig) -> str:
        return "v0=" + digest.hex()

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
            "sha256", self.key(secret), b"v0:" + ts.encode() + b":" + body
        )
        updates = [(self.signature_header, "v0=" + digest.hex()), (self.ts_header, ts)]
        return Resigned(url, set_headers(headers, updates), body)


class SlackScheme(V0Scheme):
    name = "slack"
    signature_header = "X-Slack-Signature"
    sig_name = "x-slack-signature"
    ts_name = "x-slack-request-timestamp"
    ts_header = "X-Slack-Request-Timestamp"
    default_tolerance = 300


class ZoomScheme(V0Scheme):
    # Zoom's own SDK checks no timestamp; a tolerance is opt-in policy here.
    name = "zoom"
    signature_header = "x-zm-signature"
    sig_name = "x-zm-signature"
    ts_name = "x-zm-request-timestamp"
    ts_header = "x-zm-request-timestamp"
    default_tolerance = None
