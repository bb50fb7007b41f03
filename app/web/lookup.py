"""The resource a path names (`{endpoint_id}`, `{request_id}`, `{delivery_id}`), or a 404 JSON error.

Ids that cannot exist (not integers, out of SQLite's 64-bit range) are 404s too, without a database read: to the
client they name nothing, like any unknown id.
"""

from __future__ import annotations

from starlette.requests import Request

from app.delivery.records import Delivery
from app.models import CapturedRequest, Endpoint
from app.services import services_of
from app.web.errors import ApiError


def get_endpoint(request: Request) -> Endpoint:
    endpoint_id = request.path_params["endpoint_id"]
    ep = services_of(request).store.cached_endpoint(endpoint_id)
    if ep is None:
        raise ApiError(404, "endpoint_not_found", f"no endpoint with id {endpoint_id!r}")
    return ep


async def get_captured(request: Request) -> CapturedRequest:
    try:
        rid = int(request.path_params["request_id"])
    except ValueError:
        raise ApiError(404, "request_not_found", "request ids are integers") from None
    req = await services_of(request).store.get_request(rid) if 0 < rid < 2**63 else None
    if req is None:
        raise ApiError(404, "request_not_found", f"no request with id {rid}")
    return req


async def get_delivery(request: Request) -> Delivery:
    try:
        did = int(request.path_params["delivery_id"])
    except ValueError:
        raise ApiError(404, "delivery_not_found", "delivery ids are integers") from None
    d = await services_of(request).store.get_delivery(did) if 0 < did < 2**63 else None
    if d is None:
        raise ApiError(404, "delivery_not_found", f"no delivery with id {did}")
    return d
