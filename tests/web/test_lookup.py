"""Unknown ids, and ids that cannot exist, are JSON 404s (app/web/lookup.py; an unknown path, the router's)."""

from __future__ import annotations

import httpx


async def test_unknown_ids_are_json_404(client: httpx.AsyncClient) -> None:
    for url in ["/api/endpoints/nope", "/api/requests/999", "/api/requests/abc", "/api/requests/99999999999999999999",
                "/api/requests/1/raw", "/api/endpoints/nope/requests", "/api/nothing-here"]:
        resp = await client.get(url)
        assert resp.status_code == 404, url
        assert resp.json()["error"]["code"], url
