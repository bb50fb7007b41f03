"""The login form and logout: the browser session cookie for a server with a token (app/web/auth.py checks it).
The other pages are in app/web/pages.py."""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from app.credentials import token_matches
from app.services import services_of
from app.web.auth import COOKIE, session_value


def _safe_next(target: str) -> str:
    # Only same-site relative paths: "//evil.example" or "https://..." would be an open redirect.
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


async def login_page(request: Request) -> Response:
    return services_of(request).templates.TemplateResponse(
        request, "login.html", {"next": _safe_next(request.query_params.get("next", "/")), "error": None}
    )


async def login_submit(request: Request) -> Response:
    services = services_of(request)
    token = services.settings.token
    body = await request.body()
    form = parse_qs(body[:8192].decode("utf-8", "replace"))
    presented = (form.get("token") or [""])[0]
    target = _safe_next((form.get("next") or ["/"])[0])
    if token is None:
        return RedirectResponse(target, status_code=303)
    if not token_matches(token, presented):
        return services.templates.TemplateResponse(
            request, "login.html", {"next": target, "error": "That token is not right."}, status_code=401
        )
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        session_value(token),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        max_age=30 * 86400,
    )
    return response


async def logout(request: Request) -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


routes = [
    Route("/login", login_page, methods=["GET"]),
    Route("/login", login_submit, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
]
