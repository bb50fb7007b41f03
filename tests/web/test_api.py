"""The JSON API: endpoints, listing with filters and keyset pagination, wait, errors."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import httpx
import pytest

from app.settings import Settings
from tests.support import LiveServer, create_endpoint, live_server


async def test_endpoint_crud(client: httpx.AsyncClient, server: LiveServer) -> None:
    ep = await create_endpoint(client, name="stripe dev")
    assert len(ep["id"]) >= 16 and ep["id"].replace("-", "").replace("_", "").isalnum()
    assert ep["ingest_url"] == f"{server.url}/h/{ep['id']}"
    assert ep["inspect_url"] == f"{server.url}/e/{ep['id']}"
    assert ep["request_count"] == 0 and ep["response"]["status"] == 200
    await client.post(f"/h/{ep['id']}")
    listed = (await client.get("/api/endpoints")).json()["endpoints"]
    assert [(e["id"], e["request_count"]) for e in listed] == [(ep["id"], 1)]
    assert listed[0]["last_request_at"] is not None
    patched = (await client.patch(f"/api/endpoints/{ep['id']}", json={"name": "renamed"})).json()
    assert patched["name"] == "renamed" and patched["request_count"] == 1
    assert (await client.delete(f"/api/endpoints/{ep['id']}")).status_code == 204
    assert (await client.get(f"/api/endpoints/{ep['id']}")).status_code == 404
    assert (await client.post(f"/h/{ep['id']}")).status_code == 404


async def test_endpoint_without_body_and_ids_are_unique(client: httpx.AsyncClient) -> None:
    ids = set()
    for _ in range(20):
        resp = await client.post("/api/endpoints")
        assert resp.status_code == 201
        ids.add(resp.json()["id"])
    assert len(ids) == 20


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "invalid_json"),
        (b"[1,2]", "invalid_endpoint"),
        (b'{"name": 5}', "invalid_endpoint"),
        (b'{"bogus": 1}', "invalid_endpoint"),
        (b'{"response": {"status": 99}}', "invalid_endpoint"),
        (b'{"response": {"delay": 31}}', "invalid_endpoint"),
        (b'{"response": {"headers": [["bad name", "x"]]}}', "invalid_endpoint"),
        (b'{"response": {"headers": [["x-a", "a\\r\\nb"]]}}', "invalid_endpoint"),
        (b'{"response": {"headers": [["content-length", "1"]]}}', "invalid_endpoint"),
        (b"\xff\xfe", "invalid_json"),
        (b"[" * 100_000, "invalid_json"),
    ],
)
async def test_bad_input_gets_json_error(client: httpx.AsyncClient, body: bytes, code: str) -> None:
    resp = await client.post("/api/endpoints", content=body)
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == code
    assert resp.json()["error"]["message"]


async def test_unknown_ids_are_json_404(client: httpx.AsyncClient) -> None:
    for url in ["/api/endpoints/nope", "/api/requests/999", "/api/requests/abc", "/api/requests/99999999999999999999",
                "/api/requests/1/raw", "/api/endpoints/nope/requests", "/api/nothing-here"]:
        resp = await client.get(url)
        assert resp.status_code == 404, url
        assert resp.json()["error"]["code"], url


async def test_method_not_allowed_is_json(client: httpx.AsyncClient) -> None:
    resp = await client.put("/api/endpoints")
    assert resp.status_code == 405 and resp.json()["error"]["code"] == "method_not_allowed"


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


async def test_public_url_is_used(settings: Settings) -> None:
    async with live_server(replace(settings, public_url="https://hooks.example.com/")) as srv, srv.client() as c:
        ep = await create_endpoint(c)
        assert ep["ingest_url"] == f"https://hooks.example.com/h/{ep['id']}"


async def test_security_headers_on_api(client: httpx.AsyncClient) -> None:
    resp = await client.get("/api/endpoints")
    assert "script-src 'self'" in resp.headers["content-security-policy"]
    assert resp.headers["x-content-type-options"] == "nosniff"
