"""create_app(settings): the ASGI application of one server.

Ingest (`/h/...`) is dispatched before Starlette's router (any method token, no auth, no Host rules); everything
else goes through the site guard, auth and security headers to the routes. The services come from
app/services.py, built once here and run by the lifespan; nothing lives in module globals, so one process (or one
test) can run several servers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from app.ingest.capture import CaptureApp
from app.ingest.clientaddr import parse_networks
from app.resources import resource_dir
from app.services import Services, build_services, run
from app.settings import Settings
from app.web import api, live, login, pages
from app.web.auth import AuthMiddleware
from app.web.errors import ApiError, handle_api_error, handle_http_exception, handle_unexpected
from app.web.security_headers import SecurityHeaders
from app.web.site_guard import SiteGuard, SitePolicy


class HookscopeApp:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.services: Services = build_services(settings)
        self.web = Starlette(
            routes=[
                *api.routes,
                *login.routes,
                *pages.routes,
                *live.routes,
                Mount("/static", StaticFiles(directory=resource_dir("static")), name="static"),
            ],
            lifespan=self._lifespan,
            exception_handlers={
                ApiError: handle_api_error,
                HTTPException: handle_http_exception,
                Exception: handle_unexpected,
            },
        )
        self.web.state.services = self.services
        self.capture = CaptureApp(
            settings,
            self.services.store,
            parse_networks(settings.trusted_proxies),
            stream_handler=self.services.smee,
            response_hook=self.services.passthrough.hook,
        )
        # Host and cross-site rules first: a rebinding or foreign page learns nothing, not even whether auth is on.
        self.guarded = SiteGuard(
            AuthMiddleware(SecurityHeaders(self.web), settings.token), SitePolicy.from_settings(settings)
        )

    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        async with run(self.services):
            yield

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/h/"):
            await self.capture(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self.web(scope, receive, send)
        else:
            await self.guarded(scope, receive, send)


def create_app(settings: Settings) -> HookscopeApp:
    return HookscopeApp(settings)
