"""Captured requests: an endpoint's list (filters, keyset pages) and clearing it, one request with its body,
the raw body, deleting one, and `wait`, which blocks until a matching request is committed.

Routes: `/api/endpoints/{endpoint_id}/requests`, `/api/endpoints/{endpoint_id}/wait`, `/api/requests/{request_id}`
and `/api/requests/{request_id}/raw`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from app.events.bus import SubscriptionEvicted
from app.events.types import RequestAdded
from app.services import services_of
from app.store.errors import BodyMissing
from app.web.errors import ApiError
from app.web.lookup import get_captured, get_endpoint
from app.web.params import int_param, request_query, seconds_param

MAX_WAIT = 300.0
# Content types a browser would run or render as a document: the raw body of one is always a download.
ACTIVE_TYPES = ("html", "svg", "xml", "javascript", "ecmascript", "xsl")


async def list_requests(request: Request) -> Response:
    ep = await get_endpoint(request)
    query = request_query(request)
    rows = await services_of(request).store.list_requests(ep.id, query)
    data: dict[str, Any] = {"requests": [r.summary_json() for r in rows]}
    full = len(rows) == query.limit
    # Page bounds are positions (seq) in the endpoint, under the names they had when they were ids.
    if query.ascending:
        data["last_id"] = rows[-1].seq if rows else query.after
        data["has_more"] = full
    else:
        data["next_before"] = rows[-1].seq if rows and full else None
        data["has_more"] = full
    return JSONResponse(data)


async def clear_requests(request: Request) -> Response:
    ep = await get_endpoint(request)
    removed = await services_of(request).store.clear_requests(ep.id)
    return JSONResponse({"deleted": removed})


async def show_request(request: Request) -> Response:
    req = await get_captured(request)
    max_body = int_param(request, "max_body", None, 0)
    store = services_of(request).store
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
    store = services_of(request).store
    if req.rejected:
        return Response(b"", headers=headers, media_type=ctype)
    try:
        chunks = await store.iter_body(req)  # opens the body now: a lost body is an error, not a cut-off 200
    except BodyMissing as exc:
        raise _body_missing(exc) from None
    return StreamingResponse(chunks, headers=headers, media_type=ctype)


async def delete_request(request: Request) -> Response:
    req = await get_captured(request)
    await services_of(request).store.delete_request(req.id)
    return Response(status_code=204)


async def wait_for_request(request: Request) -> Response:
    """Block until a request matching the filters with seq > after is committed; 204 on timeout."""
    ep = await get_endpoint(request)
    seconds = min(seconds_param(request, "timeout", "30"), MAX_WAIT)
    services = services_of(request)
    store, bus = services.store, services.bus
    after = int_param(request, "after")
    deadline = time.monotonic() + seconds
    # Subscribed before the first read: a capture committed after it wakes this loop, whichever comes first.
    sub = bus.subscribe(ep.id, kinds=(RequestAdded,), maxsize=64)
    try:
        if after is None:
            after = await store.last_seq(ep.id)
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


routes = [
    Route("/api/endpoints/{endpoint_id}/requests", list_requests, methods=["GET"]),
    Route("/api/endpoints/{endpoint_id}/requests", clear_requests, methods=["DELETE"]),
    Route("/api/endpoints/{endpoint_id}/wait", wait_for_request, methods=["GET"]),
    Route("/api/requests/{request_id}", show_request, methods=["GET"]),
    Route("/api/requests/{request_id}", delete_request, methods=["DELETE"]),
    Route("/api/requests/{request_id}/raw", raw_body, methods=["GET"]),
]
