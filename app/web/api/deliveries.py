"""Deliveries: what was sent where for one captured request, one delivery, and a manual retry.

Routes (docs/forwarding.md):
  GET  /api/requests/{rid}/deliveries    {"deliveries": [Delivery], "queued": [{"kind", "target"}]}
  GET  /api/deliveries/{did}             Delivery
  POST /api/deliveries/{did}/retry       Delivery (forward and replay deliveries; a relay's are the client's)
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.delivery.replay import RequestGone
from app.services import services_of
from app.web.errors import ApiError
from app.web.lookup import get_captured, get_delivery


async def list_deliveries(request: Request) -> Response:
    req = await get_captured(request)
    services = services_of(request)
    rows = await services.store.list_deliveries(req.id)
    done = {d.target for d in rows if d.kind == "forward" and d.state != "pending"}
    queued = [{"kind": "forward", "target": t} for t in services.forwarder.queued_for(req) if t not in done]
    return JSONResponse({"deliveries": [d.to_json() for d in rows], "queued": queued})


async def show_delivery(request: Request) -> Response:
    return JSONResponse((await get_delivery(request)).to_json())


async def retry_delivery(request: Request) -> Response:
    d = await get_delivery(request)
    if d.kind == "relay":
        raise ApiError(409, "relay_delivery", "relay deliveries are sent by the relay client: "
                       f"restart it with --from {d.request_id} to send them again")
    if d.state == "pending":
        raise ApiError(409, "pending", "this delivery is still being retried automatically")
    services = services_of(request)
    req = await services.store.get_request(d.request_id)
    if req is None:
        raise ApiError(404, "request_not_found", "the captured request is gone")
    try:
        retried = await services.replayer.retry(d, req)
    except RequestGone as exc:
        raise ApiError(404, "request_not_found", str(exc)) from None
    return JSONResponse(retried.to_json())


routes = [
    Route("/api/requests/{request_id}/deliveries", list_deliveries, methods=["GET"]),
    Route("/api/deliveries/{delivery_id}", show_delivery, methods=["GET"]),
    Route("/api/deliveries/{delivery_id}/retry", retry_delivery, methods=["POST"]),
]
