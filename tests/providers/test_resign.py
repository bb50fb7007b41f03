"""Re-signed forwards and replays pass the providers' official verifiers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from urllib.parse import parse_qsl

import pytest
import resend
import stripe
from discord_interactions import verify_key  # type: ignore[import-untyped]
from paddle_billing.Notifications import Secret, Verifier  # type: ignore[import-untyped]
from slack_sdk.signature import SignatureVerifier
from square.utils.webhooks_helper import verify_signature as square_verify
from standardwebhooks.webhooks import Webhook as StdWebhook
from svix.webhooks import Webhook as SvixWebhook
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from app.providers import (
    VerifyConfig,
    public_key_for_seed,
    resign,
    resign_request,
    verify,
)
from tests.providers.helpers import as_request
from tests.providers.signers import (
    CASES,
    GENERIC_CONFIG,
    SW_OTHER,
    SW_SECRET,
    Case,
    discord_sign_with_seed,
)

DEV = {
    "stripe": "whsec_dev_secret_for_local",
    "github": "dev-github-secret",
    "shopify": "shpss_dev_secret",
    "slack": "dev-slack-signing-secret",
    "twilio": "dev-auth-token",
    "square": "dev-square-signature-key",
    "paddle": "pdl_ntfset_dev_secret",
    "linear": "lin_wh_dev_secret",
    "zoom": "dev-zoom-secret-token",
    "hmac": "dev-acme-secret",
}
DEV_URL = "http://127.0.0.1:3000/webhooks"


def _case(name: str) -> Case:
    return next(c for c in CASES if c.name == name)


def _resigned(
    name: str, secret: str, *, url: str = DEV_URL, body: bytes | None = None
) -> tuple[dict[str, str], bytes, str, float]:
    """Capture an old delivery (an hour ago, prod secret) and re-sign it now."""
    case = _case(name)
    now = time.time()
    signed = case.sign(case.secret, int(now) - 3600)
    scheme: str | VerifyConfig = case.scheme
    if case.config:
        scheme = VerifyConfig.from_json({"scheme": case.scheme, **case.config})
    out = resign_request(
        scheme,
        secret,
        "POST",
        url,
        list(signed.headers.items()),
        body or signed.body,
        now,
    )
    return dict(out.headers), out.body, out.url, now


def test_stripe_construct_event() -> None:
    headers, body, _, _ = _resigned("stripe", DEV["stripe"])
    event = stripe.Webhook.construct_event(
        body.decode(), headers["Stripe-Signature"], DEV["stripe"]
    )
    assert event.id == "evt_1NXb2"


@pytest.mark.parametrize("name", ["standard-webhooks", "gitlab-signing"])
def test_standard_webhooks_verify(name: str) -> None:
    headers, body, _, _ = _resigned(name, SW_OTHER)
    # The official verifier raises on a bad signature and returns the parsed payload on a good one.
    assert StdWebhook(SW_OTHER).verify(body, headers) == json.loads(body)


@pytest.mark.parametrize("name", ["svix", "clerk"])
def test_svix_verify(name: str) -> None:
    headers, body, _, _ = _resigned(name, SW_OTHER)
    assert set(headers) >= {"svix-id", "svix-timestamp", "svix-signature"}
    SvixWebhook(SW_OTHER).verify(body, headers)


def test_resend_verify() -> None:
    headers, body, _, _ = _resigned("resend", SW_OTHER)
    opts = {
        "payload": body.decode(),
        "headers": {
            "id": headers["svix-id"],
            "timestamp": headers["svix-timestamp"],
            "signature": headers["svix-signature"],
        },
        "webhook_secret": SW_OTHER,
    }
    assert resend.Webhooks.verify(opts)  # type: ignore[arg-type]


def test_slack_is_valid_request() -> None:
    headers, body, _, _ = _resigned("slack", DEV["slack"])
    assert SignatureVerifier(DEV["slack"]).is_valid_request(body, headers)


def test_twilio_form_validate() -> None:
    headers, body, url, _ = _resigned(
        "twilio", DEV["twilio"], url=DEV_URL + "?tenant=a"
    )
    params = dict(parse_qsl(body.decode(), keep_blank_values=True))
    assert RequestValidator(DEV["twilio"]).validate(
        url, params, headers["X-Twilio-Signature"]
    )


def test_twilio_json_validate_after_edit() -> None:
    edited = (
        b'{"specversion":"1.0","type":"com.twilio.messaging.message.failed","id":"EZ2"}'
    )
    headers, body, url, _ = _resigned(
        "twilio-json", DEV["twilio"], url=DEV_URL + "?bodySHA256=stale", body=edited
    )
    assert body == edited
    assert "stale" not in url
    assert RequestValidator(DEV["twilio"]).validate(
        url, body.decode(), headers["X-Twilio-Signature"]
    )


def test_square_verify_signature() -> None:
    headers, body, url, _ = _resigned("square", DEV["square"])
    assert square_verify(
        request_body=body.decode(),
        signature_header=headers["x-square-hmacsha256-signature"],
        signature_key=DEV["square"],
        notification_url=url,
    )


class _PaddleRequest:
    def __init__(self, headers: dict[str, str], body: bytes) -> None:
        self.headers = headers
        self.body = body


def test_paddle_verifier_with_time_drift_check() -> None:
    headers, body, _, _ = _resigned("paddle", DEV["paddle"])
    assert Verifier().verify(_PaddleRequest(headers, body), Secret(DEV["paddle"]))


def test_discord_verify_key() -> None:
    seed = bytes(range(7, 39)).hex()
    case = _case("discord")
    now = time.time()
    signed = discord_sign_with_seed(bytes(range(32)).hex(), int(now) - 3600)
    out = resign(
        case.scheme,
        seed,
        "POST",
        DEV_URL,
        list(signed.headers.items()),
        signed.body,
        now,
    )
    headers = dict(out)
    assert verify_key(
        signed.body,
        headers["X-Signature-Ed25519"],
        headers["X-Signature-Timestamp"],
        public_key_for_seed(seed),
    )


def test_linear_body_timestamp_is_refreshed() -> None:
    headers, body, _, now = _resigned("linear", DEV["linear"])
    stamp = json.loads(body)["webhookTimestamp"]
    # What Linear's SDK checks: |now - webhookTimestamp| <= 60 s and the HMAC.
    assert abs(now * 1000 - stamp) <= 60_000
    assert hmac.compare_digest(
        headers["Linear-Signature"],
        hmac.new(DEV["linear"].encode(), body, hashlib.sha256).hexdigest(),
    )
    original = _case("linear").sign(_case("linear").secret, 0).body
    assert body.replace(str(stamp).encode(), b"0") == original


def test_shopify_hmac_matches_sdk_construction() -> None:
    headers, body, _, _ = _resigned("shopify", DEV["shopify"])
    expected = base64.b64encode(
        hmac.new(DEV["shopify"].encode(), body, hashlib.sha256).digest()
    ).decode()
    assert headers["X-Shopify-Hmac-Sha256"] == expected


def test_zoom_matches_sample_construction() -> None:
    headers, body, _, _ = _resigned("zoom", DEV["zoom"])
    ts = headers["x-zm-request-timestamp"]
    expected = (
        "v0="
        + hmac.new(
            DEV["zoom"].encode(), f"v0:{ts}:".encode() + body, hashlib.sha256
        ).hexdigest()
    )
    assert headers["x-zm-signature"] == expected


def test_gitlab_token_is_dev_secret() -> None:
    headers, _, _, _ = _resigned("gitlab-token", "dev-token")
    assert headers["X-Gitlab-Token"] == "dev-token"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_resigned_requests_verify_with_hookscope(case: Case) -> None:
    """Round trip for every scheme: re-sign with a dev secret, verify with it."""
    if case.scheme == "discord":
        seed = bytes(range(3, 35)).hex()
        dev_secret, verify_secret = seed, public_key_for_seed(seed)
    elif (
        case.scheme in ("standard-webhooks", "svix", "clerk", "resend")
        or case.name == "gitlab-signing"
    ):
        dev_secret = verify_secret = SW_OTHER
    else:
        dev_secret = verify_secret = DEV.get(case.scheme, "dev-token")
    headers, body, url, now = _resigned(case.name, dev_secret)
    config = VerifyConfig.from_json(
        {"scheme": case.scheme, "secrets": [verify_secret], **case.config}
    )
    verdict = verify(as_request(url, list(headers.items()), body, now), config, now)
    assert verdict.status == "valid", verdict
    # The production secret no longer matches: we really re-signed.
    old = VerifyConfig.from_json(
        {"scheme": case.scheme, "secrets": [case.secret], **case.config}
    )
    assert (
        verify(as_request(url, list(headers.items()), body, now), old, now).status
        == "invalid"
    )


def test_other_headers_keep_order_and_case() -> None:
    headers = [
        ("Host", "example.test"),
        ("stripe-signature", "t=1,v1=00"),
        ("X-Custom", "a"),
        ("Stripe-Signature", "t=2,v1=11"),
        ("X-Custom", "b"),
    ]
    out = resign("stripe", "whsec_x", "POST", DEV_URL, headers, b"{}", 1_700_000_000)
    assert [name for name, _ in out] == [
        "Host",
        "stripe-signature",
        "X-Custom",
        "X-Custom",
    ]
    assert out[0] == ("Host", "example.test")
    assert out[2:] == [("X-Custom", "a"), ("X-Custom", "b")]
    assert out[1][1].startswith("t=1700000000,v1=")


def test_missing_signature_headers_are_appended() -> None:
    out = resign(
        "slack",
        "s",
        "POST",
        DEV_URL,
        [("Content-Type", "application/json")],
        b"{}",
        1_700_000_000,
    )
    assert [n for n, _ in out] == [
        "Content-Type",
        "X-Slack-Signature",
        "X-Slack-Request-Timestamp",
    ]


def test_standard_webhooks_without_headers_gets_an_id() -> None:
    now = time.time()
    out = dict(resign("standard-webhooks", SW_SECRET, "POST", DEV_URL, [], b"{}", now))
    assert out["webhook-id"].startswith("msg_")
    StdWebhook(SW_SECRET).verify(b"{}", out)
    # Svix-based senders get svix-* names when the request had none.
    svix = dict(resign("clerk", SW_SECRET, "POST", DEV_URL, [], b"{}", now))
    SvixWebhook(SW_SECRET).verify(b"{}", svix)
    assert "svix-signature" in svix


def test_generic_hmac_needs_config() -> None:
    with pytest.raises(ValueError, match="header"):
        resign("hmac", "s", "POST", DEV_URL, [], b"{}", 0)
    config = VerifyConfig.from_json({"scheme": "hmac", **GENERIC_CONFIG})
    out = dict(
        resign(
            config,
            "s",
            "POST",
            DEV_URL,
            [("X-Acme-Delivery", "d-1")],
            b"{}",
            1_700_000_000,
        )
    )
    assert out["X-Acme-Timestamp"] == "1700000000"
    assert out["X-Acme-Signature"].startswith("sha512=")


def test_bad_secrets_raise_value_error() -> None:
    with pytest.raises(ValueError, match="whsec_"):
        resign("svix", "not base64 !!", "POST", DEV_URL, [], b"{}", 0)
    with pytest.raises(ValueError, match="Ed25519"):
        resign("discord", "abcd", "POST", DEV_URL, [], b"{}", 0)
    with pytest.raises(ValueError, match="unknown scheme"):
        resign("nope", "s", "POST", DEV_URL, [], b"{}", 0)
