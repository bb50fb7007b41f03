"""Security headers on every page and API response (ingest answers are the endpoint's own)."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

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
    socket to a loopback server, where no token is needed). Browsers always send Origin on websockets; non-browser
    clients (the relay CLI, tests) may omit it."""
    origin = ws.headers.get("origin")
    if origin is None:
        return True
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    allowed = {ws.headers.get("host", "").lower()}
    public_url: str | None = ws.app.state.settings.public_url
    if public_url:
        allowed.add(urlsplit(public_url).netloc.lower())
    return parts.netloc.lower() in allowed
