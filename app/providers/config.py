"""Per-endpoint verification settings and their JSON form.

The endpoint JSON carries ``verify: {"scheme": ..., "secrets": [...], ...}``;
``VerifyConfig.from_json`` turns that into a checked value (raising
``ConfigError`` (a ``ValueError``) with a message fit for an API 400), ``to_json`` turns it back
with secrets masked so a saved secret is never shown in full again.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from app.providers.masking import mask_secret

Algorithm = Literal["sha1", "sha256", "sha512"]
Encoding = Literal["hex", "base64"]

# Svix-based senders share the Standard Webhooks construction; the alias only
# changes which header names re-signing writes when the request has none.
STANDARD_ALIASES = frozenset({"standard-webhooks", "svix", "clerk", "resend"})

SCHEMES: tuple[str, ...] = (
    "stripe",
    "github",
    "standard-webhooks",
    "svix",
    "clerk",
    "resend",
    "shopify",
    "slack",
    "twilio",
    "square",
    "paddle",
    "linear",
    "gitlab",
    "zoom",
    "discord",
    "hmac",
)

_FIELDS = frozenset(
    {
        "scheme",
        "secrets",
        "tolerance",
        "header",
        "algorithm",
        "encoding",
        "prefix",
        "template",
        "timestamp_header",
        "id_header",
        "url",
    }
)
_PLACEHOLDER = re.compile(r"\{([a-z_]*)\}")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
MAX_SECRETS = 10


class ConfigError(ValueError):
    """A verify config the API should reject; the message is user-facing."""


@dataclass(frozen=True)
class VerifyConfig:
    """How one endpoint's requests are verified.

    ``tolerance``: None means the provider's default; 0 turns the timestamp
    check off (the convention Paddle's and Mailgun's SDKs use).
    The ``header`` … ``id_header`` fields only matter for ``scheme="hmac"``;
    ``url`` overrides the URL for schemes that sign it (twilio, square) when
    hookscope sits behind a proxy and sees a different URL than the provider.
    """

    scheme: str
    secrets: tuple[str, ...] = ()
    tolerance: int | None = None
    header: str | None = None
    algorithm: Algorithm = "sha256"
    encoding: Encoding = "hex"
    prefix: str = ""
    template: str = "{body}"
    timestamp_header: str | None = None
    id_header: str | None = None
    url: str | None = None

    @classmethod
    def from_json(cls, data: object) -> VerifyConfig:
        if not isinstance(data, Mapping):
            raise ConfigError("verify must be an object")
        unknown = sorted(str(k) for k in data if k not in _FIELDS)
        if unknown:
            raise ConfigError(f"unknown verify field(s): {', '.join(unknown)}")
        scheme = data.get("scheme")
        if not isinstance(scheme, str) or scheme not in SCHEMES:
            raise ConfigError(f"verify.scheme must be one of: {', '.join(SCHEMES)}")
        raw_secrets = data.get("secrets", [])
        if not isinstance(raw_secrets, list) or not all(
            isinstance(s, str) and s for s in raw_secrets
        ):
            raise ConfigError("verify.secrets must be a list of non-empty strings")
        if len(raw_secrets) > MAX_SECRETS:
            raise ConfigError(f"verify.secrets holds at most {MAX_SECRETS} secrets")
        tolerance = data.get("tolerance")
        if tolerance is not None and (
            not isinstance(tolerance, int)
            or isinstance(tolerance, bool)
            or tolerance < 0
        ):
            raise ConfigError(
                "verify.tolerance must be null or a non-negative integer (seconds)"
            )
        algorithm = data.get("algorithm", "sha256")
        if algorithm not in ("sha1", "sha256", "sha512"):
            raise ConfigError("verify.algorithm must be sha1, sha256 or sha512")
        encoding = data.get("encoding", "hex")
        if encoding not in ("hex", "base64"):
            raise ConfigError("verify.encoding must be hex or base64")
        strs: dict[str, str | None] = {}
        for key in (
            "header",
            "prefix",
            "template",
            "timestamp_header",
            "id_header",
            "url",
        ):
            value = data.get(key)
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"verify.{key} must be a string")
            strs[key] = value
        config = cls(
            scheme=scheme,
            secrets=tuple(raw_secrets),
            tolerance=tolerance,
            header=strs["header"],
            algorithm=algorithm,
            encoding=encoding,
            prefix=strs["prefix"] or "",
            template=strs["template"] if strs["template"] is not None else "{body}",
            timestamp_header=strs["timestamp_header"],
            id_header=strs["id_header"],
            url=strs["url"],
        )
        problem = config.problem()
        if problem is not None:
            raise ConfigError(problem)
        return config

    def problem(self) -> str | None:
        """Why this config cannot verify anything, or None if it is usable.

        Kept separate from ``from_json`` so configs built in code (or stored
        before a rule existed) get the same message at verification time.
        """
        if self.scheme not in SCHEMES:
            return f"unknown scheme {self.scheme!r}"
        if self.scheme == "hmac":
            if not self.header:
                return "hmac scheme needs a signature header name (verify.header)"
            names = set(_PLACEHOLDER.findall(self.template))
            bad = names - {"body", "timestamp", "id"}
            if bad:
                return (
                    f"template placeholder(s) not supported: {', '.join(sorted(bad))}"
                )
            if "timestamp" in names and not self.timestamp_header:
                return (
                    "template uses {timestamp} but verify.timestamp_header is not set"
                )
            if "id" in names and not self.id_header:
                return "template uses {id} but verify.id_header is not set"
        for i, secret in enumerate(self.secrets, start=1):
            if self.scheme in STANDARD_ALIASES and decode_whsec(secret) is None:
                return (
                    f"secret {i} is not a whsec_… secret (expected base64 after whsec_)"
                )
            if self.scheme == "discord" and not _HEX64.fullmatch(secret):
                return f"secret {i} is not a Discord public key (64 hex characters)"
        return None

    def to_json(self) -> dict[str, object]:
        """JSON form with every secret masked; safe to return from the API."""
        out: dict[str, object] = {
            "scheme": self.scheme,
            "secrets": [mask_secret(s) for s in self.secrets],
            "tolerance": self.tolerance,
        }
        if self.scheme == "hmac":
            out.update(
                header=self.header,
                algorithm=self.algorithm,
                encoding=self.encoding,
                prefix=self.prefix,
                template=self.template,
                timestamp_header=self.timestamp_header,
                id_header=self.id_header,
            )
        if self.url is not None:
            out["url"] = self.url
        return out


def decode_whsec(secret: str) -> bytes | None:
    """Key bytes of a Standard Webhooks secret, or None if it is not one.

    The official libraries strip ``whsec_`` and base64-decode, tolerating a
    missing padding; we accept the same inputs so a pasted secret that works
    with them works here.
    """
    raw = secret.removeprefix("whsec_").strip()
    if not raw:
        return None
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return key or None
