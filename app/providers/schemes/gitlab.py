"""GitLab: ``X-Gitlab-Token`` equality, or the newer Standard Webhooks signing.

A GitLab hook can carry both a plain secret token and (behind GitLab's
``webhook_signing_token`` flag) Standard Webhooks headers. Secrets starting
with ``whsec_`` are treated as signing tokens, everything else as plain
tokens, so one endpoint can hold both kinds during a migration.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import replace

from app.providers import crypto
from app.providers.config import VerifyConfig
from app.providers.masking import mask_secret
from app.providers.schemes.base import Resigned, Scheme, set_headers, valid_reason
from app.providers.schemes.standard import StandardScheme, sign_standard
from app.providers.types import Explanation, SignedRequest, Verdict

_STANDARD = StandardScheme()


def _split(secrets: Sequence[str]) -> tuple[list[int], list[int]]:
    signing = [i for i, s in enumerate(secrets) if s.startswith("whsec_")]
    tokens = [i for i, s in enumerate(secrets) if not s.startswith("whsec_")]
    return signing, tokens


class GitlabScheme(Scheme):
    name = "gitlab"
    signature_header = "X-Gitlab-Token"

    def _token_verdict(
        self, req: SignedRequest, secrets: Sequence[str], indexes: list[int]
    ) -> Verdict:
        received = req.header("x-gitlab-token")
        if received is None:
            return Verdict("invalid", "no signature header (expected X-Gitlab-Token)")
        got = crypto.header_bytes(received)
        matched: int | None = None
        for index in indexes:
            # compare_digest on bytes: constant time for equal lengths, and the
            # token is not a MAC, so length leaks nothing useful.
            if (
                hmac.compare_digest(got, secrets[index].encode("utf-8"))
                and matched is None
            ):
                matched = index
        if matched is None:
            return Verdict(
                "invalid",
                "token mismatch (X-Gitlab-Token differs from the configured secret token)",
            )
        return Verdict("valid", valid_reason(matched, secrets), matched_secret=matched)

    def _standard_verdict(
        self, req: SignedRequest, config: VerifyConfig, indexes: list[int], now: float
    ) -> Verdict:
        sub = replace(
            config,
            scheme="standard-webhooks",
            secrets=tuple(config.secrets[i] for i in indexes),
        )
        verdict = _STANDARD.verify(req, sub, now)
        if verdict.matched_secret is None:
            return verdict
        index = indexes[verdict.matched_secret]
        reason = (
            valid_reason(index, config.secrets)
            if verdict.status == "valid"
            else verdict.reason
        )
        return Verdict(verdict.status, reason, matched_secret=index)

    def verify(self, req: SignedRequest, config: VerifyConfig, now: float) -> Verdict:
        if not config.secrets:
            return Verdict("unconfigured", "no secret configured for gitlab")
        signing, tokens = _split(config.secrets)
        has_signature = req.header("webhook-signature") is not None
        has_token = req.header("x-gitlab-token") is not None
        verdicts: list[Verdict] = []
        if signing and has_signature:
            verdicts.append(self._standard_verdict(req, config, signing, now))
        if tokens and has_token:
            verdicts.append(self._token_verdict(req, config.secrets, tokens))
        for verdict in verdicts:
            if verdict.status == "valid":
                return verdict
        if verdicts:
            return verdicts[0]
        if signing and not tokens:
            return Verdict(
                "invalid", "no signature header (expected webhook-signature)"
            )
        return Verdict("invalid", "no signature header (expected X-Gitlab-Token)")

    def explain(
        self, req: SignedRequest, config: VerifyConfig, now: float
    ) -> Explanation:
        verdict = self.verify(req, config, now)
        signing, tokens = _split(config.secrets)
        if (
            signing
            and req.header("webhook-signature") is not None
            and (verdict.matched_secret is None or verdict.matched_secret in signing)
        ):
            sub = replace(
                config,
                scheme="standard-webhooks",
                secrets=tuple(config.secrets[i] for i in signing),
            )
            inner = _STANDARD.explain(req, sub, now)
            return replace(inner, scheme=self.name, verdict=verdict)
        index = (
            verdict.matched_secret
            if verdict.matched_secret is not None
            else (tokens or [0])[0]
        )
        hint = mask_secret(config.secrets[index]) if config.secrets else None
        received = req.header("x-gitlab-token")
        # The token is the secret itself, so neither side is ever shown whole.
        return Explanation(
            self.name,
            self.signature_header,
            hint,
            () if received is None else (mask_secret(received),),
            hint,
            None,
            None,
            verdict,
            (
                "plain token: GitLab sends the secret token itself, compared for equality",
            ),
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
        if secret.startswith("whsec_"):
            return Resigned(
                url,
                sign_standard("standard-webhooks", secret, headers, body, now),
                body,
            )
        return Resigned(url, set_headers(headers, [("X-Gitlab-Token", secret)]), body)
