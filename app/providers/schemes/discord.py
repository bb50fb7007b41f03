"""Discord: Ed25519 over ``timestamp + body`` with the application public key.

There is no shared secret: ``secrets`` hold public keys (hex) for verifying.
For re-signing, the dev secret is an Ed25519 private key *seed* (32 bytes,
hex); the dev server must then be configured with the matching public key,
which ``public_key_for_seed`` derives so the UI can show it.
"""

from __future__ import annotations

import binascii
from collections.abc import Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from app.providers import crypto
from app.providers.config import VerifyConfig
from app.providers.masking import mask_secret
from app.providers.schemes.base import (
    Problem,
    Resigned,
    Scheme,
    require_header,
    set_headers,
    tolerance_problem,
    valid_reason,
)
from app.providers.types import Explanation, SignedRequest, Verdict


def _public_key(hex_key: str) -> Ed25519PublicKey | None:
    try:
        raw = bytes.fromhex(hex_key.strip())
        return Ed25519PublicKey.from_public_bytes(raw) if len(raw) == 32 else None
    except ValueError:
        return None


def _private_key(seed_hex: str) -> Ed25519PrivateKey:
    try:
        raw = bytes.fromhex(seed_hex.strip())
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise ValueError(
            "Discord re-signing secret must be a 32-byte Ed25519 seed in hex"
        )
    return Ed25519PrivateKey.from_private_bytes(raw)


def public_key_for_seed(seed_hex: str) -> str:
    """Hex public key matching a re-signing seed (what the dev server verifies with)."""
    public = _private_key(seed_hex).public_key()
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


class DiscordScheme(Scheme):
    name = "discord"
    signature_header = "X-Signature-Ed25519"

    def _parse(self, req: SignedRequest) -> tuple[str, bytes, bytes]:
        value = require_header(req, "x-signature-ed25519", self.signature_header)
        timestamp = req.header("x-signature-timestamp")
        if timestamp is None:
            raise Problem("no timestamp header (expected X-Signature-Timestamp)")
        try:
            signature = binascii.unhexlify(value)
        except (binascii.Error, ValueError):
            signature = b""
        if len(signature) != 64:
            raise Problem(
                "malformed header (X-Signature-Ed25519 must be 128 hex characters)"
            )
        return value, signature, crypto.header_bytes(timestamp) + req.body

    def _match(
        self, signature: bytes, message: bytes, keys: Sequence[str]
    ) -> int | None:
        for index, hex_key in enumerate(keys):
            key = _public_key(hex_key)
            if key is None:
                continue
            try:
                key.verify(signature, message)
            except InvalidSignature:
                continue
            return index
        return None

    def verify(self, req: SignedRequest, config: VerifyConfig, now: float) -> Verdict:
        if not config.secrets:
            return Verdict("unconfigured", "no public key configured for discord")
        if all(_public_key(k) is None for k in config.secrets):
            return Verdict(
                "invalid",
                "configured key is not a Discord public key (64 hex characters)",
            )
        try:
            _, signature, message = self._parse(req)
        except Problem as problem:
            return Verdict("invalid", problem.reason)
        index = self._match(signature, message, config.secrets)
        if index is None:
            return Verdict("invalid", "signature mismatch")
        # Discord's libraries check no age; an explicit tolerance is opt-in.
        late = tolerance_problem(
            crypto.parse_int(req.header("x-signature-timestamp")),
            now,
            config.tolerance,
            False,
        )
        if late is not None:
            return Verdict("invalid", late, matched_secret=index)
        return Verdict(
            "valid", valid_reason(index, config.secrets), matched_secret=index
        )

    def explain(
        self, req: SignedRequest, config: VerifyConfig, now: float
    ) -> Explanation:
        verdict = self.verify(req, config, now)
        index = verdict.matched_secret or 0
        hint = mask_secret(config.secrets[index]) if config.secrets else None
        try:
            value, _, message = self._parse(req)
        except Problem:
            return Explanation(
                self.name, self.signature_header, hint, (), None, None, None, verdict
            )
        timestamp = crypto.parse_int(req.header("x-signature-timestamp"))
        # An Ed25519 signature cannot be recomputed from a public key, so
        # there is no "expected" value; the signed message is what helps.
        note = "Ed25519: only the sender's private key can produce the signature"
        return Explanation(
            self.name,
            self.signature_header,
            hint,
            (value,),
            None,
            message,
            timestamp,
            verdict,
            (note,),
        )

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
        signature = _private_key(secret).sign(ts.encode("ascii") + body).hex()
        updates = [("X-Signature-Ed25519", signature), ("X-Signature-Timestamp", ts)]
        return Resigned(url, set_headers(headers, updates), body)
