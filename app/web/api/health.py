"""`GET /healthz` for load balancers and orchestrators: whether storage takes writes. Open without the API token
(app/web/auth.py), so a probe needs no secret."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.services import services_of


async def healthz(request: Request) -> Response:
    """200 {"ok": true} while storage takes writes; 503 {"ok": false, "reason"} while it does not."""
    reason = await services_of(request).store.health()
    if reason is not None:
        return JSONResponse({"ok": False, "reason": reason}, status_code=503)
    return JSONResponse({"ok": True})


routes = [
    Route("/healthz", healthz),
]
