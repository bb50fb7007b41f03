"""Server-rendered pages: login (the inspector pages live beside it)."""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from app.web.auth import COOKIE, session_value, token_matches


def templates(request: Request) -> Jinja2Templates:
    t: Jinja2Templates = request.app.state.templates
    return t


def _safe_next(target: str) -> str:
    # Only same-site relative paths: "//evil.example" or "https://..." would be an open redirect.
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


async def login_page(request: Request) -> Response:
    return templates(request).TemplateResponse(
        request, "login.html", {"next": _safe_next(request.query_params.get("next", "/")), "error": None}
    )


async def login_submit(request: Request) -> Response:
    token: str | None = request.app.state.settings.token
    body = await request.body()
    form = parse_qs(body[:8192].decode("utf-8", "replace"))
    presented = (form.get("token") or [""])[0]
    target = _safe_next((form.get("next") or ["/"])[0])
    if token is None:
        return RedirectResponse(target, status_code=303)
    if not token_matches(token, presented):
        return templates(request).TemplateResponse(
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
