"""The JSON API: endpoints, captured requests, raw bodies, and the wait primitive for automated tests."""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from app.endpoint_settings import EndpointSettings
from app.events.bus import EventBus, SubscriptionEvicted
from app.events.types import RequestAdded
from app.models import CapturedRequest, Endpoint, ResponseSpec
from app.providers import explain
from app.providers.awareness import reverify, signed_request
from app.store.base import RequestQuery, Store
from app.store.errors import BodyMissing
from app.unicode_safe import find_surrogate, has_surrogate, scrub_text
from app.web.endpoint_schema import endpoint_json, parse_endpoint_input
from app.web.errors import ApiError
from app.web.openapi import openapi_json

MAX_API_BODY = 2 * 1024 * 1024
MAX_LIMIT = 500
MAX_WAIT = 300.0
ACTIVE_TYPES = ("html", "svg", "xml", "javascript", "ecmascript", "xsl")
MAX_METHODS = 50
_INTEGER = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


def base_url(request: Request) -> str:
    configured: str | None = request.app.state.settings.public_url
    if configured:
        return configured.rstrip("/")
    return str(request.base_url).rstrip("/")


def store_of(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def read_json(request: Request) -> Any:
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


def request_query(request: Request, **overrides: Any) -> RequestQuery:
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


def get_endpoint(request: Request) -> Endpoint:
    endpoint_id = request.path_params["endpoint_id"]
    ep = store_of(request).cached_endpoint(endpoint_id)
    if ep is None:
        raise ApiError(404, "endpoint_not_found", f"no endpoint with id {endpoint_id!r}")
    return ep


async def get_captured(request: Request) -> CapturedRequest:
    try:
        rid = int(request.path_params["request_id"])
    except ValueError:
        raise ApiError(404, "request_not_found", "request ids are integers") from None
    req = await store_of(request).get_request(rid) if 0 < rid < 2**63 else None
    if req is None:
        raise ApiError(404, "request_not_found", f"no request with id {rid}")
    return req


# endpoints -------------------------------------------------------------------------------------------------
async def create_endpoint(request: Request) -> Response:
    try:
        fields = parse_endpoint_input(await read_json(request), None)
    except ValueError as exc:
        raise ApiError(400, "invalid_endpoint", str(exc)) from None
    store = store_of(request)
    ep = await store.create_endpoint(
        fields.name if fields.name is not None else "",
        fields.response or ResponseSpec(),
        fields.settings or EndpointSettings(),
    )
    stats = await store.endpoint_stats(ep.id)
    return JSONResponse(endpoint_json(ep, stats, base_url(request)), status_code=201)


async def list_endpoints(request: Request) -> Response:
    rows = await store_of(request).list_endpoints()
    base = base_url(request)
    return JSONResponse({"endpoints": [endpoint_json(ep, stats, base) for ep, stats in rows]})


async def show_endpoint(request: Request) -> Response:
    ep = get_endpoint(request)
    stats = await store_of(request).endpoint_stats(ep.id)
    return JSONResponse(endpoint_json(ep, stats, base_url(request)))


async def patch_endpoint(request: Request) -> Response:
    ep = get_endpoint(request)
    try:
        fields = parse_endpoint_input(await read_json(request), ep.settings)
    except ValueError as exc:
        raise ApiError(400, "invalid_endpoint", str(exc)) from None
    store = store_of(request)
    updated = await store.update_endpoint(
        ep.id, name=fields.name, response=fields.response, settings=fields.settings
    )
    if updated is None:
        raise ApiError(404, "endpoint_not_found", f"no endpoint with id {ep.id!r}")
    if updated.settings.verify != ep.settings.verify:
        # Stored verdicts follow the secrets; retention bounds this to seconds of work.
        await reverify(store, updated, request.app.state.settings.public_url)
    stats = await store.endpoint_stats(ep.id)
    return JSONResponse(endpoint_json(updated, stats, base_url(request)))


async def delete_endpoint(request: Request) -> Response:
    ep = get_endpoint(request)
    await store_of(request).delete_endpoint(ep.id)
    return Response(status_code=204)


# requests --------------------------------------------------------------------------------------------------
async def list_requests(request: Request) -> Response:
    ep = get_endpoint(request)
    query = request_query(request)
    rows = await store_of(request).list_requests(ep.id, query)
    data: dict[str, Any] = {"requests": [r.summary_json() for r in rows]}
    full = len(rows) == query.limit
    if query.ascending:
        data["last_id"] = rows[-1].id if rows else query.after
        data["has_more"] = full
    else:
        data["next_before"] = rows[-1].id if rows and full else None
        data["has_more"] = full
    return JSONResponse(data)


async def clear_requests(request: Request) -> Response:
    ep = get_endpoint(request)
    removed = await store_of(request).clear_requests(ep.id)
    return JSONResponse({"deleted": removed})


async def show_request(request: Request) -> Response:
    req = await get_captured(request)
    max_body = int_param(request, "max_body", None, 0)
    store = store_of(request)
    try:
        if max_body is not None and req.body is None and req.body_size > max_body:
            body = b""
            async for chunk in await store.iter_body(req):
                body += chunk
                if len(body) > max_body:
                    break
        else:
            body = await store.load_body(req)
    except BodyMissing as exc:
        raise _body_missing(exc) from None
    return JSONResponse(req.to_json(body, max_body))


def _body_missing(exc: BodyMissing) -> ApiError:
    # 500, not 410: the request exists and its body was committed; losing it since is a server fault.
    return ApiError(500, "body_missing", str(exc))


async def raw_body(request: Request) -> Response:
    req = await get_captured(request)
    ctype = req.content_type or "application/octet-stream"
    headers = {
        "x-content-type-options": "nosniff",
        # Captured bytes are the attacker's: even if a browser renders them, they run nowhere near our origin.
        "content-security-policy": "default-src 'none'; sandbox",
        "content-length": str(req.body_size if not req.rejected else 0),
        "cache-control": "private, no-store",
    }
    lowered = ctype.lower()
    if request.query_params.get("download") or any(t in lowered for t in ACTIVE_TYPES):
        headers["content-disposition"] = f'attachment; filename="request-{req.id}.bin"'
    store = store_of(request)
    if req.rejected:
        return Response(b"", headers=headers, media_type=ctype)
    try:
        chunks = await store.iter_body(req)  # opens the body now: a lost body is an error, not a cut-off 200
    except BodyMissing as exc:
        raise _body_missing(exc) from None
    return StreamingResponse(chunks, headers=headers, media_type=ctype)


async def signature_help(request: Request) -> Response:
    """For the UI's signature helper: received vs expected signature and the exact signed string."""
    req = await get_captured(request)
    ep = store_of(request).cached_endpoint(req.endpoint_id)
    config = ep.settings.verify if ep else None
    if config is None:
        raise ApiError(409, "verify_not_configured", "set the endpoint's verify scheme and secret first")
    body = await store_of(request).load_body(req)
    sreq = signed_request(req, body, request.app.state.settings.public_url)
    return JSONResponse(explain(sreq, config, now=req.received_at).to_json())


async def delete_request(request: Request) -> Response:
    req = await get_captured(request)
    await store_of(request).delete_request(req.id)
    return Response(status_code=204)


async def wait_for_request(request: Request) -> Response:
    """Block until a request matching the filters with id > after is committed; 204 on timeout."""
    ep = get_endpoint(request)
    timeout = str_param(request, "timeout", 40) or "30"
    # ASCII only: float() also takes other scripts' digits, "1_0", "inf" and "nan".
    seconds = float(timeout) if _NUMBER.fullmatch(timeout) else math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise ApiError(400, "invalid_parameter", "timeout must be a number of seconds") from None
    seconds = min(seconds, MAX_WAIT)
    store = store_of(request)
    bus: EventBus = request.app.state.bus
    after = int_param(request, "after")
    deadline = time.monotonic() + seconds
    # Subscribed before the first read: a capture committed after it wakes this loop, whichever comes first.
    sub = bus.subscribe(ep.id, kinds=(RequestAdded,), maxsize=64)
    try:
        if after is None:
            newest = await store.list_requests(ep.id, RequestQuery(limit=1))
            after = newest[0].id if newest else 0
        query = request_query(request, after=after, before=None, limit=1)
        while True:
            rows = await store.list_requests(ep.id, query)
            if rows:
                req = await store.get_request(rows[0].id)
                if req is not None:
                    return JSONResponse(req.to_json(await store.load_body(req)))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return Response(status_code=204, headers={"x-hookscope-wait": "timeout"})
            try:
                await asyncio.wait_for(sub.get(), remaining)
            except TimeoutError:
                continue
            except SubscriptionEvicted:  # the loop rereads the database anyway
                sub = bus.subscribe(ep.id, kinds=(RequestAdded,), maxsize=64)
    finally:
        sub.close()


async def healthz(request: Request) -> Response:
    """200 {"ok": true} while storage takes writes; 503 {"ok": false, "reason"} while it does not."""
    reason = await store_of(request).health()
    if reason is not None:
        return JSONResponse({"ok": False, "reason": reason}, status_code=503)
    return JSONResponse({"ok": True})


routes = [
    Route("/healthz", healthz),
    Route("/api/openapi.json", openapi_json, methods=["GET"]),
    Route("/api/endpoints", create_endpoint, methods=["POST"]),
    Route("/api/endpoints", list_endpoints, methods=["GET"]),
    Route("/api/endpoints/{endpoint_id}", show_endpoint, methods=["GET"]),
    Route("/api/endpoints/{endpoint_id}", patch_endpoint, methods=["PATCH"]),
    Route("/api/endpoints/{endpoint_id}", delete_endpoint, methods=["DELETE"]),
    Route("/api/endpoints/{endpoint_id}/requests", list_requests, methods=["GET"]),
    Route("/api/endpoints/{endpoint_id}/requests", clear_requests, methods=["DELETE"]),
    Route("/api/endpoints/{endpoint_id}/wait", wait_for_request, methods=["GET"]),
    Route("/api/requests/{request_id}", show_request, methods=["GET"]),
    Route("/api/requests/{request_id}", delete_request, methods=["DELETE"]),
    Route("/api/requests/{request_id}/raw", raw_body, methods=["GET"]),
    Route("/api/requests/{request_id}/signature", signature_help, methods=["GET"]),
]
