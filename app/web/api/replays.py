"""Replay: send captured requests again, to a target URL, each attempt recorded as a delivery.

Routes (docs/forwarding.md):
  POST /api/requests/{rid}/replay    {"target"?, "method"?, "path"?, "query"?, "headers"?, "body"?,
                                     "body_encoding"?, "resign"?} -> 201 Delivery
  POST /api/endpoints/{id}/replay    {"target"?, "ids"?, "method"?, "q"?, "verification"?, "duplicate"?,
                                     "provider"?, "after"?, "before"?, "limit"?, "resign"?}
                                     -> {"deliveries": [Delivery]} (capture order)
A replay without "target" uses the endpoint's remembered `replay_target`; a replay with one remembers it. A bulk
replay's "after" and "before" are positions (seq) in the endpoint, as in the list API; "ids" are request ids.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.delivery.outgoing import TargetError, parse_target
from app.delivery.replay import Edits, RequestGone, parse_edits
from app.delivery.resign import Resigner, parse_resign
from app.models import Endpoint
from app.services import services_of
from app.store.base import RequestQuery
from app.web.errors import ApiError
from app.web.lookup import get_captured, get_endpoint
from app.web.params import read_json

MAX_BULK = 500


async def _target_for(request: Request, ep: Endpoint, data: dict[str, Any]) -> str:
    target = data.get("target") or ep.settings.replay_target
    if not isinstance(target, str) or not target:
        raise ApiError(400, "target_required", "give a target URL (none is remembered for this endpoint yet)")
    try:
        parse_target(target)
    except TargetError as exc:
        raise ApiError(400, "invalid_target", str(exc)) from None
    if ep.settings.replay_target != target:
        await services_of(request).store.update_endpoint(ep.id, settings=ep.settings.with_replay_target(target))
    return target


async def _object(request: Request) -> dict[str, Any]:
    data = await read_json(request)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_replay", "expected a JSON object")
    return data


async def replay_request(request: Request) -> Response:
    req = await get_captured(request)
    services = services_of(request)
    ep = services.store.cached_endpoint(req.endpoint_id)
    if ep is None:
        raise ApiError(404, "endpoint_not_found", "the request's endpoint is gone")
    data = await _object(request)
    try:
        edits = parse_edits(data)
    except ValueError as exc:
        raise ApiError(400, "invalid_replay", str(exc)) from None
    resigner = _resigner_for(ep, data)
    target = await _target_for(request, ep, data)
    try:
        delivery = await services.replayer.replay(req, target, edits, resigner)
    except RequestGone as exc:
        raise ApiError(404, "request_not_found", str(exc)) from None
    return JSONResponse(delivery.to_json(), status_code=201)


def _resigner_for(ep: Endpoint, data: dict[str, Any]) -> Resigner | None:
    """"resign": absent or null uses the endpoint's setting, false sends as captured, an object signs with it."""
    choice = data.get("resign")
    if choice is None:
        return ep.settings.resign
    if choice is False:
        return None
    try:
        return parse_resign(choice, ep.settings.resign)
    except ValueError as exc:
        raise ApiError(400, "invalid_replay", str(exc)) from None


async def replay_many(request: Request) -> Response:
    ep = await get_endpoint(request)
    data = await _object(request)
    target = await _target_for(request, ep, data)
    services = services_of(request)
    store = services.store
    ids = data.get("ids")
    if ids is not None:
        if not isinstance(ids, list) or len(ids) > MAX_BULK or not all(_is_id(i) for i in ids):
            raise ApiError(400, "invalid_replay", f"ids must be a list of at most {MAX_BULK} request ids")
        found = [await store.get_request(i) for i in set(ids)]
        # Capture order is seq order (ids of one endpoint need not follow it on every backend).
        reqs = sorted((r for r in found if r is not None and r.endpoint_id == ep.id), key=lambda r: r.seq)
    else:
        methods = data.get("method") or ""
        text = data.get("q") or None
        limit = data.get("limit", 100)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_BULK:
            raise ApiError(400, "invalid_replay", f"limit must be an integer from 1 to {MAX_BULK}")
        if not isinstance(methods, str) or not (text is None or (isinstance(text, str) and len(text) <= 1000)):
            raise ApiError(400, "invalid_replay", "method must be a comma-separated string; q text (1,000 at most)")
        bounds = {name: data.get(name) for name in ("before", "after")}
        for name, value in bounds.items():
            if value is not None and not _is_id(value):
                raise ApiError(400, "invalid_replay", f"{name} must be a request id (a non-negative integer)")
        verification = data.get("verification") or None
        if verification not in (None, "valid", "invalid", "unconfigured"):
            raise ApiError(400, "invalid_replay", "verification must be valid, invalid or unconfigured")
        duplicate = data.get("duplicate")
        provider = data.get("provider") or None
        if not isinstance(duplicate, bool | None) or not isinstance(provider, str | None):
            raise ApiError(400, "invalid_replay", "duplicate must be true or false; provider a name")
        query = RequestQuery(
            before=bounds["before"], after=bounds["after"], limit=limit,
            methods=tuple(m.strip().upper() for m in methods.split(",") if m.strip()),
            text=text, verification=verification, duplicate=duplicate, provider=provider,
        )
        summaries = sorted(await store.list_requests(ep.id, query), key=lambda r: r.seq)
        reqs = [r for r in [await store.get_request(s.id) for s in summaries] if r is not None]
    resigner = _resigner_for(ep, data)
    deliveries = []
    for r in reqs:
        if r.rejected:
            continue
        try:
            deliveries.append(await services.replayer.replay(r, target, Edits(), resigner))
        except RequestGone:
            continue  # deleted or pruned meanwhile: nothing left to show a delivery for
    return JSONResponse({"deliveries": [d.to_json() for d in deliveries]})


def _is_id(value: Any) -> bool:
    # JSON true is an int to Python; ids beyond SQLite's 64-bit range would overflow the query.
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63


routes = [
    Route("/api/requests/{request_id}/replay", replay_request, methods=["POST"]),
    Route("/api/endpoints/{endpoint_id}/replay", replay_many, methods=["POST"]),
]
