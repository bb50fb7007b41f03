"""Captured requests: listing with filters and keyset pagination, delete and clear, raw bodies, wait
(app/web/api/requests.py)."""

from __future__ import annotations

import asyncio

import httpx

from tests.support import create_endpoint


async def test_list_pagination_and_catch_up(client: httpx.AsyncClient) -> None:
    ep = await create_endpoint(client)
    other = await create_endpoint(client)
    ids = []
    for i in range(7):
        ids.append(int((await client.post(f"/h/{ep['id']}/{i}")).headers["x-hookscope-request-id"]))
        await client.post(f"/h/{other['id']}")
    page1 = (await client.get(f"/api/endpoints/{ep['id']}/requests", params={"limit": 3})).json()
    assert [r["id"] for r in page1["requests"]] == ids[::-1][:3]
    assert page1["has_more"] is True
    page2 = (await client.get(f"/api/endpoints/{ep['id']}/requests",
                              params={"limit": 3, "before": page1["next_before"]})).json()
    assert [r["id"] for r in page2["requests"]] == ids[::-1][3:6]
    page3 = (await client.get(f"/api/endpoints/{ep['id']}/requests",
                              params={"limit": 3, "before": page2["next_before"]})).json()
    assert [r["id"] for r in page3["requests"]] == ids[:1] and page3["next_before"] is None
    catch = (await client.get(f"/api/endpoints/{ep['id']}/requests", params={"after": ids[2]})).json()
    assert [r["id"] for r in catch["requests"]] == ids[3:]
    assert catch["last_id"] == ids[-1]
    assert (await client.get(f"/api/endpoints/{ep['id']}/requests", params={"limit": 0})).status_code == 400
    assert (await client.get(f"/api/endpoints/{ep['id']}/requests", params={"before": "x"})).status_code == 400


async def test_filters_method_and_text(client: httpx.AsyncClient) -> None:
    ep = await create_endpoint(client)
    h = f"/h/{ep['id']}"
    await client.post(h + "/orders", content=b'{"type": "invoice.paid"}')
    await client.put(h + "/x?customer=cus_42", content=b"")
    await client.get(h, headers={"x-github-event": "push"})
    await client.post(h, content=b"\x00\x01 binary needle \xff")
    await client.post(h, content="naïve café".encode())

    async def search(**params: str) -> list[str]:
        resp = await client.get(f"/api/endpoints/{ep['id']}/requests", params=params)
        return [r["method"] + r["path"] for r in resp.json()["requests"]]

    assert await search(method="PUT") == ["PUT/x"]
    assert await search(method="put,get") == ["GET", "PUT/x"]
    assert await search(q="invoice.paid") == ["POST/orders"]
    assert await search(q="INVOICE") == ["POST/orders"]  # ASCII case-insensitive
    assert await search(q="cus_42") == ["PUT/x"]
    assert await search(q="github-event") == ["GET"]
    assert await search(q="needle") == ["POST"]
    assert await search(q="café") == ["POST"]
    assert await search(q="100%_") == []
    assert await search(q="orders", method="GET") == []


async def test_delete_and_clear(client: httpx.AsyncClient) -> None:
    ep = await create_endpoint(client)
    rids = [(await client.post(f"/h/{ep['id']}")).headers["x-hookscope-request-id"] for _ in range(3)]
    assert (await client.delete(f"/api/requests/{rids[0]}")).status_code == 204
    assert (await client.get(f"/api/requests/{rids[0]}")).status_code == 404
    assert (await client.delete(f"/api/endpoints/{ep['id']}/requests")).json() == {"deleted": 2}
    assert (await client.get(f"/api/endpoints/{ep['id']}")).json()["request_count"] == 0


async def test_raw_of_active_content_is_attachment(client: httpx.AsyncClient) -> None:
    ep = await create_endpoint(client)
    for ctype in ["text/html", "image/svg+xml", "application/xml", "text/javascript"]:
        rid = (await client.post(f"/h/{ep['id']}", content=b"<script>alert(1)</script>",
                                 headers={"content-type": ctype})).headers["x-hookscope-request-id"]
        raw = await client.get(f"/api/requests/{rid}/raw")
        assert raw.headers["content-disposition"].startswith("attachment")
        assert "sandbox" in raw.headers["content-security-policy"]
        assert raw.headers["x-content-type-options"] == "nosniff"


async def test_wait_returns_existing_then_blocks_then_times_out(client: httpx.AsyncClient) -> None:
    ep = await create_endpoint(client)
    first = int((await client.post(f"/h/{ep['id']}", content=b"one")).headers["x-hookscope-request-id"])
    got = (await client.get(f"/api/endpoints/{ep['id']}/wait", params={"after": 0, "timeout": 5})).json()
    assert got["id"] == first and got["body"] == "one"

    waiter = asyncio.create_task(
        client.get(f"/api/endpoints/{ep['id']}/wait", params={"after": first, "timeout": 20, "method": "PUT"})
    )
    await client.post(f"/h/{ep['id']}", content=b"not me")
    await asyncio.sleep(0)  # let the waiter register; correctness does not depend on it (it queries by id)
    put = int((await client.put(f"/h/{ep['id']}/p", content=b"me")).headers["x-hookscope-request-id"])
    resp = await asyncio.wait_for(waiter, 20)
    assert resp.status_code == 200 and resp.json()["id"] == put and resp.json()["body"] == "me"

    timed_out = await client.get(f"/api/endpoints/{ep['id']}/wait", params={"timeout": 0.2})
    assert timed_out.status_code == 204
    for bad in ["x", "nan", "inf", "-1"]:
        resp = await client.get(f"/api/endpoints/{ep['id']}/wait", params={"timeout": bad})
        assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_parameter"
