"""Validation of endpoint input sent to the API, and the endpoint's JSON shape.

The endpoint's feature settings are an `EndpointSettings` (app/endpoint_settings.py), which parses them; this
module checks the body as a whole, validates name and response, and renders the settings as the API shows them
(secrets masked), in SETTING_NAMES order.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.delivery.resign import render_resign
from app.endpoint_settings import SETTING_NAMES, EndpointSettings, SettingName
from app.models import Endpoint, EndpointStats, ResponseSpec, rfc3339
from app.web.urls import ingest_url, inspect_url

log = logging.getLogger("hookscope.api")

MAX_NAME = 200
MAX_RESPONSE_BODY = 1024 * 1024
MAX_DELAY = 30.0
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_FORBIDDEN_RESPONSE_HEADERS = {"content-length", "transfer-encoding", "connection"}
_READ_ONLY = frozenset({"id", "ingest_url", "inspect_url", "created_at", "request_count", "last_request_at"})


@dataclass(frozen=True, slots=True)
class EndpointInput:
    """A validated create/patch body; None: not given."""

    name: str | None = None
    response: ResponseSpec | None = None
    settings: EndpointSettings | None = None  # the endpoint's settings with the input applied


def parse_name(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("name must be a string")
    if len(value) > MAX_NAME:
        raise ValueError(f"name is longer than {MAX_NAME} characters")
    return value


def parse_response(value: Any) -> ResponseSpec:
    if value is None:
        return ResponseSpec()
    if not isinstance(value, dict):
        raise ValueError("response must be an object with status, headers, body, delay")
    unknown = set(value) - {"status", "headers", "body", "delay"}
    if unknown:
        raise ValueError(f"unknown response field(s): {', '.join(sorted(unknown))}")
    status = value.get("status", 200)
    if not isinstance(status, int) or isinstance(status, bool) or not 200 <= status <= 599:
        raise ValueError("response.status must be an integer from 200 to 599")
    headers_in = value.get("headers", [])
    if isinstance(headers_in, dict):
        headers_in = list(headers_in.items())
    if not isinstance(headers_in, list) or len(headers_in) > 100:
        raise ValueError("response.headers must be a list of [name, value] pairs (at most 100)")
    headers: list[tuple[str, str]] = []
    for item in headers_in:
        if not (isinstance(item, list | tuple) and len(item) == 2 and all(isinstance(x, str) for x in item)):
            raise ValueError("response.headers must be a list of [name, value] string pairs")
        name, val = item
        if not _TOKEN.match(name):
            raise ValueError(f"response header name {name!r} is not a valid HTTP token")
        if name.lower() in _FORBIDDEN_RESPONSE_HEADERS:
            raise ValueError(f"response header {name!r} is set by the server")
        if any(c in val for c in "\r\n\0") or len(val) > 8192:
            raise ValueError(f"response header {name!r} has a control character or is too long")
        try:
            val.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(f"response header {name!r} must be ISO-8859-1 text") from None
        headers.append((name.lower(), val))
    body = value.get("body")
    if body is not None and (not isinstance(body, str) or len(body.encode()) > MAX_RESPONSE_BODY):
        raise ValueError("response.body must be a string of at most 1 MiB")
    delay = value.get("delay", 0)
    if not isinstance(delay, int | float) or isinstance(delay, bool) or not 0 <= delay <= MAX_DELAY:
        raise ValueError(f"response.delay must be a number of seconds from 0 to {MAX_DELAY:g}")
    return ResponseSpec(status, tuple(headers), body, float(delay))


def parse_endpoint_input(data: Any, existing: EndpointSettings | None) -> EndpointInput:
    """Validate a create/patch body against the endpoint's current settings (None when creating). Only what
    was given is set; ValueError carries a message for the user."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    unknown = set(data) - {"name", "response", *SETTING_NAMES} - _READ_ONLY
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
    name = parse_name(data["name"]) if "name" in data else None
    response = parse_response(data["response"]) if "response" in data else None
    settings = None
    if any(key in data for key in SETTING_NAMES):
        settings = (existing or EndpointSettings()).with_input(data)
    return EndpointInput(name, response, settings)


def endpoint_json(ep: Endpoint, stats: EndpointStats, base_url: str) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": ep.id,
        "name": ep.name,
        "ingest_url": ingest_url(base_url, ep.id),
        "inspect_url": inspect_url(base_url, ep.id),
        "created_at": rfc3339(ep.created_at),
        "request_count": stats.request_count,
        "last_request_at": rfc3339(stats.last_request_at) if stats.last_request_at else None,
        "response": ep.response.to_json(),
    }
    for key, render in _SHOWN:
        shown = _shown(ep.id, key, render, ep.settings)
        if shown is not None:
            data[key] = shown
    return data


def _verify_json(settings: EndpointSettings) -> object:
    return None if settings.verify is None else settings.verify.to_json()


def _forward_targets_json(settings: EndpointSettings) -> object:
    return None if settings.forward_targets is None else list(settings.forward_targets)


def _passthrough_json(settings: EndpointSettings) -> object:
    return None if settings.passthrough is None else {"timeout": settings.passthrough.timeout}


def _replay_target_json(settings: EndpointSettings) -> object:
    return settings.replay_target


def _resign_json(settings: EndpointSettings) -> object:
    return None if settings.resign is None else render_resign(settings.resign)


# Each setting as the API shows it (None: not set), in the order of the endpoint's JSON: one per SETTING_NAMES.
_SHOWN: tuple[tuple[SettingName, Callable[[EndpointSettings], object]], ...] = (
    ("verify", _verify_json),
    ("forward_targets", _forward_targets_json),
    ("passthrough", _passthrough_json),
    ("replay_target", _replay_target_json),
    ("resign", _resign_json),
)


def _shown(
    endpoint_id: str, key: SettingName, render: Callable[[EndpointSettings], object], settings: EndpointSettings
) -> object:
    """A setting as the API shows it. One stored by an older version that cannot be decoded, or that today's
    renderer refuses (e.g. a Discord seed that is not hex), must not turn every endpoint listing into a 500:
    it is reported in place."""
    if key in settings.unreadable_names():
        log.warning("endpoint %s: stored setting %r cannot be read", endpoint_id, key)
        return _unreadable(key)
    try:
        return render(settings)
    except (ValueError, TypeError, KeyError, AttributeError):
        log.warning("endpoint %s: stored setting %r cannot be shown", endpoint_id, key, exc_info=True)
        return _unreadable(key)


def _unreadable(key: SettingName) -> dict[str, str]:
    return {"error": f"the stored {key} setting cannot be read; set it again"}
