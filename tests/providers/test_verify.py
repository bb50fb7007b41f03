"""Verdicts for requests signed by official libraries, and every failure mode."""

from __future__ import annotations

import pytest

from app.providers import VerifyConfig, explain, mask_secret, verify
from tests.providers.helpers import make
from tests.providers.signers import CASES, Case

NOW = 1_700_000_000
IDS = [c.name for c in CASES]


def _config(case: Case, *secrets: str, **extra: object) -> VerifyConfig:
    data: dict[str, object] = {
        "scheme": case.scheme,
        "secrets": list(secrets),
        **case.config,
        **extra,
    }
    return VerifyConfig.from_json(data)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_official_signature_is_valid(case: Case) -> None:
    signed = case.sign(case.secret, NOW)
    verdict = verify(
        make(signed.headers, signed.body, url=signed.url),
        _config(case, case.secret),
        NOW,
    )
    assert verdict.status == "valid", verdict
    assert verdict.reason == "signature valid"
    assert verdict.matched_secret == 0


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_tampered_body(case: Case) -> None:
    if not case.tamper_reason:
        pytest.skip("plain token schemes do not cover the body")
    signed = case.sign(case.secret, NOW)
    tampered = (
        signed.body.replace(b"1", b"2", 1)
        if b"1" in signed.body
        else signed.body + b" "
    )
    assert tampered != signed.body
    req = make(signed.headers, tampered, url=signed.url)
    verdict = verify(req, _config(case, case.secret), NOW)
    assert (verdict.status, verdict.reason) == ("invalid", case.tamper_reason)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_wrong_secret(case: Case) -> None:
    signed = case.sign(case.secret, NOW)
    verdict = verify(
        make(signed.headers, signed.body, url=signed.url),
        _config(case, case.other_secret),
        NOW,
    )
    assert verdict.status == "invalid"
    expected = "token mismatch" if case.name == "gitlab-token" else "signature mismatch"
    assert verdict.reason.startswith(expected)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_rotation(case: Case) -> None:
    """Rotated in: valid with either secret; rotated out: the old one no longer works."""
    signed = case.sign(case.secret, NOW)
    req = make(signed.headers, signed.body, url=signed.url)
    both = verify(req, _config(case, case.other_secret, case.secret), NOW)
    assert both.status == "valid"
    assert both.matched_secret == 1
    assert both.reason == f"signature valid (secret 2 of 2, {mask_secret(case.secret)})"
    rotated_out = verify(req, _config(case, case.other_secret), NOW)
    assert rotated_out.status == "invalid"
    assert "mismatch" in rotated_out.reason


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.tolerance is not None], ids=lambda c: c.name
)
def test_stale_timestamp(case: Case) -> None:
    age = case.tolerance + 112 if case.tolerance else 0
    signed = case.sign(case.secret, NOW - age)
    req = make(signed.headers, signed.body, url=signed.url)
    verdict = verify(req, _config(case, case.secret), NOW)
    assert verdict.status == "invalid"
    assert (
        verdict.reason
        == f"timestamp outside tolerance ({age} s old, tolerance {case.tolerance} s)"
    )
    # A configured tolerance overrides the provider default; 0 disables the check.
    assert (
        verify(req, _config(case, case.secret, tolerance=age + 1), NOW).status
        == "valid"
    )
    assert verify(req, _config(case, case.secret, tolerance=0), NOW).status == "valid"


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.tolerance is not None], ids=lambda c: c.name
)
def test_future_timestamp(case: Case) -> None:
    ahead = (case.tolerance or 0) + 50
    signed = case.sign(case.secret, NOW + ahead)
    verdict = verify(
        make(signed.headers, signed.body, url=signed.url),
        _config(case, case.secret),
        NOW,
    )
    if case.scheme == "stripe":
        # Stripe's SDKs reject only old timestamps.
        assert verdict.status == "valid"
    else:
        assert (
            verdict.reason
            == f"timestamp outside tolerance ({ahead} s in the future, tolerance {case.tolerance} s)"
        )


def test_stale_is_reported_for_the_exact_example() -> None:
    case = next(c for c in CASES if c.name == "stripe")
    signed = case.sign(case.secret, NOW - 412)
    verdict = verify(make(signed.headers, signed.body), _config(case, case.secret), NOW)
    assert verdict.reason == "timestamp outside tolerance (412 s old, tolerance 300 s)"


