"""Recognise the sending provider and its event identity.

Header-based rules run first because headers are the provider's own
fingerprint; body-only rules are fallbacks for captures whose headers were
stripped by a proxy. Every rule tolerates hostile input: bodies go through the
bounded parsers in ``payload`` and only well-typed values are used.
"""

from __future__ import annotations

from collections.abc import Callable

from app.providers.payload import (
    bounded,
    dig,
    form_value,
    parse_form,
    parse_json,
    parse_json_object,
    parse_json_text,
    text,
)
from app.providers.types import Detection, SignedRequest

_DISCORD_INTERACTIONS = {
    1: "ping",
    2: "application_command",
    3: "message_component",
    4: "application_command_autocomplete",
    5: "modal_submit",
}
# Discord webhook events (as opposed to interactions) carry an "event" object
# and use 0 for PING.
_CLERK_PREFIXES = (
    "user.",
    "session.",
    "organization.",
    "organizationMembership.",
    "organizationInvitation.",
    "organizationDomain.",
    "email.created",
    "sms.created",
    "role.",
    "permission.",
    "waitlistEntry.",
    "subscription.",
    "subscriptionItem.",
    "paymentAttempt.",
)
_RESEND_PREFIXES = ("email.", "contact.", "domain.")


def _joined(kind: str | None, action: str | None) -> str | None:
    if kind is None:
        return None
    return bounded(f"{kind}.{action}" if action else kind)


def _stripe(req: SignedRequest) -> Detection | None:
    if req.header("stripe-signature") is None:
        return None
    body = parse_json_object(req.body)
    return Detection("stripe", text(dig(body, "type")), text(dig(body, "id")))


def _github(req: SignedRequest) -> Detection | None:
    event = bounded(req.header("x-github-event"))
    if event is None:
        return None
    body = parse_json_object(req.body)
    if body is None:
        # Webhooks configured as application/x-www-form-urlencoded wrap the
        # JSON in a single "payload" field.
        wrapped = form_value(parse_form(req.body), "payload")
        body = parse_json_text(wrapped) if wrapped else None
    action = text(dig(body, "action"))
    return Detection(
        "github", _joined(event, action), bounded(req.header("x-github-delivery"))
    )


def _gitlab(req: SignedRequest) -> Detection | None:
    header_event = bounded(req.header("x-gitlab-event"))
    if header_event is None and req.header("x-gitlab-token") is None:
        return None
    body = parse_json_object(req.body)
    kind = text(dig(body, "object_kind"))
    action = text(dig(body, "object_attributes", "action"))
    event_type = _joined(kind, action) if kind else header_event
    # Idempotency-Key survives retries; the event UUID identifies the event;
    # X-Gitlab-Webhook-UUID names the hook itself, so it cannot dedupe.
    event_id = (
        bounded(req.header("idempotency-key"))
        or bounded(req.header("x-gitlab-event-uuid"))
        or bounded(req.header("webhook-id"))
    )
    return Detection("gitlab", event_type, event_id)


def _shopify(req: SignedRequest) -> Detection | None:
    topic = bounded(req.header("x-shopify-topic")) or bounded(
        req.header("shopify-topic")
    )
    if topic is None and req.header("x-shopify-hmac-sha256") is None:
        return None
    event_id = (
        bounded(req.header("x-shopify-webhook-id"))
        or bounded(req.header("shopify-webhook-id"))
        or bounded(req.header("x-shopify-event-id"))
        or bounded(req.header("shopify-event-id"))
    )
    return Detection("shopify", topic, event_id)


def _slack_from_body(req: SignedRequest) -> Detection:
    body = parse_json_object(req.body)
    if body is not None:
        kind = text(body.get("type"))
        if kind == "event_callback":
            return Detection(
                "slack", text(dig(body, "event", "type")), text(body.get("event_id"))
            )
        return Detection("slack", kind, text(body.get("event_id")))
    form = parse_form(req.body)
    wrapped = form_value(form, "payload")
    if wrapped is not None:
        inner = parse_json_text(wrapped)
        trigger = text(dig(inner, "trigger_id")) or text(dig(inner, "action_ts"))
        return Detection("slack", text(dig(inner, "type")), trigger)
    command = form_value(form, "command")
    if command is not None:
        return Detection(
            "slack",
            bounded(f"slash_command:{command}"),
            bounded(form_value(form, "trigger_id")),
        )
    return Detection("slack")


