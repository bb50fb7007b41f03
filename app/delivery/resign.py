"""Re-signing forwards, relay deliveries and replays with a dev secret, so the dev server's own check passes.

An endpoint's `resign` setting is `{"scheme": ..., "secret": ...}` (plus the generic-hmac fields for
`"scheme": "hmac"`), parsed once into a `Resigner` (app/endpoint_settings.py keeps it with the endpoint). The
secret is stored in full and shown masked. Each attempt is signed afresh (a retry an
hour later must not carry a stale timestamp).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

from app.delivery.outgoing import Outgoing
from app.providers import VerifyConfig, mask_secret, public_key_for_seed, resign_request
from app.providers.config import ConfigError

# These schemes sign the URL the receiver sees. Over a relay the server does not know the client's target URL,
# so their requests go through the relay with the provider's original signature.
URL_SCHEMES = frozenset({"twilio", "square"})
_RELAY_URL = "http://relay.invalid"


@dataclass(frozen=True, slots=True)
class Resigner:
    config: VerifyConfig
    secret: str

    @property
    def scheme(self) -> str:
        return self.config.scheme

    def outgoing(self, out: Outgoing, now: float | None = None) -> Outgoing:
        """The same request with fresh provider signature headers (and body/URL where the scheme needs it)."""
        headers = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in out.headers]
        signed = resign_request(self.config, self.secret, out.method, out.url, headers, out.body,
                                time.time() if now is None else now)
        path_query = signed.url[len(out.target.origin):] if signed.url.startswith(out.target.origin) else None
        raw = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in signed.headers]
        if signed.body != out.body:
            raw = [(n, str(len(signed.body)).encode() if n.lower() == b"content-length" else v) for n, v in raw]
        return dataclasses.replace(
            out,
            headers=raw,
            body=signed.body,
            path_query=path_query.encode("latin-1") if path_query else out.path_query,
        )

    def relayed(
        self, method: str, path: str, query: str, headers: tuple[tuple[str, str], ...], body: bytes
    ) -> tuple[tuple[tuple[str, str], ...], bytes]:
        """Headers and body for a relay delivery; URL-signing schemes are left as captured."""
        if self.scheme in URL_SCHEMES:
            return headers, body
        url = f"{_RELAY_URL}{path or '/'}" + (f"?{query}" if query else "")
        signed = resign_request(self.config, self.secret, method, url, list(headers), body, time.time())
        return tuple(signed.headers), signed.body


def parse_resign(value: Any, previous: Resigner | None) -> Resigner:
    """API input -> the endpoint's Resigner. A masked secret sent back as shown keeps the stored one."""
    if not isinstance(value, dict):
        raise ValueError("resign must be an object: {\"scheme\": ..., \"secret\": ...}")
    secret = value.get("secret")
    if previous is not None and isinstance(secret, str) and secret == mask_secret(previous.secret):
        secret = previous.secret
    if not isinstance(secret, str) or not secret:
        raise ValueError("resign.secret must be the dev secret your server verifies with")
    fields = {k: v for k, v in value.items() if k != "secret"}
    try:
        config = VerifyConfig.from_json({**fields, "secrets": [secret]})
    except ConfigError as exc:
        raise ValueError(str(exc).replace("verify.", "resign.")) from None
    if config.scheme == "discord":
        try:
            public_key_for_seed(secret)
        except ValueError:
            raise ValueError("resign.secret for discord is a 32-byte Ed25519 private key seed in hex") from None
    return Resigner(config, secret)


def render_resign(resigner: Resigner) -> dict[str, object]:
    """The setting as the API shows it: the secret masked, plus what it signs with (and Discord's public key)."""
    shown = resigner.config.to_json()
    shown.pop("secrets", None)
    shown.pop("tolerance", None)
    shown["secret"] = mask_secret(resigner.secret)
    shown["signs_with"] = f"dev secret {mask_secret(resigner.secret)} ({resigner.scheme})"
    if resigner.scheme == "discord":
        shown["public_key"] = public_key_for_seed(resigner.secret)
    return shown