MISSING = {
    "stripe": ("Stripe-Signature", "no signature header (expected Stripe-Signature)"),
    "github": (
        "X-Hub-Signature-256",
        "no signature header (expected X-Hub-Signature-256)",
    ),
    "standard-webhooks": (
        "webhook-signature",
        "no signature header (expected webhook-signature or svix-signature)",
    ),
    "svix": (
        "svix-signature",
        "no signature header (expected webhook-signature or svix-signature)",
    ),
    "clerk": (
        "svix-signature",
        "no signature header (expected webhook-signature or svix-signature)",
    ),
    "resend": (
        "svix-signature",
        "no signature header (expected webhook-signature or svix-signature)",
    ),
    "shopify": (
        "X-Shopify-Hmac-Sha256",
        "no signature header (expected X-Shopify-Hmac-Sha256)",
    ),
    "slack": ("X-Slack-Signature", "no signature header (expected X-Slack-Signature)"),
    "twilio": (
        "X-Twilio-Signature",
        "no signature header (expected X-Twilio-Signature)",
    ),
    "twilio-json": (
        "X-Twilio-Signature",
        "no signature header (expected X-Twilio-Signature)",
    ),
    "square": (
        "x-square-hmacsha256-signature",
        "no signature header (expected x-square-hmacsha256-signature)",
    ),
    "paddle": ("Paddle-Signature", "no signature header (expected Paddle-Signature)"),
    "linear": ("Linear-Signature", "no signature header (expected Linear-Signature)"),
    "gitlab-token": ("X-Gitlab-Token", "no signature header (expected X-Gitlab-Token)"),
    "gitlab-signing": (
        "webhook-signature",
        "no signature header (expected webhook-signature)",
    ),
    "zoom": ("x-zm-signature", "no signature header (expected x-zm-signature)"),
    "discord": (
        "X-Signature-Ed25519",
        "no signature header (expected X-Signature-Ed25519)",
    ),
    "hmac": ("X-Acme-Signature", "no signature header (expected X-Acme-Signature)"),
}


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_missing_header(case: Case) -> None:
    header, reason = MISSING[case.name]
    signed = case.sign(case.secret, NOW)
    headers = [(k, v) for k, v in signed.headers.items() if k.lower() != header.lower()]
    verdict = verify(
        make(headers, signed.body, url=signed.url), _config(case, case.secret), NOW
    )
    assert (verdict.status, verdict.reason) == ("invalid", reason)


MALFORMED = {
    "stripe": ("Stripe-Signature", "garbage"),
    "github": ("X-Hub-Signature-256", "md5=abc"),
    "standard-webhooks": ("webhook-signature", "nocomma"),
    "svix": ("svix-signature", "v2,abc"),
    "clerk": ("svix-timestamp", "yesterday"),
    "resend": ("svix-signature", "v1 v1"),
    "shopify": ("X-Shopify-Hmac-Sha256", "not base64!"),
    "slack": ("X-Slack-Signature", "v1=abc"),
    "twilio": ("X-Twilio-Signature", "***"),
    "twilio-json": ("X-Twilio-Signature", "%%%"),
    "square": ("x-square-hmacsha256-signature", "???"),
    "paddle": ("Paddle-Signature", "h1=abc"),
    "linear": ("Linear-Signature", "xyz"),
    "gitlab-signing": ("webhook-timestamp", "12:00"),
    "zoom": ("x-zm-signature", "v0=zz"),
    "discord": ("X-Signature-Ed25519", "abcd"),
    "hmac": ("X-Acme-Signature", "md5=abc"),
}


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.name in MALFORMED], ids=lambda c: c.name
)
def test_malformed_header(case: Case) -> None:
    header, value = MALFORMED[case.name]
    signed = case.sign(case.secret, NOW)
    headers = [
        (k, value if k.lower() == header.lower() else v)
        for k, v in signed.headers.items()
    ]
    verdict = verify(
        make(headers, signed.body, url=signed.url), _config(case, case.secret), NOW
    )
    assert verdict.status == "invalid"
    assert verdict.reason.startswith("malformed header"), verdict.reason


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_unconfigured_without_secrets(case: Case) -> None:
    signed = case.sign(case.secret, NOW)
    verdict = verify(
        make(signed.headers, signed.body, url=signed.url), _config(case), NOW
    )
    assert verdict.status == "unconfigured"


