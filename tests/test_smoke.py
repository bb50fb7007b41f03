from __future__ import annotations

import httpx

from tests.support import create_endpoint


async def test_capture_then_read(client: httpx.AsyncClient) -> None:
    ep = await create_endpoint(client, name="smoke")
    resp = await client.post(f"/h/{ep['id']}/x", content=b"hi")
    assert resp.status_code == 200
    rid = int(resp.headers["x-hookscope-request-id"])
    got = (await client.get(f"/api/requests/{rid}")).json()
    assert got["body"] == "hi" and got["path"] == "/x"
