"""HTML pages: home, inspector, 404; CSP on every page; nothing captured or user-named served unescaped."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from app.settings import Settings
from tests.support import LiveServer, create_endpoint, live_server

NAME = '<script>alert("x")</script><img src=x onerror=alert(1)>'


async def test_home_renders_with_csp(client: httpx.AsyncClient) -> None:
    resp = await client.get("/")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    csp = resp.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp
    assert '<script type="module" src="/static/js/home.js"></script>' in resp.text
    for sheet in ("/static/app.css", "/static/css/detail.css", "/static/css/panels.css"):
        assert f'href="{sheet}"' in resp.text


async def test_inspector_renders_ingest_url_and_escapes_the_name(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    ep = await create_endpoint(client, name=NAME)
    resp = await client.get(f"/e/{ep['id']}")
    assert resp.status_code == 200
    assert "content-security-policy" in resp.headers
    html = resp.text
    assert f'data-endpoint-id="{ep["id"]}"' in html
    assert ep["ingest_url"] in html
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    # No inline script or style: the only scripts are our modules, the only styles our sheets.
    assert re.findall(r"<script[^>]*>", html) == [
        '<script type="module" src="/static/js/theme.js">',
        '<script type="module" src="/static/js/inspector.js">',
    ]
    assert "style=" not in html and "<style" not in html


async def test_captured_data_is_not_in_the_page(server: LiveServer, client: httpx.AsyncClient) -> None:
    ep = await create_endpoint(client)
    await client.post(f"/h/{ep['id']}/%3Cscript%3E", content=b"<script>alert(2)</script>",
                      headers={"x-evil": "<svg onload=alert(3)>"})
    html = (await client.get(f"/e/{ep['id']}")).text
    assert "alert(2)" not in html and "alert(3)" not in html


async def test_unknown_endpoint_is_a_404_page(client: httpx.AsyncClient) -> None:
    resp = await client.get("/e/does-not-exist", headers={"accept": "text/html"})
    assert resp.status_code == 404
    assert resp.headers["content-type"].startswith("text/html")
    assert "Not found" in resp.text
    assert "content-security-policy" in resp.headers
    hostile = await client.get("/e/%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    assert hostile.status_code == 404 and "<script>alert" not in hostile.text


async def test_static_modules_are_served(client: httpx.AsyncClient) -> None:
    for path in ("/static/js/inspector.js", "/static/js/list.js", "/static/js/live.js", "/static/app.css"):
        resp = await client.get(path)
        assert resp.status_code == 200, path


async def test_pages_require_login_when_a_token_is_set(tmp_path: Path) -> None:
    settings = Settings(db=tmp_path / "p.db", janitor_interval=3600, token="tok")
    async with live_server(settings) as srv, srv.client() as c:
        for path in ("/", "/e/anything"):
            resp = await c.get(path)
            assert resp.status_code == 303 and resp.headers["location"].startswith("/login")