def test_no_config_is_unconfigured() -> None:
    assert verify(make({}, b"x"), None, NOW).status == "unconfigured"


def test_stripe_any_v1_matches_during_rotation() -> None:
    case = next(c for c in CASES if c.name == "stripe")
    signed = case.sign(case.secret, NOW)
    header = (
        signed.headers["Stripe-Signature"] + ",v1=" + "0" * 64 + ",v0=ignored,v1=nothex"
    )
    req = make({"Stripe-Signature": header}, signed.body)
    assert verify(req, _config(case, case.secret), NOW).status == "valid"


def test_github_legacy_sha1() -> None:
    import hashlib
    import hmac

    body = b'{"zen":"Keep it logically awesome."}'
    sig = "sha1=" + hmac.new(b"s3cret", body, hashlib.sha1).hexdigest()
    req = make({"X-GitHub-Event": "ping", "X-Hub-Signature": sig}, body)
    assert verify(req, VerifyConfig("github", ("s3cret",)), NOW).status == "valid"
    exp = explain(req, VerifyConfig("github", ("s3cret",)), NOW)
    assert exp.expected == sig


def test_explain_shows_received_expected_and_signed_bytes() -> None:
    case = next(c for c in CASES if c.name == "slack")
    signed = case.sign(case.secret, NOW)
    req = make(signed.headers, signed.body)
    exp = explain(req, _config(case, case.other_secret, case.secret), NOW)
    assert exp.received == (signed.headers["X-Slack-Signature"],)
    # The matching secret is the one explained, so expected equals received.
    assert exp.expected == signed.headers["X-Slack-Signature"]
    assert exp.signed_payload == f"v0:{NOW}:".encode() + signed.body
    assert exp.secret_hint == mask_secret(case.secret)
    assert case.secret not in str(exp.to_json())
    wrong = explain(req, _config(case, case.other_secret), NOW)
    assert wrong.verdict.reason == "signature mismatch"
    assert wrong.expected != wrong.received[0]
    assert (
        wrong.to_json()["signed_string"]
        == (f"v0:{NOW}:".encode() + signed.body).decode()
    )


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_explain_never_leaks_secret(case: Case) -> None:
    signed = case.sign(case.secret, NOW)
    exp = explain(
        make(signed.headers, signed.body, url=signed.url),
        _config(case, case.secret),
        NOW,
    )
    assert exp.verdict.status == "valid"
    text = repr(exp.to_json())
    if case.scheme != "discord":  # a public key is no secret
        assert case.secret not in text
    if case.scheme not in ("gitlab", "discord") or case.name == "gitlab-signing":
        assert exp.expected in exp.received
        assert exp.signed_payload


def test_twilio_public_url_override_keeps_query() -> None:
    case = next(c for c in CASES if c.name == "twilio-json")
    signed = case.sign(case.secret, NOW)
    query = signed.url.split("?", 1)[1]
    proxied = make(
        signed.headers, signed.body, url=f"http://127.0.0.1:8080/in/twilio?{query}"
    )
    assert verify(proxied, _config(case, case.secret), NOW).status == "invalid"
    override = _config(case, case.secret, url="https://hooks.example.test/in/twilio")
    assert verify(proxied, override, NOW).status == "valid"


def test_linear_requires_body_timestamp() -> None:
    import hashlib
    import hmac

    body = b'{"action":"create","type":"Issue"}'
    req = make(
        {"Linear-Signature": hmac.new(b"k", body, hashlib.sha256).hexdigest()}, body
    )
    verdict = verify(req, VerifyConfig("linear", ("k",)), NOW)
    assert verdict.status == "invalid"
    assert "webhookTimestamp" in verdict.reason


def test_explain_names_the_header_actually_used() -> None:
    case = next(c for c in CASES if c.name == "svix")
    signed = case.sign(case.secret, NOW)
    exp = explain(make(signed.headers, signed.body), _config(case, case.secret), NOW)
    assert exp.signature_header == "svix-signature"
