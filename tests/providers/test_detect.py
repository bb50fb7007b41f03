"""Detection from realistic deliveries of each provider."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from app.providers import Detection, detect, scheme_for_provider
from tests.providers.helpers import make

J = "application/json"
FORM = "application/x-www-form-urlencoded"

SAMPLES: list[tuple[str, dict[str, str], bytes | str, Detection]] = [
    (
        "stripe",
        {
            "Stripe-Signature": "t=1,v1=ab",
            "Content-Type": J,
            "User-Agent": "Stripe/1.0",
        },
        json.dumps(
            {
                "id": "evt_1NG8Du2eZvKYlo2CUI79vXWy",
                "object": "event",
                "type": "customer.subscription.updated",
            }
        ),
        Detection(
            "stripe", "customer.subscription.updated", "evt_1NG8Du2eZvKYlo2CUI79vXWy"
        ),
    ),
    (
        "stripe-no-header",
        {"Content-Type": J},
        json.dumps(
            {
                "id": "evt_123",
                "object": "event",
                "type": "charge.succeeded",
                "api_version": "2024-06-20",
            }
        ),
        Detection("stripe", "charge.succeeded", "evt_123"),
    ),
    (
        "github-issues",
        {
            "X-GitHub-Event": "issues",
            "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
            "X-Hub-Signature-256": "sha256=00",
        },
        json.dumps({"action": "opened", "issue": {"number": 1}}),
        Detection("github", "issues.opened", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
    ),
    (
        "github-push",
        {"X-GitHub-Event": "push", "X-GitHub-Delivery": "d1"},
        json.dumps({"ref": "refs/heads/main", "commits": []}),
        Detection("github", "push", "d1"),
    ),
    (
        "github-form",
        {
            "X-GitHub-Event": "pull_request",
            "X-GitHub-Delivery": "d2",
            "Content-Type": FORM,
        },
        urlencode({"payload": json.dumps({"action": "closed"})}),
        Detection("github", "pull_request.closed", "d2"),
    ),
    (
        "shopify",
        {
            "X-Shopify-Topic": "orders/create",
            "X-Shopify-Hmac-Sha256": "XWmrwMey6OsLMeiZKwP4FppHH3cmAiiJJAweH5Jo4bM=",
            "X-Shopify-Shop-Domain": "shop.myshopify.com",
            "X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
            "X-Shopify-Event-Id": "98880550-7158-44d4-b7cd-2c97c8a091b5",
        },
        json.dumps({"id": 820982911946154508}),
        Detection("shopify", "orders/create", "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"),
    ),
    (
        "slack-event",
        {
            "X-Slack-Signature": "v0=00",
            "X-Slack-Request-Timestamp": "1",
            "X-Slack-Retry-Num": "1",
        },
        json.dumps(
            {
                "token": "t",
                "type": "event_callback",
                "event_id": "Ev0PV52K25",
                "event": {"type": "app_mention", "text": "hi"},
            }
        ),
        Detection("slack", "app_mention", "Ev0PV52K25"),
    ),
    (
        "slack-url-verification",
        {"X-Slack-Signature": "v0=00", "X-Slack-Request-Timestamp": "1"},
        json.dumps(
            {
                "token": "t",
                "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
                "type": "url_verification",
            }
        ),
        Detection("slack", "url_verification", None),
    ),
    (
        "slack-interactivity",
        {
            "X-Slack-Signature": "v0=00",
            "X-Slack-Request-Timestamp": "1",
            "Content-Type": FORM,
        },
        urlencode(
            {
                "payload": json.dumps(
                    {
                        "type": "block_actions",
                        "trigger_id": "13345224609.738474920.8088930838d88f008e0",
                    }
                )
            }
        ),
        Detection(
            "slack", "block_actions", "13345224609.738474920.8088930838d88f008e0"
        ),
    ),
    (
        "slack-command",
        {
            "X-Slack-Signature": "v0=00",
            "X-Slack-Request-Timestamp": "1",
            "Content-Type": FORM,
        },
        urlencode({"command": "/weather", "text": "94070", "trigger_id": "tr-1"}),
        Detection("slack", "slash_command:/weather", "tr-1"),
    ),
    (
        "svix",
        {
            "svix-id": "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
            "svix-timestamp": "1",
            "svix-signature": "v1,x",
            "User-Agent": "Svix-Webhooks/1.4",
        },
        json.dumps({"type": "invoice.paid", "data": {}}),
        Detection("svix", "invoice.paid", "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"),
    ),
    (
        "clerk",
        {"svix-id": "msg_c1", "svix-timestamp": "1", "svix-signature": "v1,x"},
        json.dumps(
            {
                "type": "user.created",
                "object": "event",
                "data": {"id": "user_1"},
                "instance_id": "ins_1",
            }
        ),
        Detection("clerk", "user.created", "msg_c1"),
    ),
    (
        "resend",
        {"svix-id": "msg_r1", "svix-timestamp": "1", "svix-signature": "v1,x"},
        json.dumps(
            {
                "type": "email.delivered",
                "created_at": "2024-11-22T23:41:12.126Z",
                "data": {"email_id": "e1"},
            }
        ),
        Detection("resend", "email.delivered", "msg_r1"),
    ),
    (
        "standard-webhooks",
        {"webhook-id": "msg_s1", "webhook-timestamp": "1", "webhook-signature": "v1,x"},
        json.dumps(
            {
                "type": "order.shipped",
                "timestamp": "2022-11-03T20:26:10.344522Z",
                "data": {},
            }
        ),
        Detection("standard-webhooks", "order.shipped", "msg_s1"),
    ),
    (
        "twilio-sms",
        {
            "X-Twilio-Signature": "x",
            "Content-Type": FORM,
            "I-Twilio-Idempotency-Token": "a1b2c3",
        },
        urlencode(
            {
                "MessageSid": "SM1",
                "SmsSid": "SM1",
                "SmsStatus": "received",
                "Body": "hi",
            }
        ),
        Detection("twilio", "message.received", "a1b2c3"),
    ),
    (
        "twilio-call-status",
        {"X-Twilio-Signature": "x", "Content-Type": FORM},
        urlencode({"CallSid": "CA1", "CallStatus": "completed"}),
        Detection("twilio", "call.completed", "CA1:completed"),
    ),
    (
        "twilio-event-streams",
        {"X-Twilio-Signature": "x", "Content-Type": J},
        json.dumps(
            [
                {
                    "specversion": "1.0",
                    "type": "com.twilio.messaging.message.delivered",
                    "id": "EZ1",
                }
            ]
        ),
        Detection("twilio", "com.twilio.messaging.message.delivered", "EZ1"),
    ),
    (
        "square",
        {"x-square-hmacsha256-signature": "x", "Square-Environment": "Production"},
        json.dumps(
            {
                "merchant_id": "M",
                "type": "payment.updated",
                "event_id": "6a8f5f28-54a1-4eb0-a98a-3111513fd4fc",
            }
        ),
        Detection("square", "payment.updated", "6a8f5f28-54a1-4eb0-a98a-3111513fd4fc"),
    ),
    (
        "paddle",
        {"Paddle-Signature": "ts=1;h1=x"},
        json.dumps(
            {
                "event_id": "evt_01h",
                "event_type": "subscription.created",
                "notification_id": "ntf_01h",
            }
        ),
        Detection("paddle", "subscription.created", "evt_01h"),
    ),
    (
        "paddle-notification-only",
        {"Paddle-Signature": "ts=1;h1=x"},
        json.dumps({"event_type": "transaction.paid", "notification_id": "ntf_02"}),
        Detection("paddle", "transaction.paid", "ntf_02"),
    ),
    (
        "linear",
        {
            "Linear-Signature": "x",
            "Linear-Delivery": "234d1a4e-b617-4388-90fe-adc3633d6b72",
            "Linear-Event": "Issue",
        },
        json.dumps(
            {
                "action": "update",
                "type": "Issue",
                "webhookId": "000042e3",
                "webhookTimestamp": 1676056940508,
            }
        ),
        Detection("linear", "Issue.update", "234d1a4e-b617-4388-90fe-adc3633d6b72"),
    ),
    (
        "gitlab-mr",
        {
            "X-Gitlab-Event": "Merge Request Hook",
            "X-Gitlab-Event-UUID": "13792a34",
            "Idempotency-Key": "f5e5f430",
            "X-Gitlab-Token": "t",
        },
        json.dumps(
            {"object_kind": "merge_request", "object_attributes": {"action": "open"}}
        ),
        Detection("gitlab", "merge_request.open", "f5e5f430"),
    ),
    (
        "gitlab-old",
        {
            "X-Gitlab-Event": "Push Hook",
            "X-Gitlab-Event-UUID": "13792a34-cac6-4fda-95a8-c58e00a3954e",
        },
        json.dumps({"object_kind": "push"}),
        Detection("gitlab", "push", "13792a34-cac6-4fda-95a8-c58e00a3954e"),
    ),
    (
        "zoom",
        {
            "x-zm-signature": "v0=x",
            "x-zm-request-timestamp": "1",
            "x-zm-trackingid": "v=2.0;clid=aw1",
        },
        json.dumps(
            {
                "event": "meeting.started",
                "event_ts": 1635885799302,
                "payload": {"object": {"uuid": "4444AAAiAAAAAiAiAiiAii==", "id": 1}},
            }
        ),
        Detection(
            "zoom",
            "meeting.started",
            "meeting.started:1635885799302:4444AAAiAAAAAiAiAiiAii==",
        ),
    ),
    (
        "discord-ping",
        {"X-Signature-Ed25519": "x", "X-Signature-Timestamp": "1"},
        json.dumps({"type": 1, "id": "1112223334445556667", "application_id": "1"}),
        Detection("discord", "ping", "1112223334445556667"),
    ),
    (
        "discord-command",
        {"X-Signature-Ed25519": "x", "X-Signature-Timestamp": "1"},
        json.dumps({"type": 2, "id": "786008729715212338", "data": {"name": "blep"}}),
        Detection("discord", "application_command:blep", "786008729715212338"),
    ),
    (
        "discord-webhook-event",
        {"X-Signature-Ed25519": "x", "X-Signature-Timestamp": "1"},
        json.dumps(
            {
                "version": 1,
                "application_id": "1",
                "type": 1,
                "event": {"type": "APPLICATION_AUTHORIZED"},
            }
        ),
        Detection("discord", "APPLICATION_AUTHORIZED", None),
    ),
    ("unknown", {"Content-Type": J}, json.dumps({"hello": "world"}), Detection()),
    ("empty", {}, b"", Detection()),
]


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [s[1:] for s in SAMPLES],
    ids=[s[0] for s in SAMPLES],
)
def test_detect(
    headers: dict[str, str], body: bytes | str, expected: Detection
) -> None:
    assert detect(make(headers, body)) == expected


def test_header_lookup_is_case_insensitive_and_keeps_duplicates() -> None:
    req = make([("X-A", "1"), ("x-a", "2")], b"")
    assert req.header("X-A") == "1"
    assert req.header_all("x-A") == ("1", "2")
    assert req.header("missing") is None


def test_retries_share_the_event_id() -> None:
    """Provider retries (new signature, same event) detect the same id: duplicates."""
    body = json.dumps({"id": "evt_retry", "object": "event", "type": "invoice.paid"})
    first = detect(make({"Stripe-Signature": "t=1,v1=aa"}, body))
    retry = detect(make({"Stripe-Signature": "t=99,v1=bb"}, body))
    assert first.event_id == retry.event_id == "evt_retry"


@pytest.mark.parametrize(
    "provider", ["stripe", "github", "svix", "clerk", "discord", "gitlab"]
)
def test_scheme_for_provider(provider: str) -> None:
    assert scheme_for_provider(provider) == provider
    assert scheme_for_provider(None) is None


@pytest.mark.parametrize(
    "body",
    [
        '{"id": "evt_1", "object": "event", "type": "invoice.paid"}',
        # Escapes spell the same JSON: the byte pre-check must not skip it.
        '{"id": "\\u0065vt_1", "object": "\\u0065vent", "type": "invoice.paid"}',
        # BOM and UTF-16: the encodings json.loads accepts on bytes.
        "\ufeff" + '{"id": "evt_1", "object": "event", "type": "invoice.paid"}',
    ],
    ids=["plain", "escaped", "bom"],
)
def test_stripe_is_detected_by_its_body_alone_however_it_is_spelled(body: str) -> None:
    assert detect(make({"Content-Type": J}, body.encode())) == Detection("stripe", "invoice.paid", "evt_1")
    encoded = '{"id": "evt_1", "object": "event", "type": "invoice.paid"}'.encode("utf-16")
    assert detect(make({"Content-Type": J}, encoded)) == Detection("stripe", "invoice.paid", "evt_1")


def test_a_provider_header_with_an_empty_value_falls_through_to_the_next_rule() -> None:
    body = json.dumps({"id": "evt_2", "object": "event", "type": "charge.failed"})
    # An empty X-GitHub-Event is no GitHub event: the body rule still finds Stripe.
    assert detect(make({"X-GitHub-Event": "", "Content-Type": J}, body)) == Detection(
        "stripe", "charge.failed", "evt_2"
    )
