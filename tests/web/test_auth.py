"""Access control: open on loopback without a token; token required everywhere but ingest when set."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest

from app.cli import build_parser, settings_from_args
from app.settings import Settings
from app.web.auth import COOKIE
from tests.support import LiveServer, live_server

TOKEN = "s3cret-token"


@pytest.fixture
async def guarded(settings: Settings) -> AsyncIterator[LiveServer]:
    async with live_server(replace(settings, token=TOKEN)) as srv:
        yield srv


async def test_open_without_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/endpoints")).status_code == 200


async def test_api_requires_bearer(guarded: LiveServer) -> None:
    async with guarded.client() as anon:
        resp = await anon.get("/api/endpoints")
        assert resp.status_code == 401 and resp.json()["error"]["code"] == "unauthorized"
        assert (await anon.get("/api/endpoints", headers={"authorization": "Bearer wrong"})).status_code == 401
    async with guarded.client(headers={"authorization": f"Bearer {TOKEN}"}) as authed:
        ep = (await authed.post("/api/endpoints")).json()
    async with guarded.client() as anon:
        # Ingest stays public.
        assert (await anon.post(f"/h/{ep['id']}", content=b"x")).status_code == 200
        assert (await anon.get("/healthz")).status_code == 200


async def test_browser_login_sets_httponly_cookie(guarded: LiveServer) -> None:
    async with guarded.client() as browser:
        page = await browser.get("/api/endpoints", headers={"accept": "text/html"})
        assert page.status_code == 401
        redirect = await browser.get("/some/page?x=1")
        assert redirect.status_code == 303 and redirect.headers["location"].startswith("/login?next=")
        form = await browser.get("/login")
        assert form.status_code == 200 and 'name="token"' in form.text
        bad = await browser.post("/login", data={"token": "nope", "next": "/"})
        assert bad.status_code == 401
        good = await browser.post("/login", data={"token": TOKEN, "next": "//evil.example/"})
        assert good.status_code == 303 and good.headers["location"] == "/"
        cookie = good.headers["set-cookie"]
        assert COOKIE in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert TOKEN not in cookie
        assert (await browser.get("/api/endpoints")).status_code == 200  # cookie jar carries the session


def test_non_loopback_bind_generates_token() -> None:
    args = build_parser().parse_args(["serve", "--host", "0.0.0.0"])
    settings, generated = settings_from_args(args)
    assert generated and settings.token and len(settings.token) >= 24
    args = build_parser().parse_args(["serve", "--host", "127.0.0.1"])
    settings, generated = settings_from_args(args)
    assert not generated and settings.token is None
    args = build_parser().parse_args(["serve", "--host", "0.0.0.0", "--token", "mine"])
    assert settings_from_args(args) == (replace(settings, host="0.0.0.0", token="mine"), False)
