"""Endpoints: create, list, show, change and delete (`/api/endpoints`, `/api/endpoints/{endpoint_id}`).

Input is validated by app/web/endpoint_schema.py, which also renders the endpoint's JSON. Changing the verify
setting re-checks the stored verdicts before answering, so the answer and the requests agree.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.endpoint_settings import EndpointSettings
from app.models import ResponseSpec
from app.providers.awareness import reverify
from app.services import services_of
from app.web.endpoint_schema import endpoint_json, parse_endpoint_input
from app.web.errors import ApiError
from app.web.lookup import get_endpoint
from app.web.params import read_json
from app.web.urls import base_url


async def create_endpoint(request: Request) -> Response:
    try:
        fields = parse_endpoint_input(await read_json(request), None)
    except ValueError as exc:
        raise ApiError(400, "invalid_endpoint", str(exc)) from None
    store = services_of(request).store
    ep = await store.create_endpoint(
        fields.name if fields.name is not None else "",
        fields.response or ResponseSpec(),
        fields.settings or EndpointSettings(),
    )
    stats = await store.endpoint_stats(ep.id)
    return JSONResponse(endpoint_json(ep, stats, base_url(request)), status_code=201)


async def list_endpoints(request: Request) -> Response:
    rows = await services_of(request).store.list_endpoints()
    base = base_url(request)
    return JSONResponse({"endpoints": [endpoint_json(ep, stats, base) for ep, stats in rows]})


async def show_endpoint(request: Request) -> Response:
    ep = await get_endpoint(request)
    stats = await services_of(request).store.endpoint_stats(ep.id)
    return JSONResponse(endpoint_json(ep, stats, base_url(request)))


async def patch_endpoint(request: Request) -> Response:
    ep = await get_endpoint(request)
    try:
        fields = parse_endpoint_input(await read_json(request), ep.settings)
    except ValueError as exc:
        raise ApiError(400, "invalid_endpoint", str(exc)) from None
    services = services_of(request)
    store = services.store
    updated = await store.update_endpoint(
        ep.id, name=fields.name, response=fields.response, settings=fields.settings
    )
    if updated is None:
        raise ApiError(404, "endpoint_not_found", f"no endpoint with id {ep.id!r}")
    if updated.settings.verify != ep.settings.verify:
        # Stored verdicts follow the secrets; retention bounds this to seconds of work.
        await reverify(store, updated, services.settings.public_url)
    stats = await store.endpoint_stats(ep.id)
    return JSONResponse(endpoint_json(updated, stats, base_url(request)))


async def delete_endpoint(request: Request) -> Response:
    ep = await get_endpoint(request)
    await services_of(request).store.delete_endpoint(ep.id)
    return Response(status_code=204)


routes = [
    Route("/api/endpoints", create_endpoint, methods=["POST"]),
    Route("/api/endpoints", list_endpoints, methods=["GET"]),
    Route("/api/endpoints/{endpoint_id}", show_endpoint, methods=["GET"]),
    Route("/api/endpoints/{endpoint_id}", patch_endpoint, methods=["PATCH"]),
    Route("/api/endpoints/{endpoint_id}", delete_endpoint, methods=["DELETE"]),
]
