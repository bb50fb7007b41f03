"""The shared verify / explain / re-sign flow that concrete schemes plug into.

Most schemes are "find the signature(s), build the signed string, HMAC it with
each secret, compare, then check the timestamp". ``HmacScheme`` implements
that once; subclasses only say where things live. Schemes that are not HMAC
(Discord, GitLab's token) override ``verify``/``explain`` wholesale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from app.providers import crypto
from app.providers.config import VerifyConfig
from app.providers.masking import mask_secret
from app.providers.types import Explanation, SignedRequest, Verdict


class Problem(Exception):
    """A request that cannot be verified at all; ``reason`` is user-facing."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Parsed:
    """What a scheme extracted from one request.

    ``messages`` are candidate signed strings; there is more than one only
    when the provider's own validator tries several (Twilio's URL with and
    without port). ``signatures`` are shown to the user verbatim;
    ``decoded`` are the comparable bytes of those that decode.
    """

    signatures: tuple[str, ...]
    decoded: tuple[bytes, ...]
    messages: tuple[bytes, ...]
    timestamp: int | None = None
    algorithm: str = "sha256"
    # Reported only when the signature itself matched (e.g. Twilio's body
    # hash), because a mismatch is the more fundamental problem.
    after_match_problem: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    # Which header the signature came from, when a scheme accepts several.
    header: str | None = None


@dataclass(frozen=True)
class Resigned:
    """A request prepared for a dev server: maybe a new URL/body, new headers."""

    url: str
    headers: list[tuple[str, str]]
    body: bytes


def tolerance_problem(
    timestamp: int | None, now: float, tolerance: int | None, future_ok: bool
) -> str | None:
    if timestamp is None or tolerance is None or tolerance <= 0:
        return None
    age = now - timestamp
    if age > tolerance:
        return (
            f"timestamp outside tolerance ({int(age)} s old, tolerance {tolerance} s)"
        )
    if not future_ok and -age > tolerance:
        return f"timestamp outside tolerance ({int(-age)} s in the future, tolerance {tolerance} s)"
    return None


def valid_reason(index: int, secrets: Sequence[str]) -> str:
    if len(secrets) == 1:
        return "signature valid"
    return f"signature valid (secret {index + 1} of {len(secrets)}, {mask_secret(secrets[index])})"


def set_headers(
    headers: Sequence[tuple[str, str]],
    updates: Sequence[tuple[str, str]],
    remove: Sequence[str] = (),
) -> list[tuple[str, str]]:
    """Replace headers in place, keeping order and the sender's name casing.

    A header that was absent is appended with the provider's canonical
    casing; extra duplicates of a replaced header are dropped so the dev
    server cannot pick up a stale value.
    """
    wanted = {name.lower(): (name, value) for name, value in updates}
    dropped = {name.lower() for name in remove} - set(wanted)
    out: list[tuple[str, str]] = []
    done: set[str] = set()
    for name, value in headers:
        key = name.lower()
        if key in dropped:
            continue
        if key in wanted:
            if key not in done:
                out.append((name, wanted[key][1]))
                done.add(key)
            continue
        out.append((name, value))
    for key, (name, value) in wanted.items():
        if key not in done:
            out.append((name, value))
    return out


class Scheme:
    """Interface every scheme implements."""

    name = "base"
    signature_header = ""

    def verify(self, req: SignedRequest, config: VerifyConfig, now: float) -> Verdict:
        raise NotImplementedError

    def explain(
        self, req: SignedRequest, config: VerifyConfig, now: float
    ) -> Explanation:
        raise NotImplementedError

    def prepare(
        self,
        method: str,
        url: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        now: float,
    ) -> tuple[str, bytes]:
        """URL and body a dev server must receive for a fresh signature to pass.

        Identity for most schemes; Linear carries its timestamp in the body
        and Twilio's JSON deliveries carry a body hash in the URL.
        """
        return url, body

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
        """Headers (and the URL/body they cover) signed with ``secret`` at ``now``."""
        raise NotImplementedError


