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


async def get_endpoint(request: Request) -> Endpoint:
    endpoint_id = request.path_params["endpoint_id"]
    # find_endpoint, not the cache alone: on PostgreSQL the endpoint may have just been created on another instance.
    ep = await services_of(request).store.find_endpoint(endpoint_id)
    if ep is None:
        raise ApiError(404, "endpoint_not_found", f"no endpoint with id {endpoint_id!r}")
    return ep


def _path_id(request: Request, param: str, code: str, what: str) -> int:
    try:
        return int(request.path_params[param])
    except ValueError:
        raise ApiError(404, code, f"{what} ids are integers") from None


def _in_range(value: int) -> bool:
    # Ids are positive 63-bit integers: anything else cannot exist (and would overflow the query).
    return 0 < value < 2**63


async def get_captured(request: Request) -> CapturedRequest:
    rid = _path_id(request, "request_id", "request_not_found", "request")
    req = await services_of(request).store.get_request(rid) if _in_range(rid) else None
    if req is None:
        raise ApiError(404, "request_not_found", f"no request with id {rid}")
    return req


async def get_delivery(request: Request) -> Delivery:
    did = _path_id(request, "delivery_id", "delivery_not_found", "delivery")
    d = await services_of(request).store.get_delivery(did) if _in_range(did) else None
    if d is None:
        raise ApiError(404, "delivery_not_found", f"no delivery with id {did}")
    return d
