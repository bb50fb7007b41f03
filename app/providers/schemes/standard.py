"""Standard Webhooks (and Svix, Clerk, Resend, GitLab's signing token).

``webhook-signature: v1,<base64> [v1,<base64> …]`` over ``"{id}.{ts}.{body}"``
keyed with the base64-decoded ``whsec_`` secret. Svix senders use the same
construction under ``svix-*`` header names.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from app.providers import crypto
from app.providers.config import VerifyConfig, decode_whsec
from app.providers.schemes.base import (
    HmacScheme,
    Parsed,
    Problem,
    Resigned,
    require_timestamp,
    set_headers,
)
from app.providers.types import SignedRequest

_FAMILIES = (
    ("svix-id", "svix-timestamp", "svix-signature"),
    ("webhook-id", "webhook-timestamp", "webhook-signature"),
)
_CANONICAL = {
    "svix": ("svix-id", "svix-timestamp", "svix-signature"),
    "webhook": ("webhook-id", "webhook-timestamp", "webhook-signature"),
}


def _family(headers: SignedRequest) -> tuple[str, str, str] | None:
    for family in _FAMILIES:
        if headers.header(family[2]) is not None:
            return family
    return None


class StandardScheme(HmacScheme):
    name = "standard-webhooks"
    signature_header = "webhook-signature"
    encoding = "base64"
    default_tolerance = 300

    def key(self, secret: str) -> bytes:
        key = decode_whsec(secret)
        if key is None:
            raise Problem("secret is not a whsec_… secret")
        return key

    def parse(self, req: SignedRequest, config: VerifyConfig) -> Parsed:
        family = _family(req)
        if family is None:
            raise Problem(
                "no signature header (expected webhook-signature or svix-signature)"
            )
        id_name, ts_name, sig_name = family
        msg_id = req.header(id_name)
        if msg_id is None or not msg_id.strip():
            raise Problem(f"no id header (expected {id_name})")
        timestamp = require_timestamp(req, ts_name)
        raw = (req.header(sig_name) or "").strip()
        entries = raw.split()
        if not entries or any("," not in e for e in entries):
            raise Problem(
                f"malformed header ({sig_name} entries must look like v1,<base64>)"
            )
        shown: list[str] = []
        decoded: list[bytes] = []
        for entry in entries:
            version, _, signature = entry.partition(",")
            # The spec's other versions (v1a = Ed25519) are skipped, as the
            # official libraries do.
            if version != "v1":
                continue
            shown.append(entry)
            value = crypto.decode(signature, "base64")
            if value is not None:
                decoded.append(value)
        if not shown:
            raise Problem(f"malformed header ({sig_name} has no v1 signature)")
        message = (
            crypto.header_bytes(msg_id.strip())
            + b"."
            + str(timestamp).encode()
            + b"."
            + req.body
        )
        return Parsed(
            tuple(shown), tuple(decoded), (message,), timestamp, header=sig_name
        )

    def render(self, digest: bytes, parsed: Parsed, config: VerifyConfig) -> str:
        return "v1," + crypto.encode(digest, "base64")

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
        return Resigned(
            url, sign_standard(config.scheme, secret, headers, body, now), body
        )


def sign_standard(
    scheme: str,
    secret: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    now: float,
) -> list[tuple[str, str]]:
    """Fresh Standard Webhooks headers, in whichever family the request used."""
    key = decode_whsec(secret)
    if key is None:
        raise ValueError("re-signing secret is not a whsec_… secret")
    present = {name.lower(): value for name, value in reversed(list(headers))}
    families = [f for f in _FAMILIES if f[2] in present or f[0] in present]
    if not families:
        default = "svix" if scheme in ("svix", "clerk", "resend") else "webhook"
        families = [_CANONICAL[default]]
    ts = str(int(now))
    # Keep the sender's message id so the dev server's own dedupe sees a
    # retry, not a new event; GitLab's Idempotency-Key is the same value.
    msg_id = next(
        (present[f[0]] for f in families if present.get(f[0], "").strip()),
        present.get("idempotency-key", "").strip()
        or "msg_" + hashlib.sha256(ts.encode() + b"." + body).hexdigest()[:24],
    )
    message = crypto.header_bytes(msg_id) + b"." + ts.encode() + b"." + body
    signature = "v1," + crypto.encode(crypto.mac("sha256", key, message), "base64")
    updates: list[tuple[str, str]] = []
    for id_name, ts_name, sig_name in families:
        updates += [(id_name, msg_id), (ts_name, ts), (sig_name, signature)]
    return set_headers(headers, updates)
