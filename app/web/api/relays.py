"""Relays (`hookscope forward` clients): the relay websocket, and the status and cursors of an endpoint's relays.

Routes (docs/forwarding.md):
  WS     /api/endpoints/{id}/relay?name=&from=   the relay protocol (app/delivery/relay.py)
  GET    /api/endpoints/{id}/relays              {"relays": [RelayStatus]}
  DELETE /api/endpoints/{id}/relays/{name}       204 (forget a relay's cursor)
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from app.services import services_of
from app.web.errors import ApiError
from app.web.lookup import get_endpoint
from app.web.security_headers import same_origin


async def relay_status(request: Request) -> Response:
    ep = await get_endpoint(request)
    return JSONResponse({"relays": await services_of(request).relays.status(ep.id)})


async def forget_relay(request: Request) -> Response:
    ep = await get_endpoint(request)
    name = request.path_params["name"]
    if not await services_of(request).store.delete_cursor("relay", ep.id, name):
        raise ApiError(404, "relay_not_found", f"no relay named {name!r}")
    return Response(status_code=204)


async def relay_socket(websocket: WebSocket) -> None:
    if not same_origin(websocket):
        await websocket.close(1008, "cross-origin websocket refused")
        return
    await services_of(websocket).relays.serve(websocket)


routes = [
    Route("/api/endpoints/{endpoint_id}/relays", relay_status, methods=["GET"]),
    Route("/api/endpoints/{endpoint_id}/relays/{name}", forget_relay, methods=["DELETE"]),
    WebSocketRoute("/api/endpoints/{endpoint_id}/relay", relay_socket),
]