def _slack(req: SignedRequest) -> Detection | None:
    if (
        req.header("x-slack-signature") is None
        and req.header("x-slack-request-timestamp") is None
    ):
        return None
    return _slack_from_body(req)


def _twilio(req: SignedRequest) -> Detection | None:
    if req.header("x-twilio-signature") is None:
        return None
    # Twilio keeps this token stable across retries of one delivery.
    token = bounded(req.header("i-twilio-idempotency-token"))
    parsed = parse_json(req.body)
    if isinstance(parsed, list) and parsed:
        # Event Streams deliver a batch of CloudEvents.
        parsed = parsed[0]
    if isinstance(parsed, dict):
        return Detection(
            "twilio", text(parsed.get("type")), token or text(parsed.get("id"))
        )
    form = parse_form(req.body)
    for status_key, kind, sid_key in (
        ("MessageStatus", "message", "MessageSid"),
        ("SmsStatus", "message", "SmsSid"),
        ("CallStatus", "call", "CallSid"),
    ):
        status = form_value(form, status_key)
        if status is not None:
            sid = form_value(form, sid_key)
            fallback = bounded(f"{sid}:{status}") if sid else None
            return Detection("twilio", bounded(f"{kind}.{status}"), token or fallback)
    return Detection("twilio", None, token)


def _square(req: SignedRequest) -> Detection | None:
    if (
        req.header("x-square-hmacsha256-signature") is None
        and req.header("x-square-signature") is None
    ):
        return None
    body = parse_json_object(req.body)
    return Detection("square", text(dig(body, "type")), text(dig(body, "event_id")))


def _paddle(req: SignedRequest) -> Detection | None:
    if req.header("paddle-signature") is None:
        return None
    body = parse_json_object(req.body)
    event_id = text(dig(body, "event_id")) or text(dig(body, "notification_id"))
    return Detection("paddle", text(dig(body, "event_type")), event_id)


def _linear(req: SignedRequest) -> Detection | None:
    if req.header("linear-signature") is None and req.header("linear-delivery") is None:
        return None
    body = parse_json_object(req.body)
    kind = text(dig(body, "type"))
    # webhookId names the webhook, not the event, so only the delivery header
    # can identify a retry.
    return Detection(
        "linear",
        _joined(kind, text(dig(body, "action"))),
        bounded(req.header("linear-delivery")),
    )


def _zoom_event_id(body: dict[str, object] | None) -> str | None:
    # Zoom sends no documented per-event id header; event_ts is fixed when the
    # event happens, so with the event name and object it is stable on retry.
    event = text(dig(body, "event"))
    ts = text(dig(body, "event_ts"))
    if event is None or ts is None:
        return None
    obj = text(dig(body, "payload", "object", "uuid")) or text(
        dig(body, "payload", "object", "id")
    )
    return bounded(f"{event}:{ts}:{obj}" if obj else f"{event}:{ts}")


def _zoom(req: SignedRequest) -> Detection | None:
    if (
        req.header("x-zm-signature") is None
        and req.header("x-zm-request-timestamp") is None
    ):
        return None
    body = parse_json_object(req.body)
    return Detection("zoom", text(dig(body, "event")), _zoom_event_id(body))


def _discord(req: SignedRequest) -> Detection | None:
    if req.header("x-signature-ed25519") is None:
        return None
    body = parse_json_object(req.body)
    kind = dig(body, "type")
    event = dig(body, "event")
    if isinstance(event, dict):
        return Detection("discord", text(event.get("type")) or "ping", None)
    if (
        isinstance(kind, int)
        and not isinstance(kind, bool)
        and kind in _DISCORD_INTERACTIONS
    ):
        name = _DISCORD_INTERACTIONS[kind]
        command = text(dig(body, "data", "name"))
        event_type = bounded(f"{name}:{command}") if command else name
        return Detection("discord", event_type, text(dig(body, "id")))
    return Detection("discord", None, text(dig(body, "id")))


def _standard_provider(req: SignedRequest, event_type: str | None, svix: bool) -> str:
    body = parse_json_object(req.body)
    if event_type is not None:
        if dig(body, "object") == "event" and event_type.startswith(_CLERK_PREFIXES):
            return "clerk"
        if event_type.startswith(_RESEND_PREFIXES):
            return "resend"
    return "svix" if svix else "standard-webhooks"


