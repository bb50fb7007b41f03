"""Validation of endpoint settings sent to the API, and the endpoint's JSON shape.

Feature settings (forward targets, verification, passthrough, ...) live in Endpoint.options. Each key has a
parser (API input -> stored value, raising ValueError with a message for the user) and a renderer (stored
value -> JSON shown back, e.g. with secrets masked), registered in OPTION_FIELDS below.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.models import Endpoint, EndpointStats, ResponseSpec, rfc3339
from app.providers.awareness import parse_verify, render_verify
from app.unicode_safe import scrub

log = logging.getLogger("hookscope.api")

MAX_NAME = 200
MAX_RESPONSE_BODY = 1024 * 1024
MAX_DELAY = 30.0
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_FORBIDDEN_RESPONSE_HEADERS = {"content-length", "transfer-encoding", "connection"}


@dataclass(frozen=True, slots=True)
class OptionField:
    parse: Callable[[Any, Any], Any]  # (API value, previously stored value or None) -> stored value
    render: Callable[[Any], Any]


OPTION_FIELDS: dict[str, OptionField] = {
    "verify": OptionField(parse_verify, render_verify),
}


def _register_forwarding_fields() -> None:
    # Imported here: the parsers live with the features they configure.
    from app.delivery.forwarder import parse_forward_targets, render_forward_targets
    from app.delivery.resign import parse_resign, render_resign
    from app.ingest.passthrough import parse_passthrough, render_passthrough

    OPTION_FIELDS["forward_targets"] = OptionField(_ignore_previous(parse_forward_targets), render_forward_targets)
    OPTION_FIELDS["passthrough"] = OptionField(_ignore_previous(parse_passthrough), render_passthrough)
    OPTION_FIELDS["replay_target"] = OptionField(_ignore_previous(_parse_replay_target), _identity)
    OPTION_FIELDS["resign"] = OptionField(parse_resign, render_resign)


def _ignore_previous(parse: Callable[[Any], Any]) -> Callable[[Any, Any], Any]:
    return lambda value, _previous: parse(value)


def _identity(value: Any) -> Any:
    return value


def _parse_replay_target(value: Any) -> str:
    from app.delivery.outgoing import TargetError, parse_target

    if not isinstance(value, str):
        raise ValueError("replay_target must be a URL")
    try:
        parse_target(value)
    except TargetError as exc:
        raise ValueError(f"replay_target: {exc}") from None
    return value.strip()


_register_forwarding_fields()


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


def parse_endpoint_input(data: Any, existing: dict[str, Any] | None) -> dict[str, Any]:
    """Validate a create/patch body. Returns {"name"?, "response"?, "options"?}: only what was given."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    known = {"name", "response", *OPTION_FIELDS}
    read_only = {"id", "ingest_url", "inspect_url", "created_at", "request_count", "last_request_at"}
    unknown = set(data) - known - read_only
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
    out: dict[str, Any] = {}
    if "name" in data:
        out["name"] = parse_name(data["name"])
    if "response" in data:
        out["response"] = parse_response(data["response"])
    options = dict(existing or {})
    changed = False
    for key, fieldspec in OPTION_FIELDS.items():
        if key in data:
            changed = True
            if data[key] is None:
                options.pop(key, None)
            else:
                options[key] = fieldspec.parse(data[key], options.get(key))
    if changed:
        out["options"] = options
    return out


def ingest_url(base_url: str, endpoint_id: str) -> str:
    return f"{base_url}/h/{endpoint_id}"


def endpoint_json(ep: Endpoint, stats: EndpointStats, base_url: str) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": ep.id,
        "name": ep.name,
        "ingest_url": ingest_url(base_url, ep.id),
        "inspect_url": f"{base_url}/e/{ep.id}",
        "created_at": rfc3339(ep.created_at),
        "request_count": stats.request_count,
        "last_request_at": rfc3339(stats.last_request_at) if stats.last_request_at else None,
        "response": ep.response.to_json(),
    }
    for key, fieldspec in OPTION_FIELDS.items():
        if key in ep.options:
            data[key] = _render_option(ep.id, key, fieldspec, ep.options[key])
    return data


def _render_option(endpoint_id: str, key: str, fieldspec: OptionField, stored: Any) -> Any:
    """A stored setting as the API shows it. Settings written by an older version may hold what today's parser
    refuses (a lone surrogate, a shape since changed): one such value must not turn every endpoint listing
    into a 500, so it is repaired (surrogates become U+FFFD) or, failing that, reported in place."""
    try:
        return scrub(fieldspec.render(scrub(stored)))
    except (ValueError, TypeError, KeyError, AttributeError):
        log.warning("endpoint %s: stored setting %r cannot be shown", endpoint_id, key, exc_info=True)
        return {"error": f"the stored {key} setting cannot be read; set it again"}
