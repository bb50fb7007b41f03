"""Errors raised by Starlette itself keep the API's JSON shape (app/web/errors.py)."""

from __future__ import annotations

import httpx


async def test_method_not_allowed_is_json(client: httpx.AsyncClient) -> None:
    resp = await client.put("/api/endpoints")
    assert resp.status_code == 405 and resp.json()["error"]["code"] == "method_not_allowed"