def _standard(req: SignedRequest) -> Detection | None:
    svix_id = bounded(req.header("svix-id"))
    webhook_id = bounded(req.header("webhook-id"))
    if svix_id is None and webhook_id is None:
        return None
    if req.header("svix-signature") is None and req.header("webhook-signature") is None:
        return None
    event_type = text(dig(parse_json_object(req.body), "type"))
    provider = _standard_provider(req, event_type, svix_id is not None)
    return Detection(provider, event_type, svix_id or webhook_id)


def _stripe_body(req: SignedRequest) -> Detection | None:
    body = parse_json_object(req.body)
    event_id = text(dig(body, "id"))
    if (
        dig(body, "object") == "event"
        and event_id is not None
        and event_id.startswith("evt_")
    ):
        return Detection("stripe", text(dig(body, "type")), event_id)
    return None


def _slack_body(req: SignedRequest) -> Detection | None:
    body = parse_json_object(req.body)
    if dig(body, "type") in ("event_callback", "url_verification") and "token" in (
        body or {}
    ):
        return _slack_from_body(req)
    return None


Rule = Callable[[SignedRequest], Detection | None]

# Header rules, in order, each with the headers it needs one of: a rule returns None without them, so it runs only
# when one is present (most captures carry none, and skip every rule with a dictionary lookup per name).
_HEADER_RULES: tuple[tuple[tuple[str, ...], Rule], ...] = (
    (("x-github-event",), _github),
    (("x-gitlab-event", "x-gitlab-token"), _gitlab),
    (("x-shopify-topic", "shopify-topic", "x-shopify-hmac-sha256"), _shopify),
    (("stripe-signature",), _stripe),
    (("x-slack-signature", "x-slack-request-timestamp"), _slack),
    (("x-twilio-signature",), _twilio),
    (("x-square-hmacsha256-signature", "x-square-signature"), _square),
    (("paddle-signature",), _paddle),
    (("linear-signature", "linear-delivery"), _linear),
    (("x-zm-signature", "x-zm-request-timestamp"), _zoom),
    (("x-signature-ed25519",), _discord),
    (("svix-id", "webhook-id"), _standard),
)
_BOM_OR_WIDE = frozenset({0x00, 0xEF, 0xFE, 0xFF})
_TRIGGERS = frozenset(name for triggers, _ in _HEADER_RULES for name in triggers)
# Body rules (headers stripped by a proxy), after the header rules, each with the bytes its match must contain:
# a JSON body is parsed only when one occurs (or when it holds escapes).
_BODY_RULES: tuple[tuple[tuple[bytes, ...], Rule], ...] = (
    ((b"evt_",), _stripe_body),
    ((b"event_callback", b"url_verification"), _slack_body),
)


def detect(req: SignedRequest) -> Detection:
    """Provider, event type and event id of ``req``; all None when unknown.

    Never raises: detection runs on every capture, including garbage.
    """
    present = _TRIGGERS.intersection(req.first_values)
    if present:
        for triggers, rule in _HEADER_RULES:
            if not present.isdisjoint(triggers):
                found = _run(rule, req)
                if found is not None:
                    return found
    body = req.body
    # The markers are looked for in the raw bytes, which say nothing when JSON spells characters as escapes or the
    # body is UTF-16 or 32 (a NUL in its first two bytes, or a byte-order mark): such a body is parsed regardless.
    unsure = b"\\u" in body or (len(body) > 1 and (body[0] in _BOM_OR_WIDE or not body[1]))
    for markers, rule in _BODY_RULES:
        if unsure or any(marker in body for marker in markers):
            found = _run(rule, req)
            if found is not None:
                return found
    return Detection()


def _run(rule: Rule, req: SignedRequest) -> Detection | None:
    try:
        return rule(req)
    except (ValueError, TypeError, RecursionError, UnicodeError):
        # The parsers already swallow these; this is the last line of defence so one odd payload cannot break
        # capture.
        return None


_SCHEME_FOR_PROVIDER = {
    "stripe": "stripe",
    "github": "github",
    "gitlab": "gitlab",
    "shopify": "shopify",
    "slack": "slack",
    "twilio": "twilio",
    "square": "square",
    "paddle": "paddle",
    "linear": "linear",
    "zoom": "zoom",
    "discord": "discord",
    "standard-webhooks": "standard-webhooks",
    "svix": "svix",
    "clerk": "clerk",
    "resend": "resend",
}


def scheme_for_provider(provider: str | None) -> str | None:
    """Verify scheme to suggest in the UI for a detected provider."""
    return _SCHEME_FOR_PROVIDER.get(provider) if provider else None
