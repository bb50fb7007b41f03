"""Forward targets' status: `GET /api/endpoints/{id}/forwarding` -> {"targets": [TargetStatus]}, each with how
many captures it still owes ("pending") and how many retention pruned before it got them ("skipped")."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.services import services_of
from app.web.lookup import get_endpoint


async def forwarding_status(request: Request) -> Response:
    ep = get_endpoint(request)
    services = services_of(request)
    store = services.store
    skipped = await store.skipped_counts(ep.id, "forward")
    targets = []
    for status in services.forwarder.status(ep.id):
        row = status.to_json()
        row["pending"] = await store.count_requests_after(ep.id, status.acked_id) if status.acked_id is not None \
            else None
        row["skipped"] = skipped.get(status.target, 0)
        targets.append(row)
    return JSONResponse({"targets": targets})


routes = [
    Route("/api/endpoints/{endpoint_id}/forwarding", forwarding_status, methods=["GET"]),
]
