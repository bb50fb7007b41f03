"""Security headers on API answers (app/web/security_headers.py)."""

from __future__ import annotations

import httpx


async def test_security_headers_on_api(client: httpx.AsyncClient) -> None:
    resp = await client.get("/api/endpoints")
    assert "script-src 'self'" in resp.headers["content-security-policy"]
    assert resp.headers["x-content-type-options"] == "nosniff"
