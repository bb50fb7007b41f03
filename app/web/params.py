"""Reading what a client sent to the API: the JSON body and query parameters, validated at the edge.

Every function raises `ApiError` (400, or 413 for an oversized body) with a message for the user; none returns a
value a handler would still have to check for shape.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from starlette.requests import Request

from app.store.base import RequestQuery
from app.unicode_safe import find_surrogate, has_surrogate, scrub_text
from app.web.errors import ApiError

MAX_API_BODY = 2 * 1024 * 1024
MAX_LIMIT = 500
MAX_METHODS = 50
_INTEGER = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


async def read_json(request: Request) -> Any:
    """The body as a JSON value; None for an empty (or blank) body."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_API_BODY:
            raise ApiError(413, "too_large", "request body too large for the API (2 MiB at most)")
    if not body.strip():
        return None
    try:
        # Python's parser also takes NaN and Infinity, which are not JSON and which no setting needs.
        data = json.loads(body, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, "invalid_json", f"body is not valid JSON: {scrub_text(str(exc))}") from None
    # A lone surrogate ("\ud800", or its raw bytes, which json.loads takes) can be stored but never encoded
    # again: refused here, for every JSON endpoint, before any handler sees the value.
    where = find_surrogate(data)
    if where is not None:
        raise ApiError(400, "invalid_json", f"{where}: text holding a lone surrogate (U+D800 to U+DFFF) is not "
                       "valid Unicode")
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def str_param(request: Request, name: str, max_length: int = 1000) -> str | None:
    """One query parameter's text: None when absent; 400 when repeated (which one would win is a guess),
    too long, or not valid Unicode.

    Starlette decodes the query with errors="replace", so `%ED%A0%80` arrives as U+FFFD and raw bytes as
    latin-1: no surrogate gets here today. Checked anyway, because a surrogate reaching SQLite or a response
    is a 500.
    """
    values = request.query_params.getlist(name)
    if not values:
        return None
    if len(values) > 1:
        raise ApiError(400, "invalid_parameter", f"{name} is given more than once")
    raw = values[0]
    if len(raw) > max_length:
        raise ApiError(400, "invalid_parameter", f"{name} is longer than {max_length} characters")
    if has_surrogate(raw):
        raise ApiError(400, "invalid_parameter", f"{name} is not valid Unicode text")
    return raw


def int_param(request: Request, name: str, default: int | None = None, lo: int = 0, hi: int = 2**62) -> int | None:
    """An integer from lo to hi; `default` when absent or empty."""
    raw = str_param(request, name, 40)
    if raw is None or raw == "":
        return default
    # ASCII digits only: int() also takes "1_000", " 7 " and other scripts' digits, none of which is an id.
    if not _INTEGER.fullmatch(raw):
        raise ApiError(400, "invalid_parameter", f"{name} must be an integer")
    value = int(raw)
    if not lo <= value <= hi:
        raise ApiError(400, "invalid_parameter", f"{name} must be between {lo} and {hi}")
    return value


def seconds_param(request: Request, name: str, default: str) -> float:
    """A finite, non-negative number of seconds; `default` (text, parsed alike) when absent or empty."""
    raw = str_param(request, name, 40) or default
    # ASCII only: float() also takes other scripts' digits, "1_0", "inf" and "nan".
    seconds = float(raw) if _NUMBER.fullmatch(raw) else math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise ApiError(400, "invalid_parameter", f"{name} must be a number of seconds")
    return seconds


def request_query(request: Request, **overrides: Any) -> RequestQuery:
    """The list filters and page bounds of a captured-requests query (`overrides` replace fields)."""
    methods = tuple(m.strip().upper() for m in (str_param(request, "method") or "").split(",") if m.strip())
    if len(methods) > MAX_METHODS:
        raise ApiError(400, "invalid_parameter", f"method lists at most {MAX_METHODS} methods")
    text = str_param(request, "q") or None
    verification = str_param(request, "verification") or None
    if verification not in (None, "valid", "invalid", "unconfigured"):
        raise ApiError(400, "invalid_parameter", "verification must be valid, invalid or unconfigured")
    duplicate_param = str_param(request, "duplicate")
    duplicate = None if duplicate_param in (None, "") else duplicate_param.lower() in ("1", "true", "yes")
    args: dict[str, Any] = dict(
        before=int_param(request, "before"),
        after=int_param(request, "after"),
        limit=int_param(request, "limit", 50, 1, MAX_LIMIT),
        methods=methods,
        text=text,
        provider=str_param(request, "provider", 100) or None,
        verification=verification,
        duplicate=duplicate,
    )
    args.update(overrides)
    return RequestQuery(**args)
