"""The signature helper of one captured request (`GET /api/requests/{request_id}/signature`): the received and
the expected signature and the exact string that was signed, under the endpoint's verify setting."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.providers import explain
from app.providers.awareness import signed_request
from app.services import services_of
from app.web.errors import ApiError
from app.web.lookup import get_captured


async def signature_help(request: Request) -> Response:
    """For the UI's signature helper: received vs expected signature and the exact signed string."""
    req = await get_captured(request)
    services = services_of(request)
    ep = services.store.cached_endpoint(req.endpoint_id)
    config = ep.settings.verify if ep else None
    if config is None:
        raise ApiError(409, "verify_not_configured", "set the endpoint's verify scheme and secret first")
    body = await services.store.load_body(req)
    sreq = signed_request(req, body, services.settings.public_url)
    return JSONResponse(explain(sreq, config, now=req.received_at).to_json())


routes = [
    Route("/api/requests/{request_id}/signature", signature_help, methods=["GET"]),
]
