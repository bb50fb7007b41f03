"""Defensive parsing of request bodies.

Detection runs on every capture, including deliberately hostile ones, so these
helpers never raise: anything unparseable is simply "no data".
"""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

from app.unicode_safe import scrub_text

# Real webhook payloads are far smaller; the cap keeps a multi-megabyte upload
# from costing a full JSON parse on the capture path.
MAX_PARSE_BYTES = 2 * 1024 * 1024
# Long enough for any real event type or id, short enough that a hostile
# sender cannot make us store megabytes in an indexed column.
MAX_FIELD_CHARS = 256


# First bytes of a BOM (UTF-8, 16, 32) or of UTF-16/32 text: json.loads sniffs those for their encoding.
_NOT_PLAIN_UTF8_START = frozenset({0x00, 0xEF, 0xFE, 0xFF})


def parse_json(body: bytes) -> object:
    """Parsed JSON body, or None when it is too big, not JSON or too deep."""
    if not body or len(body) > MAX_PARSE_BYTES:
        return None
    try:
        if body[0] not in _NOT_PLAIN_UTF8_START and (len(body) < 2 or body[1]):
            # Bytes that json.loads would decode as UTF-8 (what providers send): decoding them here skips its
            # encoding sniffing. A BOM, UTF-16 or 32, or bytes strict UTF-8 refuses go through json.loads as they
            # are, as before.
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                return json.loads(body)
            return json.loads(text)
        return json.loads(body)
    except (ValueError, RecursionError, UnicodeDecodeError, TypeError):
        return None


def parse_json_object(body: bytes) -> dict[str, object] | None:
    value = parse_json(body)
    return value if isinstance(value, dict) else None


def parse_json_text(text: str) -> dict[str, object] | None:
    if len(text) > MAX_PARSE_BYTES:
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError, TypeError):
        return None
    return value if isinstance(value, dict) else None


def parse_form(body: bytes) -> list[tuple[str, str]]:
    """``application/x-www-form-urlencoded`` pairs, blanks kept (Twilio signs them)."""
    if not body or len(body) > MAX_PARSE_BYTES:
        return []
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return []
    try:
        return parse_qsl(
            text, keep_blank_values=True, encoding="utf-8", errors="replace"
        )
    except ValueError:
        return []


def form_value(pairs: list[tuple[str, str]], name: str) -> str | None:
    for key, value in pairs:
        if key == name:
            return value
    return None


def dig(obj: object, *path: str) -> object:
    """Walk nested dicts; None as soon as a step is missing or not a dict."""
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def text(value: object) -> str | None:
    """A JSON scalar as a bounded string; ids are sometimes numbers."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        # JSON may escape a lone surrogate, which no store or response can hold: U+FFFD in its place.
        return scrub_text(value[:MAX_FIELD_CHARS]) if value else None
    if isinstance(value, int):
        return str(value)[:MAX_FIELD_CHARS]
    return None


def bounded(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value[:MAX_FIELD_CHARS] if value else None
