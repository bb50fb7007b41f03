"""GitHub: ``X-Hub-Signature-256: sha256=<hex>`` (legacy ``X-Hub-Signature: sha1=``)."""

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


class GithubScheme(HmacScheme):
    name = "github"
    signature_header = "X-Hub-Signature-256"

    def parse(self, req: SignedRequest, config: VerifyConfig) -> Parsed:
        # Prefer SHA-256 whenever GitHub sent it; SHA-1 only for old senders
        # (and Intercom-style integrations) that send nothing else.
        for header, algorithm in (
            ("x-hub-signature-256", "sha256"),
            ("x-hub-signature", "sha1"),
        ):
            value = req.header(header)
            if value is None or not value.strip():
                continue
            label, sep, signature = value.strip().partition("=")
            if not sep or label != algorithm:
                raise Problem(
                    f"malformed header ({header} must look like {algorithm}=<hex>)"
                )
            decoded = crypto.decode(signature, "hex")
            if decoded is None:
                raise Problem(f"malformed header ({header} signature is not hex)")
            return Parsed(
                (value.strip(),),
                (decoded,),
                (req.body,),
                algorithm=algorithm,
                header=header,
            )
        raise Problem("no signature header (expected X-Hub-Signature-256)")

    def render(self, digest: bytes, parsed: Parsed, config: VerifyConfig) -> str:
        return f"{parsed.algorithm}={digest.hex()}"

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
        key = self.key(secret)
        updates = [
            ("X-Hub-Signature-256", "sha256=" + crypto.mac("sha256", key, body).hex())
        ]
        if any(name.lower() == "x-hub-signature" for name, _ in headers):
            # GitHub still sends the SHA-1 header; keep it consistent if present.
            updates.append(
                ("X-Hub-Signature", "sha1=" + crypto.mac("sha1", key, body).hex())
            )
        return Resigned(url, set_headers(headers, updates), body)
