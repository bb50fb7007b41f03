"""Endpoints: create, list, show, change, delete; input errors are JSON 400s (app/web/api/endpoints.py)."""

from __future__ import annotations

import httpx
import pytest

from tests.support import LiveServer, create_endpoint


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
