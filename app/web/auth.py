"""Access control for everything but ingest.

Open when no token is set (the CLI only allows that on a loopback bind). With a token: the API and CLI send
`Authorization: Bearer <token>`; browsers log in once through a form and then carry an HttpOnly, SameSite=Strict
cookie holding an HMAC of the token (never the token itself).
"""

from __future__ import annotations

import hashlib
import hmac
from http.cookies import SimpleCookie
from urllib.parse import quote

from starlette.types import ASGIApp, Receive, Scope, Send

from app.credentials import bearer_matches
from app.json_errors import error_body

COOKIE = "hookscope_session"
PUBLIC_PREFIXES = ("/static/", "/login", "/healthz")


def session_value(token: str) -> str:
    return hmac.new(token.encode(), b"hookscope browser session v1", hashlib.sha256).hexdigest()


class AuthMiddleware:
    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token
        self.session = session_value(token) if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.token is None or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith(PUBLIC_PREFIXES) or self.authorised(scope):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            # Reject before accepting: the browser sees a failed handshake (HTTP 403).
            await send({"type": "websocket.close", "code": 1008})
            return
        if path.startswith("/api/") or _accepts_json(scope):
            body = error_body("unauthorized", "this server requires a token: Authorization: Bearer <token>")
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"www-authenticate", b'Bearer realm="hookscope"'),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        target = path + ("?" + scope["query_string"].decode("latin-1") if scope.get("query_string") else "")
        location = "/login?next=" + quote(target, safe="")
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [(b"location", location.encode("latin-1")), (b"content-length", b"0")],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    def authorised(self, scope: Scope) -> bool:
        assert self.token is not None and self.session is not None
        if bearer_matches(scope["headers"], self.token):
            return True
        for name, value in scope["headers"]:
            if name == b"cookie":
                cookie: SimpleCookie = SimpleCookie()
                try:
                    cookie.load(value.decode("latin-1"))
                except Exception:
                    continue
                morsel = cookie.get(COOKIE)
                if morsel is not None and hmac.compare_digest(morsel.value.encode(), self.session.encode()):
                    return True
        return False


def _accepts_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"accept":
            return b"application/json" in value and b"text/html" not in value
    return False
