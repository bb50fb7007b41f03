"""JSON API for forwarding: deliveries, replay, manual retry, relay and forward-target status, the relay socket.

Routes (all under the API token when one is set):
  GET    /api/requests/{rid}/deliveries        {"deliveries": [Delivery], "queued": [{"kind", "target"}]}
  POST   /api/requests/{rid}/replay            {"target"?, "method"?, "path"?, "query"?, "headers"?, "body"?,
                                               "body_encoding"?} -> 201 Delivery
  POST   /api/endpoints/{id}/replay            {"target"?, "ids"?, "method"?, "q"?, "verification"?, "duplicate"?,
                                               "provider"?, "after"?, "before"?, "limit"?}
                                               -> {"deliveries": [Delivery]} (capture order)
  GET    /api/deliveries/{did}                 Delivery
  POST   /api/deliveries/{did}/retry           Delivery (forward and replay deliveries)
  GET    /api/endpoints/{id}/relays            {"relays": [RelayStatus]}
  DELETE /api/endpoints/{id}/relays/{name}     204 (forget a relay's cursor)
  GET    /api/endpoints/{id}/forwarding        {"targets": [TargetStatus]}
  WS     /api/endpoints/{id}/relay?name=&from= the relay protocol (app/relay.py)
A replay without "target" uses the endpoint's remembered `replay_target`; a replay with one remembers it.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from app.delivery.forwarder import Forwarder
from app.delivery.outgoing import TargetError, parse_target
from app.delivery.relay import RelayHub
from app.delivery.replay import Edits, Replayer, RequestGone, parse_edits
from app.delivery.resign import Resigner, parse_resign
from app.models import Endpoint
from app.store.base import RequestQuery
from app.web.api import get_captured, get_endpoint, read_json, store_of
from app.web.errors import ApiError
from app.web.security_headers import same_origin

MAX_BULK = 500


def _forwarder(request: Request) -> Forwarder:
    f: Forwarder = request.app.state.forwarder
    return f


def _replayer(request: Request) -> Replayer:
    r: Replayer = request.app.state.replayer
    return r


def _relays(request: Request) -> RelayHub:
    r: RelayHub = request.app.state.relays
    return r


async def _target_for(request: Request, ep: Endpoint, data: dict[str, Any]) -> str:
    target = data.get("target") or ep.settings.replay_target
    if not isinstance(target, str) or not target:
        raise ApiError(400, "target_required", "give a target URL (none is remembered for this endpoint yet)")
    try:
        parse_target(target)
    except TargetError as exc:
        raise ApiError(400, "invalid_target", str(exc)) from None
    if ep.settings.replay_target != target:
        await store_of(request).update_endpoint(ep.id, settings=ep.settings.with_replay_target(target))
    return target


async def _object(request: Request) -> dict[str, Any]:
    data = await read_json(request)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_replay", "expected a JSON object")
    return data


async def list_deliveries(request: Request) -> Response:
    req = await get_captured(request)
    rows = await store_of(request).list_deliveries(req.id)
    done = {d.target for d in rows if d.kind == "forward" and d.state != "pending"}
    queued = [{"kind": "forward", "target": t} for t in _forwarder(request).queued_for(req) if t not in done]
    return JSONResponse({"deliveries": [d.to_json() for d in rows], "queued": queued})


async def replay_request(request: Request) -> Response:
    req = await get_captured(request)
    ep = store_of(request).cached_endpoint(req.endpoint_id)
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
        delivery = await _replayer(request).replay(req, target, edits, resigner)
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
    ep = get_endpoint(request)
    data = await _object(request)
    target = await _target_for(request, ep, data)
    store = store_of(request)
    ids = data.get("ids")
    if ids is not None:
        if not isinstance(ids, list) or len(ids) > MAX_BULK or not all(_is_id(i) for i in ids):
            raise ApiError(400, "invalid_replay", f"ids must be a list of at most {MAX_BULK} request ids")
        found = [await store.get_request(i) for i in sorted(set(ids))]
        reqs = [r for r in found if r is not None and r.endpoint_id == ep.id]
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
        summaries = sorted(await store.list_requests(ep.id, query), key=lambda r: r.id)
        reqs = [r for r in [await store.get_request(s.id) for s in summaries] if r is not None]
    replayer = _replayer(request)
    resigner = _resigner_for(ep, data)
    deliveries = []
    for r in reqs:
        if r.rejected:
            continue
        try:
            deliveries.append(await replayer.replay(r, target, Edits(), resigner))
        except RequestGone:
            continue  # deleted or pruned meanwhile: nothing left to show a delivery for
    return JSONResponse({"deliveries": [d.to_json() for d in deliveries]})


def _is_id(value: Any) -> bool:
    # JSON true is an int to Python; ids beyond SQLite's 64-bit range would overflow the query.
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63


async def _delivery(request: Request) -> Any:
    try:
        did = int(request.path_params["delivery_id"])
    except ValueError:
        raise ApiError(404, "delivery_not_found", "delivery ids are integers") from None
    d = await store_of(request).get_delivery(did) if 0 < did < 2**63 else None
    if d is None:
        raise ApiError(404, "delivery_not_found", f"no delivery with id {did}")
    return d


async def show_delivery(request: Request) -> Response:
    return JSONResponse((await _delivery(request)).to_json())


async def retry_delivery(request: Request) -> Response:
    d = await _delivery(request)
    if d.kind == "relay":
        raise ApiError(409, "relay_delivery", "relay deliveries are sent by the relay client: "
                       f"restart it with --from {d.request_id} to send them again")
    if d.state == "pending":
        raise ApiError(409, "pending", "this delivery is still being retried automatically")
    req = await store_of(request).get_request(d.request_id)
    if req is None:
        raise ApiError(404, "request_not_found", "the captured request is gone")
    try:
        retried = await _replayer(request).retry(d, req)
    except RequestGone as exc:
        raise ApiError(404, "request_not_found", str(exc)) from None
    return JSONResponse(retried.to_json())


async def relay_status(request: Request) -> Response:
    ep = get_endpoint(request)
    return JSONResponse({"relays": await _relays(request).status(ep.id)})


async def forget_relay(request: Request) -> Response:
    ep = get_endpoint(request)
    name = request.path_params["name"]
    if not await store_of(request).delete_cursor("relay", ep.id, name):
        raise ApiError(404, "relay_not_found", f"no relay named {name!r}")
    return Response(status_code=204)


async def forwarding_status(request: Request) -> Response:
    ep = get_endpoint(request)
    store = store_of(request)
    skipped = await store.skipped_counts(ep.id, "forward")
    targets = []
    for status in _forwarder(request).status(ep.id):
        row = status.to_json()
        row["pending"] = await store.count_requests_after(ep.id, status.acked_id) if status.acked_id is not None \
            else None
        row["skipped"] = skipped.get(status.target, 0)
        targets.append(row)
    return JSONResponse({"targets": targets})


async def relay_socket(websocket: WebSocket) -> None:
    if not same_origin(websocket):
        await websocket.close(1008, "cross-origin websocket refused")
        return
    hub: RelayHub = websocket.app.state.relays
    await hub.serve(websocket)


routes = [
    Route("/api/requests/{request_id}/deliveries", list_deliveries, methods=["GET"]),
    Route("/api/requests/{request_id}/replay", replay_request, methods=["POST"]),
    Route("/api/endpoints/{endpoint_id}/replay", replay_many, methods=["POST"]),
    Route("/api/deliveries/{delivery_id}", show_delivery, methods=["GET"]),
    Route("/api/deliveries/{delivery_id}/retry", retry_delivery, methods=["POST"]),
    Route("/api/endpoints/{endpoint_id}/relays", relay_status, methods=["GET"]),
    Route("/api/endpoints/{endpoint_id}/relays/{name}", forget_relay, methods=["DELETE"]),
    Route("/api/endpoints/{endpoint_id}/forwarding", forwarding_status, methods=["GET"]),
    WebSocketRoute("/api/endpoints/{endpoint_id}/relay", relay_socket),
]
