"""Value types shared by detection, verification and re-signing.

Everything here is pure data: the capture core builds a ``SignedRequest`` from
what it stored, and the results are plain frozen dataclasses that serialise to
the JSON shapes the API returns.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

VerdictStatus = Literal["valid", "invalid", "unconfigured"]


@dataclass(frozen=True)
class SignedRequest:
    """One captured request, exactly as the provider sent it.

    ``headers`` holds lowercased names and values decoded as ISO-8859-1, so the
    original bytes can always be recovered with ``value.encode("latin-1")``;
    order and duplicates are kept because some schemes care about them.
    """

    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    received_at: float

    @classmethod
    def build(
        cls,
        method: str,
        url: str,
        headers: Iterable[tuple[str | bytes, str | bytes]],
        body: bytes,
        received_at: float,
    ) -> SignedRequest:
        """Normalise raw header pairs (bytes or str) into the canonical form."""
        norm: list[tuple[str, str]] = []
        for name, value in headers:
            n = name.decode("latin-1") if isinstance(name, bytes) else name
            v = value.decode("latin-1") if isinstance(value, bytes) else value
            norm.append((n.lower(), v))
        return cls(method, url, tuple(norm), body, received_at)

    def __post_init__(self) -> None:
        # Lowercased header name -> its first value, built once: detection and verification ask for a dozen
        # names. Not a cached_property: in Python 3.11 its lock costs more than building the dict.
        object.__setattr__(self, "first_values", dict(reversed(self.headers)))

    first_values: dict[str, str] = field(init=False, repr=False, compare=False)

    def header(self, name: str) -> str | None:
        """First value of header ``name`` (case-insensitive), or None."""
        return self.first_values.get(name.lower())

    def header_all(self, name: str) -> tuple[str, ...]:
        """Every value of header ``name`` in arrival order."""
        wanted = name.lower()
        return tuple(v for n, v in self.headers if n == wanted)


@dataclass(frozen=True)
class Detection:
    """Which provider sent a request and the provider's own event identity."""

    provider: str | None = None
    event_type: str | None = None
    event_id: str | None = None

    def to_json(self) -> dict[str, str | None]:
        return {
            "provider": self.provider,
            "event_type": self.event_type,
            "event_id": self.event_id,
        }


@dataclass(frozen=True)
class Verdict:
    """Outcome of checking one request against an endpoint's verify config.

    ``matched_secret`` is the 0-based index into ``VerifyConfig.secrets`` that
    produced a valid signature; it lets the UI say which secret of a rotation
    pair is still in use.
    """

    status: VerdictStatus
    reason: str
    matched_secret: int | None = None

    def to_json(self) -> dict[str, str]:
        return {"status": self.status, "reason": self.reason}


@dataclass(frozen=True)
class Explanation:
    """Everything the signature helper shows for one request and one secret.

    ``expected`` is computed with the first configured secret (or the secret
    that matched). ``signed_payload`` is the exact byte string that was fed to
    the MAC, so users can diff it against what their own code signs.
    Token schemes (GitLab) never expose the token: both sides are masked.
    """

    scheme: str
    signature_header: str
    secret_hint: str | None
    received: tuple[str, ...]
    expected: str | None
    signed_payload: bytes | None
    timestamp: int | None
    verdict: Verdict
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        payload = self.signed_payload
        return {
            "scheme": self.scheme,
            "signature_header": self.signature_header,
            "secret_hint": self.secret_hint,
            "received": list(self.received),
            "expected": self.expected,
            # Text for humans, base64 so nothing is lost for non-UTF-8 bodies.
            "signed_string": None
            if payload is None
            else payload.decode("utf-8", errors="backslashreplace"),
            "signed_string_b64": None
            if payload is None
            else base64.b64encode(payload).decode("ascii"),
            "timestamp": self.timestamp,
            "verification": self.verdict.to_json(),
            "notes": list(self.notes),
        }
