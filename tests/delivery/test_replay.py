"""Replay and edit-and-replay, of one request and of many."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

import httpx

from app.settings import Settings
from tests.delivery.target import RecordingTarget
from tests.support import create_endpoint, live_server


async def test_replay_and_edit_and_replay(client: httpx.AsyncClient, target: RecordingTarget) -> None:
    ep = await create_endpoint(client)
    rid = int((await client.put(f"/h/{ep['id']}/orig?q=1", content=b"original",
                                headers={"x-a": "1"})).headers["x-hookscope-request-id"])
    resp = await client.post(f"/api/requests/{rid}/replay", json={"target": target.url + "/r"})
    assert resp.status_code == 201, resp.text
    d = resp.json()
    assert d["kind"] == "replay" and d["state"] == "delivered" and d["status"] == 200 and d["sent"] is None
    assert target.received[0].method == b"PUT" and target.received[0].target == b"/r/orig?q=1"
    assert target.received[0].body == b"original" and target.received[0].header(b"x-a") == b"1"

    # The target is remembered per endpoint; edits change method, path, query, headers and body.
    assert (await client.get(f"/api/endpoints/{ep['id']}")).json()["replay_target"] == target.url + "/r"
    edit = {"method": "post", "path": "/edited", "query": "z=9", "headers": [["X-B", "2"], ["x-b", "3"]],
            "body": base64.b64encode(b"\x00\x01").decode(), "body_encoding": "base64"}
    d = (await client.post(f"/api/requests/{rid}/replay", json=edit)).json()
    got = target.received[1]
    assert got.method == b"POST" and got.target == b"/r/edited?z=9" and got.body == b"\x00\x01"
    assert [v for n, v in got.headers if n == b"x-b"] == [b"2", b"3"] and got.header(b"x-a") is None
    assert d["sent"]["method"] == "POST" and d["sent"]["body_encoding"] == "base64"

    # Retry of an edited replay sends the edited request again.
    d2 = (await client.post(f"/api/deliveries/{d['id']}/retry")).json()
    assert d2["attempts"] == 2 and target.received[2].body == b"\x00\x01"

    listed = (await client.get(f"/api/requests/{rid}/deliveries")).json()["deliveries"]
    assert [x["id"] for x in listed] == [listed[0]["id"], d["id"]]
    bad = await client.post(f"/api/requests/{rid}/replay", json={"headers": [["bad name", "x"]]})
    assert bad.status_code == 400


async def test_replay_many_in_capture_order(tmp_path: Path) -> None:
    async with live_server(Settings(db=tmp_path / "h.db", janitor_interval=3600)) as srv, srv.client() as client:
        ep = await create_endpoint(client)
        for i in range(5):
            await client.request("DELETE" if i == 2 else "POST", f"/h/{ep['id']}", content=str(i).encode())
        async with RecordingTarget() as target:
            resp = await client.post(f"/api/endpoints/{ep['id']}/replay", json={"target": target.url,
                                                                               "method": "POST"})
            assert resp.status_code == 200
            assert len(resp.json()["deliveries"]) == 4
            assert [r.body for r in target.received] == [b"0", b"1", b"3", b"4"]
        no_target = await client.post(f"/api/endpoints/{ep['id']}/replay", json={"target": "ftp://x"})
        assert no_target.status_code == 400


async def test_replay_many_with_verdict_and_duplicate_filters(client: httpx.AsyncClient) -> None:
    ep = await create_endpoint(client, verify={"scheme": "github", "secrets": ["s3cret"]})
    event = b'{"action": "opened"}'
    good = "sha256=" + hmac.new(b"s3cret", event, hashlib.sha256).hexdigest()
    headers = {"x-github-event": "issues", "x-github-delivery": "d-1", "content-type": "application/json"}
    for sig in (good, "sha256=" + "0" * 64, good):  # valid, then invalid, then a valid retry of the same delivery
        await client.post(f"/h/{ep['id']}/gh", content=event, headers={**headers, "x-hub-signature-256": sig})
    async with RecordingTarget() as target:
        invalid = await client.post(f"/api/endpoints/{ep['id']}/replay",
                                    json={"target": target.url, "verification": "invalid"})
        assert [d["request_id"] for d in invalid.json()["deliveries"]] == [2]
        dups = await client.post(f"/api/endpoints/{ep['id']}/replay", json={"duplicate": True, "limit": 5})
        assert [d["request_id"] for d in dups.json()["deliveries"]] == [2, 3]
        originals = await client.post(f"/api/endpoints/{ep['id']}/replay",
                                      json={"duplicate": False, "verification": "valid"})
        assert [d["request_id"] for d in originals.json()["deliveries"]] == [1]
        assert len(target.received) == 4
    for bad in ({"verification": "maybe"}, {"duplicate": "yes"}, {"provider": 5}):
        resp = await client.post(f"/api/endpoints/{ep['id']}/replay", json=bad)
        assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_replay"
