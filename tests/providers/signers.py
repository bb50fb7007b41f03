"""One signing recipe per scheme, using the provider's official library where
it can sign and plain HMAC / Ed25519 (what those libraries use) otherwise.

Each recipe takes (secret, unix timestamp) and returns the signed request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlencode

import stripe
from nacl.signing import SigningKey
from paddle_billing.Notifications import PaddleSignature  # type: ignore[import-untyped]
from slack_sdk.signature import SignatureVerifier
from standardwebhooks.webhooks import Webhook as StdWebhook
from svix.webhooks import Webhook as SvixWebhook
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

FORM = "application/x-www-form-urlencoded"
URL = "https://hooks.example.test/in/ep1"


@dataclass(frozen=True)
class Signed:
    headers: dict[str, str]
    body: bytes
    url: str = URL


Recipe = Callable[[str, int], Signed]


@dataclass(frozen=True)
class Case:
    name: str
    scheme: str
    secret: str
    other_secret: str
    sign: Recipe
    # Provider default tolerance; None when the scheme has no timestamp check.
    tolerance: int | None
    official: bool
    config: dict[str, object] = field(default_factory=dict)
    tamper_reason: str = "signature mismatch"


def _hmac(key: str, message: bytes, algorithm: str = "sha256") -> bytes:
    return hmac.new(key.encode(), message, getattr(hashlib, algorithm)).digest()


STRIPE_BODY = json.dumps(
    {
        "id": "evt_1NXb2",
        "object": "event",
        "type": "payment_intent.succeeded",
        "data": {"object": {"id": "pi_1"}},
    }
)


def stripe_sign(secret: str, ts: int) -> Signed:
    header = stripe.WebhookSignature.generate_signature_header(
        STRIPE_BODY, secret, timestamp=ts
    )
    return Signed(
        {"Stripe-Signature": header, "Content-Type": "application/json"},
        STRIPE_BODY.encode(),
    )


GITHUB_BODY = (
    b'{"action":"opened","issue":{"number":7},"repository":{"full_name":"o/r"}}'
)


def github_sign(secret: str, ts: int) -> Signed:
    sig = "sha256=" + _hmac(secret, GITHUB_BODY).hex()
    return Signed(
        {
            "X-GitHub-Event": "issues",
            "X-GitHub-Delivery": "72d3162e",
            "X-Hub-Signature-256": sig,
        },
        GITHUB_BODY,
    )


STD_BODY = '{"type":"user.created","object":"event","data":{"id":"user_29w83sxmDNGwOuEthce5gg56FcC"}}'


def _std_sign(webhook_cls: type[StdWebhook | SvixWebhook], prefix: str) -> Recipe:
    def sign(secret: str, ts: int) -> Signed:
        msg_id = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
        when = datetime.fromtimestamp(ts, tz=UTC)
        signature = webhook_cls(secret).sign(msg_id, when, STD_BODY)
        headers = {
            f"{prefix}-id": msg_id,
            f"{prefix}-timestamp": str(ts),
            f"{prefix}-signature": signature,
        }
        return Signed(headers, STD_BODY.encode())

    return sign


SHOPIFY_BODY = b'{"id":820982911946154508,"title":"Example T-Shirt"}'


def shopify_sign(secret: str, ts: int) -> Signed:
    sig = base64.b64encode(_hmac(secret, SHOPIFY_BODY)).decode()
    headers = {
        "X-Shopify-Topic": "products/create",
        "X-Shopify-Webhook-Id": "b54557e4",
        "X-Shopify-Hmac-Sha256": sig,
    }
    return Signed(headers, SHOPIFY_BODY)


SLACK_BODY = json.dumps(
    {
        "token": "x",
        "team_id": "T1",
        "type": "event_callback",
        "event_id": "Ev08",
        "event": {"type": "app_mention"},
    }
)


def slack_sign(secret: str, ts: int) -> Signed:
    sig = SignatureVerifier(secret).generate_signature(
        timestamp=str(ts), body=SLACK_BODY
    )
    assert sig is not None
    headers = {
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": sig,
        "Content-Type": "application/json",
    }
    return Signed(headers, SLACK_BODY.encode())


TWILIO_PARAMS = {
    "MessageSid": "SM1",
    "SmsStatus": "received",
    "Body": "Hi ✓ there",
    "From": "+15551234567",
}
TWILIO_URL = "https://hooks.example.test/in/twilio?tenant=a"


def twilio_sign(secret: str, ts: int) -> Signed:
    sig = RequestValidator(secret).compute_signature(TWILIO_URL, TWILIO_PARAMS)
    headers = {
        "X-Twilio-Signature": sig,
        "Content-Type": FORM,
        "I-Twilio-Idempotency-Token": "tok-1",
    }
    return Signed(headers, urlencode(TWILIO_PARAMS).encode(), TWILIO_URL)


TWILIO_JSON_BODY = (
    '{"specversion":"1.0","type":"com.twilio.messaging.message.delivered","id":"EZ1"}'
)


def twilio_json_sign(secret: str, ts: int) -> Signed:
    validator = RequestValidator(secret)
    url = TWILIO_URL + "&bodySHA256=" + validator.compute_hash(TWILIO_JSON_BODY)
    sig = validator.compute_signature(url, {})
    return Signed(
        {"X-Twilio-Signature": sig, "Content-Type": "application/json"},
        TWILIO_JSON_BODY.encode(),
        url,
    )


SQUARE_BODY = b'{"merchant_id":"M1","type":"payment.updated","event_id":"e1","data":{}}'


def square_sign(secret: str, ts: int) -> Signed:
    sig = base64.b64encode(_hmac(secret, URL.encode() + SQUARE_BODY)).decode()
    return Signed({"x-square-hmacsha256-signature": sig}, SQUARE_BODY)


PADDLE_BODY = '{"event_id":"evt_01","event_type":"transaction.completed","notification_id":"ntf_01","data":{}}'


def paddle_sign(secret: str, ts: int) -> Signed:
    h1 = PaddleSignature.calculate_hmac(
        secret, f"{ts}:{PADDLE_BODY}".encode()
    ).hexdigest()
    return Signed({"Paddle-Signature": f"ts={ts};h1={h1}"}, PADDLE_BODY.encode())


def linear_sign(secret: str, ts: int) -> Signed:
    body = json.dumps(
        {
            "action": "create",
            "type": "Issue",
            "data": {"id": "1"},
            "webhookTimestamp": ts * 1000,
        }
    )
    sig = _hmac(secret, body.encode()).hex()
    return Signed(
        {"Linear-Signature": sig, "Linear-Delivery": "d-1", "Linear-Event": "Issue"},
        body.encode(),
    )


GITLAB_BODY = b'{"object_kind":"push","ref":"refs/heads/main"}'


def gitlab_token_sign(secret: str, ts: int) -> Signed:
    return Signed(
        {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": secret}, GITLAB_BODY
    )


def gitlab_std_sign(secret: str, ts: int) -> Signed:
    msg_id = "f9a1c0b2-idempotency"
    sig = StdWebhook(secret).sign(
        msg_id, datetime.fromtimestamp(ts, tz=UTC), GITLAB_BODY.decode()
    )
    headers = {
        "X-Gitlab-Event": "Push Hook",
        "Idempotency-Key": msg_id,
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sig,
    }
    return Signed(headers, GITLAB_BODY)


ZOOM_BODY = b'{"event":"meeting.started","event_ts":1626230691572,"payload":{"object":{"id":"1"}}}'


def zoom_sign(secret: str, ts: int) -> Signed:
    sig = "v0=" + _hmac(secret, f"v0:{ts}:".encode() + ZOOM_BODY).hex()
    return Signed({"x-zm-signature": sig, "x-zm-request-timestamp": str(ts)}, ZOOM_BODY)


DISCORD_BODY = b'{"type":2,"id":"1234","data":{"name":"ping"}}'
DISCORD_SEEDS = {bytes(range(32)).hex(): None, bytes(range(1, 33)).hex(): None}


def discord_public(seed_hex: str) -> str:
    return SigningKey(bytes.fromhex(seed_hex)).verify_key.encode().hex()


def discord_sign_with_seed(seed_hex: str, ts: int) -> Signed:
    sig = (
        SigningKey(bytes.fromhex(seed_hex))
        .sign(str(ts).encode() + DISCORD_BODY)
        .signature.hex()
    )
    return Signed(
        {"X-Signature-Ed25519": sig, "X-Signature-Timestamp": str(ts)}, DISCORD_BODY
    )


_DISCORD_BY_PUBLIC = {discord_public(seed): seed for seed in DISCORD_SEEDS}


def discord_sign(public_hex: str, ts: int) -> Signed:
    # Cases are keyed by what the config holds (the public key); sign with
    # the matching private seed.
    return discord_sign_with_seed(_DISCORD_BY_PUBLIC[public_hex], ts)


GENERIC_CONFIG: dict[str, object] = {
    "header": "X-Acme-Signature",
    "algorithm": "sha512",
    "encoding": "base64",
    "prefix": "sha512=",
    "template": "{id}:{timestamp}:{body}",
    "timestamp_header": "X-Acme-Timestamp",
    "id_header": "X-Acme-Delivery",
}
GENERIC_BODY = b'{"kind":"thing.happened"}'


def generic_sign(secret: str, ts: int) -> Signed:
    sig = base64.b64encode(
        _hmac(secret, f"d-42:{ts}:".encode() + GENERIC_BODY, "sha512")
    ).decode()
    headers = {
        "X-Acme-Signature": "sha512=" + sig,
        "X-Acme-Timestamp": str(ts),
        "X-Acme-Delivery": "d-42",
    }
    return Signed(headers, GENERIC_BODY)


_D1, _D2 = (discord_public(s) for s in DISCORD_SEEDS)
SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SW_OTHER = "whsec_" + base64.b64encode(b"another-32-byte-secret-for-tests").decode()

CASES = [
    Case(
        "stripe",
        "stripe",
        "whsec_test_secret",
        "whsec_rotated_secret",
        stripe_sign,
        300,
        True,
    ),
    Case("github", "github", "mysecret", "othersecret", github_sign, None, False),
    Case(
        "standard-webhooks",
        "standard-webhooks",
        SW_SECRET,
        SW_OTHER,
        _std_sign(StdWebhook, "webhook"),
        300,
        True,
    ),
    Case(
        "svix", "svix", SW_SECRET, SW_OTHER, _std_sign(SvixWebhook, "svix"), 300, True
    ),
    Case(
        "clerk", "clerk", SW_SECRET, SW_OTHER, _std_sign(SvixWebhook, "svix"), 300, True
    ),
    Case(
        "resend",
        "resend",
        SW_SECRET,
        SW_OTHER,
        _std_sign(SvixWebhook, "svix"),
        300,
        True,
    ),
    Case(
        "shopify",
        "shopify",
        "shpss_test_secret_value",
        "shpss_other_secret_value",
        shopify_sign,
        None,
        False,
    ),
    Case(
        "slack",
        "slack",
        "8f742231b10e8888abcd99yyyzzz85a5",
        "0000742231b10e8888abcd99yyyzzz85",
        slack_sign,
        300,
        True,
    ),
    Case("twilio", "twilio", "12345abcdef", "54321fedcba", twilio_sign, None, True),
    Case(
        "twilio-json",
        "twilio",
        "12345abcdef",
        "54321fedcba",
        twilio_json_sign,
        None,
        True,
        tamper_reason="body does not match bodySHA256 in the URL (body changed after signing)",
    ),
    Case(
        "square",
        "square",
        "Ibxx_5AKakO-3qeNVR61Dw",
        "Zzzz_5AKakO-3qeNVR61Dw",
        square_sign,
        None,
        False,
    ),
    Case(
        "paddle",
        "paddle",
        "pdl_ntfset_01hbpjmytsa32fhr36nqgc3kgb_WvRO0eL4Bj9rgYYIBZY6wZhG4EHy9jzh",
        "pdl_ntfset_01hbpjmytsa32fhr36nqgc3kgb_rotatedrotatedrotated",
        paddle_sign,
        5,
        True,
    ),
    Case(
        "linear",
        "linear",
        "lin_wh_test_secret_value",
        "lin_wh_other_secret_value",
        linear_sign,
        60,
        False,
    ),
    Case(
        "gitlab-token",
        "gitlab",
        "glpat-style-token",
        "another-token",
        gitlab_token_sign,
        None,
        False,
        tamper_reason="",
    ),
    Case("gitlab-signing", "gitlab", SW_SECRET, SW_OTHER, gitlab_std_sign, 300, True),
    Case(
        "zoom",
        "zoom",
        "zoom_secret_token_value",
        "zoom_other_token_value",
        zoom_sign,
        None,
        False,
    ),
    Case("discord", "discord", _D1, _D2, discord_sign, None, False),
    Case(
        "hmac",
        "hmac",
        "acme-secret-value",
        "acme-other-value",
        generic_sign,
        300,
        False,
        GENERIC_CONFIG,
    ),
]
