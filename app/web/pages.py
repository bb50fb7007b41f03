"""HTML pages: home (endpoint list) and the inspector of one endpoint.

Pages carry no captured data and no inline script: the inspector's module (static/js/inspector.js) reads the
endpoint id from a data attribute and fetches everything through the JSON API and the live websocket, rendering it
as text. The endpoint name and ingest URL that the templates do show pass through Jinja's autoescaping.
"""

from __future__ import annotations

from functools import lru_cache

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.resources import resource_dir
from app.services import services_of
from app.web.urls import base_url, ingest_url

# Entry modules of other pages: not part of the inspector's module graph.
_NOT_INSPECTOR = {"home.js", "theme.js"}


@lru_cache(maxsize=1)
def inspector_modules() -> tuple[str, ...]:
    """Every module under static/js, for <link rel=modulepreload>: the browser fetches the whole import graph in
    parallel instead of discovering it one import level at a time (measured: first rows 30-40% sooner)."""
    root = resource_dir("static") / "js"
    return tuple(
        "/static/js/" + path.relative_to(root).as_posix()
        for path in sorted(root.rglob("*.js"))
        if path.relative_to(root).as_posix() not in _NOT_INSPECTOR
    )


async def home(request: Request) -> Response:
    return services_of(request).templates.TemplateResponse(request, "home.html", {})


async def inspector(request: Request) -> Response:
    endpoint_id: str = request.path_params["endpoint_id"]
    services = services_of(request)
    ep = await services.store.find_endpoint(endpoint_id)
    if ep is None:
        return services.templates.TemplateResponse(
            request, "not_found.html", {"what": "endpoint"}, status_code=404
        )
    return services.templates.TemplateResponse(
        request,
        "inspector.html",
        {"endpoint": ep, "ingest_url": ingest_url(base_url(request), ep.id), "preload": inspector_modules()},
    )


routes = [
    Route("/", home, methods=["GET"]),
    Route("/e/{endpoint_id}", inspector, methods=["GET"]),
]
