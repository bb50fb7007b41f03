"""The URLs the API shows come from --public-url when it is set (app/web/urls.py)."""

from __future__ import annotations

from dataclasses import replace

from app.settings import Settings
from tests.support import create_endpoint, live_server


async def test_public_url_is_used(settings: Settings) -> None:
    async with live_server(replace(settings, public_url="https://hooks.example.com/")) as srv, srv.client() as c:
        ep = await create_endpoint(c)
        assert ep["ingest_url"] == f"https://hooks.example.com/h/{ep['id']}"
