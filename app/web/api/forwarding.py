"""Forward targets' status: `GET /api/endpoints/{id}/forwarding` -> {"instance": ID, "targets": [TargetStatus]},
each with how many captures it still owes ("pending"), how many retention pruned before it got them ("skipped"),
and which instance delivers it ("owner": an instance id, null while no instance holds its lease). "instance" is
the id of the instance that answered; the live fields (current request, attempts, next attempt, last error) are
its own, so they are only filled in on the owner."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.services import services_of
from app.web.lookup import get_endpoint


async def forwarding_status(request: Request) -> Response:
    ep = await get_endpoint(request)
    services = services_of(request)
    store = services.store
    skipped = await store.skipped_counts(ep.id, "forward")
    owners = await store.lease_owners(ep.id, "forward")
    targets = []
    for status in services.forwarder.status(ep.id):
        row = status.to_json()
        row["pending"] = await store.count_requests_after(ep.id, status.acked_id) if status.acked_id is not None \
            else None
        row["skipped"] = skipped.get(status.target, 0)
        row["owner"] = owners.get(status.target)
        targets.append(row)
    return JSONResponse({"instance": services.instance, "targets": targets})


routes = [
    Route("/api/endpoints/{endpoint_id}/forwarding", forwarding_status, methods=["GET"]),
]
