"""create_app(settings): the ASGI application, its services and their lifetimes.

Services (event bus, store, background tasks) are created in the lifespan and kept on `app.state`; nothing lives in
module globals, so one process (or one test) can run several servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import Receive, Scope, Send

from app.delivery.feed import CaptureFeed
from app.delivery.forwarder import Forwarder, Sender
from app.delivery.relay import RelayHub
from app.delivery.replay import Replayer
from app.delivery.retry import RetryPolicy
from app.delivery.ssrf import ForwardPolicy
from app.events.bus import EventBus
from app.ingest.capture import CaptureApp
from app.ingest.clientaddr import parse_networks
from app.ingest.passthrough import Passthrough
from app.ingest.smee import SmeeStream
from app.resources import resource_dir
from app.settings import Settings
from app.store import SQLiteStore, Store
from app.store.base import default_retention_ceiling
from app.web import api, forwarding_api, live, login, pages
from app.web.auth import AuthMiddleware
from app.web.errors import ApiError, handle_api_error, handle_http_exception, handle_unexpected
from app.web.security_headers import SecurityHeaders
from app.web.site_guard import SiteGuard, SitePolicy

log = logging.getLogger("hookscope")


class HookscopeApp:
    """Dispatches /h/ (ingest) before Starlette's router; everything else goes through auth and routing."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.web = Starlette(
            routes=[
                *api.routes,
                *forwarding_api.routes,
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
        self.state = self.web.state
        self.state.settings = settings
        self.state.templates = Jinja2Templates(directory=str(resource_dir("templates")))
        # The one path from a committed change to whatever reacts to it (docs/events.md): the store emits into it.
        self.bus = EventBus()
        self.store: Store = SQLiteStore(
            settings.db,
            events=self.bus,
            durability=settings.durability,
            queue_size=settings.queue_size,
            retention_count=settings.retention_count,
            retention_age=settings.retention_age,
        )
        self.state.store = self.store
        self.state.bus = self.bus
        self.capture = CaptureApp(settings, self.store, parse_networks(settings.trusted_proxies))
        self.state.capture = self.capture
        # Host and cross-site rules first: a rebinding or foreign page learns nothing, not even whether auth is on.
        self.guarded = SiteGuard(
            AuthMiddleware(SecurityHeaders(self.web), settings.token), SitePolicy.from_settings(settings)
        )
        self._setup_forwarding(settings)

    def _setup_forwarding(self, settings: Settings) -> None:
        """Forwarding services (docs/forwarding.md). Passthrough and the forwarder are bus listeners: a waiter
        must exist, and a new target's worker start, before any deliverer can see the capture."""
        self.feed = CaptureFeed(self.store, self.bus)
        self.sender = Sender(ForwardPolicy.from_allow(settings.forward_allow), settings.forward_timeout)
        self.passthrough = Passthrough(self.store.cached_endpoint, self._has_deliverer)
        self.forwarder = Forwarder(
            self.store, self.feed, self.sender, RetryPolicy.parse(settings.forward_retry), self.passthrough
        )
        self.relays = RelayHub(
            self.store, self.bus, self.feed, self.forwarder, self.passthrough, settings.relay_ping_interval
        )
        self.replayer = Replayer(self.store, self.sender)
        self.state.feed = self.feed
        self.state.forwarder = self.forwarder
        self.state.relays = self.relays
        self.state.replayer = self.replayer
        self.bus.listen(self.passthrough.on_event)
        self.bus.listen(self.forwarder.on_event)
        self.capture.stream_handler = SmeeStream(self.store, self.feed, settings.token)
        self.capture.response_hook = self.passthrough.hook

    def _has_deliverer(self, endpoint_id: str) -> bool:
        return self.forwarder.has_targets(endpoint_id) or self.relays.connected(endpoint_id)

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            await self.store.open()
            stack.push_async_callback(self.store.close)
            janitor = asyncio.create_task(self._janitor(), name="hookscope-janitor")
            stack.push_async_callback(_cancel, janitor)
            endpoints = [ep for ep, _ in await self.store.list_endpoints()]
            await self.forwarder.start(endpoints)
            stack.push_async_callback(self.forwarder.stop)  # before the store closes: it flushes its writes
            stack.push_async_callback(self.relays.close_all)
            yield

    async def _janitor(self) -> None:
        """Retention: prune old requests on a schedule (and once at start). Captures a relay or forward target
        still owes are kept up to the ceiling. The store's RequestsRemoved events tell open pages and connected
        relays what went; this only logs."""
        ceiling = self.settings.retention_ceiling
        if ceiling is None:
            ceiling = default_retention_ceiling(self.settings.retention_count)
        while True:
            try:
                result = await self.store.prune(time.time(), ceiling)
                if result.removed:
                    log.info("retention removed %d requests", result.removed)
                for s in result.skipped:
                    log.warning("retention ceiling (%d per endpoint) reached: %d capture(s) of endpoint %s pruned "
                                "before %s %s received them (%d in all)", ceiling, s.count, s.endpoint_id, s.kind,
                                s.name, s.total)
            except Exception:
                log.exception("retention pass failed")
            await asyncio.sleep(self.settings.janitor_interval)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/h/"):
            await self.capture(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self.web(scope, receive, send)
        else:
            await self.guarded(scope, receive, send)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def create_app(settings: Settings) -> HookscopeApp:
    return HookscopeApp(settings)