class HmacScheme(Scheme):
    """Template for every MAC-over-a-signed-string scheme."""

    encoding = "hex"
    default_tolerance: int | None = None
    # Stripe only rejects too-old timestamps; most others reject both ways.
    future_ok = False

    def parse(self, req: SignedRequest, config: VerifyConfig) -> Parsed:
        raise NotImplementedError

    def key(self, secret: str) -> bytes:
        return secret.encode("utf-8")

    def render(self, digest: bytes, parsed: Parsed, config: VerifyConfig) -> str:
        """The signature as it would appear in the header (for explain)."""
        return crypto.encode(digest, self.encoding)

    def tolerance(self, config: VerifyConfig) -> int | None:
        return self.default_tolerance if config.tolerance is None else config.tolerance

    def time_problem(
        self, parsed: Parsed, config: VerifyConfig, now: float
    ) -> str | None:
        return tolerance_problem(
            parsed.timestamp, now, self.tolerance(config), self.future_ok
        )

    def _keys(self, secrets: Sequence[str]) -> list[tuple[int, bytes]]:
        keys: list[tuple[int, bytes]] = []
        for index, secret in enumerate(secrets):
            try:
                keys.append((index, self.key(secret)))
            except Problem:
                continue
        return keys

    def match(self, parsed: Parsed, config: VerifyConfig) -> tuple[int, bytes] | None:
        """(secret index, matching message) of the first match, else None."""
        for index, key in self._keys(config.secrets):
            for message in parsed.messages:
                digest = crypto.mac(parsed.algorithm, key, message)
                # Check all received signatures without short-circuiting on
                # content, so timing reveals nothing about which one is close.
                hit = False
                for received in parsed.decoded:
                    hit |= crypto.same(digest, received)
                if hit:
                    return index, message
        return None

    def verify(self, req: SignedRequest, config: VerifyConfig, now: float) -> Verdict:
        if not config.secrets:
            return Verdict("unconfigured", f"no secret configured for {config.scheme}")
        if not self._keys(config.secrets):
            return Verdict("invalid", config.problem() or "no usable secret configured")
        try:
            parsed = self.parse(req, config)
        except Problem as problem:
            return Verdict("invalid", problem.reason)
        found = self.match(parsed, config)
        if found is None:
            return Verdict("invalid", "signature mismatch")
        if parsed.after_match_problem is not None:
            return Verdict("invalid", parsed.after_match_problem)
        late = self.time_problem(parsed, config, now)
        if late is not None:
            return Verdict("invalid", late, matched_secret=found[0])
        return Verdict(
            "valid", valid_reason(found[0], config.secrets), matched_secret=found[0]
        )

    def explain(
        self, req: SignedRequest, config: VerifyConfig, now: float
    ) -> Explanation:
        verdict = self.verify(req, config, now)
        try:
            parsed: Parsed | None = self.parse(req, config)
        except Problem:
            parsed = None
        keys = self._keys(config.secrets)
        index = verdict.matched_secret if verdict.matched_secret is not None else 0
        chosen = next((k for i, k in keys if i == index), None)
        if chosen is None and keys:
            index, chosen = keys[0]
        hint = mask_secret(config.secrets[index]) if config.secrets else None
        if parsed is None:
            return Explanation(
                config.scheme,
                self.signature_header,
                hint,
                (),
                None,
                None,
                None,
                verdict,
            )
        message = parsed.messages[0] if parsed.messages else b""
        if chosen is not None:
            found = self.match(
                parsed, replace(config, secrets=(config.secrets[index],))
            )
            if found is not None:
                message = found[1]
        expected = (
            self.render(crypto.mac(parsed.algorithm, chosen, message), parsed, config)
            if chosen is not None
            else None
        )
        return Explanation(
            scheme=config.scheme,
            signature_header=parsed.header or self.signature_header,
            secret_hint=hint,
            received=parsed.signatures,
            expected=expected,
            signed_payload=message,
            timestamp=parsed.timestamp,
            verdict=verdict,
            notes=parsed.notes,
        )


def require_header(req: SignedRequest, name: str, display: str | None = None) -> str:
    value = req.header(name)
    if value is None or not value.strip():
        raise Problem(f"no signature header (expected {display or name})")
    return value.strip()


def require_timestamp(req: SignedRequest, name: str) -> int:
    raw = req.header(name)
    if raw is None or not raw.strip():
        raise Problem(f"no timestamp header (expected {name})")
    value = crypto.parse_int(raw)
    if value is None:
        raise Problem(f"malformed header ({name} is not a unix timestamp)")
    return value
