"""Security headers on every page and API response (ingest answers are the endpoint's own)."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from app.services import services_of
from app.web.site_guard import SCOPE_KEY, SitePolicy

# No inline script, no foreign origins: captured data can at worst become text.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; frame-src 'none'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if "content-security-policy" not in headers:
                    headers["content-security-policy"] = CSP
                headers.setdefault("x-content-type-options", "nosniff")
                headers.setdefault("referrer-policy", "no-referrer")
                headers.setdefault("x-frame-options", "DENY")
            await send(message)

        await self.app(scope, receive, send_with_headers)


def same_origin(ws: WebSocket) -> bool:
    """Whether a websocket handshake may proceed: refuses cross-site websocket hijacking (a foreign page opening a
    socket to a loopback server, where no token is needed), also from a DNS-rebinding page whose Origin equals its
    Host. Browsers always send Origin on websockets; non-browser clients (the relay CLI, tests) may omit it.
    The rule is SitePolicy.from_own_site (app/site_guard.py): Origin against the allowed origins, not the Host."""
    policy = ws.scope.get(SCOPE_KEY)
    if not isinstance(policy, SitePolicy):
        # Only when the app runs without SiteGuard around it (it always has it in create_app).
        policy = SitePolicy.from_settings(services_of(ws).settings)
    return policy.from_own_site(ws.scope)
