"""Input that is not Unicode text, or not a sane number, is refused at the edge (app/web/params.py read_json,
str_param, int_param) and never stored; settings stored by an older version with such text are repaired."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import httpx
import pytest

from app.settings import Settings
from tests.delivery.target import RecordingTarget
from tests.support import LiveServer, create_endpoint, live_server, raw_request, status_of, wait_until

LONE = "\ud800"


def escaped(data: object) -> bytes:
    """JSON with lone surrogates as \\ud800 escapes, the way a hostile client sends them."""
    return json.dumps(data).encode()


def raw_bytes(data: object) -> bytes:
    """The same surrogate as raw (invalid) UTF-8 bytes, which Python's json.loads of bytes decodes anyway."""
    return json.dumps(data, ensure_ascii=False).encode("utf-8", "surrogatepass")


async def assert_still_works(client: httpx.AsyncClient, endpoint_id: str) -> None:
    listed = await client.get("/api/endpoints")
    assert listed.status_code == 200, listed.text
    assert (await client.get(f"/api/endpoints/{endpoint_id}")).status_code == 200
    capture = await client.post(f"/h/{endpoint_id}", content=b"after")
    assert capture.status_code == 200, capture.text


@pytest.mark.parametrize("encode", [escaped, raw_bytes], ids=["escape", "raw-bytes"])
async def test_surrogates_in_endpoint_json_are_refused_naming_the_field(
    server: LiveServer, client: httpx.AsyncClient, encode: object
) -> None:
    assert callable(encode)
    ep = await create_endpoint(client, name="kept")
    cases = [
        ({"forward_targets": ["http://127.0.0.1:9/", f"http://127.0.0.1:9/{LONE}"]}, "forward_targets[1]"),
        ({"replay_target": f"http://127.0.0.1:9/{LONE}"}, "replay_target"),
        ({"verify": {"scheme": "hmac", "secrets": ["s"], "header": f"x-sig{LONE}"}}, "verify.header"),
        ({"name": LONE}, "name"),
        ({LONE: 1}, "<a top-level key>"),
        ({"response": {"headers": {f"x{LONE}": "v"}}}, "<a key in response.headers>"),
        ({"resign": {"scheme": "github", "secret": f"s{LONE}"}}, "resign.secret"),
    ]
    for body, where in cases:
        for method, path in (("POST", "/api/endpoints"), ("PATCH", f"/api/endpoints/{ep['id']}")):
            resp = await client.request(method, path, content=encode(body))
            assert resp.status_code == 400, (body, resp.text)
            error = resp.json()["error"]
            assert error["code"] == "invalid_json" and error["message"].startswith(f"{where}:"), error
    assert (await client.get(f"/api/endpoints/{ep['id']}")).json()["name"] == "kept"
    assert len((await client.get("/api/endpoints")).json()["endpoints"]) == 1, "nothing was created"
    await assert_still_works(client, ep["id"])


async def test_surrogates_in_forwarding_json_are_refused(server: LiveServer, client: httpx.AsyncClient) -> None:
    ep = await create_endpoint(client)
    rid = (await client.post(f"/h/{ep['id']}", content=b"x")).json()["request_id"]
    cases = [
        (f"/api/requests/{rid}/replay", {"target": f"http://127.0.0.1:9/{LONE}"}, "target"),
        (f"/api/requests/{rid}/replay", {"target": "http://127.0.0.1:9/", "headers": [["x", LONE]]}, "headers[0][1]"),
        (f"/api/endpoints/{ep['id']}/replay", {"target": "http://127.0.0.1:9/", "q": LONE}, "q"),
        (f"/api/endpoints/{ep['id']}/replay", {"target": "http://127.0.0.1:9/", "ids": [1, {"a": LONE}]},
         "ids[1].a"),
    ]
    for path, body, where in cases:
        resp = await client.post(path, content=escaped(body))
        assert resp.status_code == 400, resp.text
        assert resp.json()["error"]["message"].startswith(f"{where}:")
    shown = (await client.get(f"/api/endpoints/{ep['id']}")).json()
    assert "replay_target" not in shown, "a refused replay remembers no target"
    assert (await client.get(f"/api/requests/{rid}/deliveries")).json()["deliveries"] == []
    await assert_still_works(client, ep["id"])


async def test_nan_and_infinity_are_not_json(server: LiveServer, client: httpx.AsyncClient) -> None:
    for body in (b'{"response": {"delay": NaN}}', b'{"passthrough": Infinity}', b"[-Infinity]"):
        resp = await client.post("/api/endpoints", content=body)
        assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_json", resp.text


async def test_query_parameters_odd_values_are_400_json(server: LiveServer, client: httpx.AsyncClient) -> None:
    ep = await create_endpoint(client)
    rid = (await client.post(f"/h/{ep['id']}", content=b"x")).json()["request_id"]
    base = f"/api/endpoints/{ep['id']}"
    bad = [
        f"{base}/requests?limit=1e999", f"{base}/requests?after=-1", f"{base}/requests?after=99999999999999999999999",
        f"{base}/requests?before=%EF%BC%91", f"{base}/requests?limit=1_0", f"{base}/requests?limit=%207",
        f"{base}/requests?after={'9' * 5000}", f"{base}/requests?limit=1&limit=2", f"{base}/requests?q=a&q=b",
        f"{base}/requests?method={','.join(['GET'] * 51)}", f"{base}/requests?provider={'p' * 101}",
        f"{base}/requests?q={'x' * 1001}", f"{base}/requests?verification=%ED%A0%80",
        f"{base}/wait?timeout=nan", f"{base}/wait?timeout=inf", f"{base}/wait?timeout=1e999", f"{base}/wait?timeout=-1",
        f"{base}/wait?timeout=%D9%A1", f"{base}/wait?timeout=1&timeout=2", f"{base}/wait?after=-1",
        f"/api/requests/{rid}?max_body=-5", f"/api/requests/{rid}?max_body=1&max_body=2",
    ]
    for url in bad:
        resp = await client.get(url)
        assert resp.status_code == 400, (url, resp.status_code, resp.text)
        assert resp.json()["error"]["code"] == "invalid_parameter", url
    # Starlette decodes queries with errors="replace": an encoded surrogate arrives as U+FFFD, raw bytes as
    # latin-1. Either is just text that matches nothing.
    for query in ("q=%ED%A0%80", "method=%ED%A0%80", "provider=%ED%A0%80", "q=%FF%FE"):
        resp = await client.get(f"{base}/requests?{query}")
        assert resp.status_code == 200 and resp.json()["requests"] == [], (query, resp.text)
    assert (await client.get(f"{base}/wait?timeout=0&q=%ED%A0%80&provider=%ED%A0%80")).status_code == 204
    raw = await raw_request(server.port, f"GET {base}/requests?q=".encode() + b"\xed\xa0\x80&method=\xff HTTP/1.1\r\n"
                            b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n")
    assert status_of(raw) in (200, 400), raw[:200]
    await assert_still_works(client, ep["id"])


async def test_settings_stored_with_surrogates_by_an_older_version_are_repaired(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(db=tmp_path / "old.db", janitor_interval=3600)
    async with RecordingTarget() as target:
        async with live_server(settings) as srv, srv.client() as client:
            ep = await create_endpoint(client)
        # What a version without the edge check committed: surrogates inside the stored settings JSON.
        options = {
            "forward_targets": [f"{target.url}/hook", f"http://127.0.0.1:9/{LONE}"],
            "replay_target": f"{target.url}/{LONE}",
            "verify": {"scheme": "hmac", "secrets": [f"s{LONE}"], "header": f"x-sig{LONE}", "algorithm": "sha256",
                       "encoding": "hex", "prefix": "", "template": "{body}", "tolerance": None,
                       "timestamp_header": None, "id_header": None, "url": None},
        }
        with sqlite3.connect(settings.db) as db:
            db.execute("UPDATE endpoints SET options = ? WHERE id = ?", (json.dumps(options), ep["id"]))
        caplog.set_level(logging.WARNING, logger="hookscope")
        async with live_server(settings) as srv, srv.client() as client:
            listed = await client.get("/api/endpoints")
            assert listed.status_code == 200, listed.text
            [shown] = listed.json()["endpoints"]
            assert shown["forward_targets"][1] == "http://127.0.0.1:9/\ufffd"
            assert shown["verify"]["header"] == "x-sig\ufffd"
            capture = await client.post(f"/h/{ep['id']}", content=b"{}")
            assert capture.status_code == 200, capture.text
            captured = (await client.get(f"/api/requests/{capture.json()['request_id']}")).json()
            assert captured["verification"]["status"] == "invalid"
            await wait_until(lambda: target.count >= 1, timeout=15)
            assert target.received[0].target == b"/hook"
        assert not [r for r in caplog.records if "restarting" in r.getMessage()], "the forward worker never crashed"


# Frames that name no request this connection was sent: ignored (logged), nothing stored, the cursor stays.
UNUSABLE_FRAMES: list[str] = [
    '{"type": "ack", "id": Infinity}',
    '{"type": "ack", "id": NaN}',
    '{"type": "ack", "id": 1e400}',
    '{"type": "ack", "id": 99999999999999999999999}',
    '{"type": "ack", "id": %(unsent)d}',  # acking a request not sent yet would skip it
    '{"type": "acks", "items": 5}',
    '{"type": "acks", "items": {"id": 1}}',
    '{"type": "acks", "items": [1, "x", null, [], {"id": "1"}, {"id": true}]}',
    '["ack"]',
    "[" * 100_000 + "]" * 100_000,
]
# Acks of the request that was sent, with values the store cannot keep: the first one makes the request's dead
# delivery (app/relay.py _bad_ack); none of their text is stored as given.
BAD_ACKS: list[str] = [
    '{"type": "ack", "id": %(rid)d, "headers": [["x-a", "\\ud800"]], "error": "\\udfff"}',
    '{"type": "ack", "id": %(rid)d, "headers": [["x-a", "\u20ac"]]}',
    '{"type": "ack", "id": %(rid)d, "target": "http://t/\\ud800", "status": 1e400}',
    '{"type": "ack", "id": %(rid)d, "status": 100000000000000000000, "latency_ms": -Infinity}',
    '{"type": "ack", "id": %(rid)d, "body_size": 99999999999999999999999, "attempts": true}',
    '{"type": "ack", "id": %(rid)d, "headers": [["a"]]}',
]


async def test_relay_ignores_bad_acks_and_keeps_serving(server: LiveServer, client: httpx.AsyncClient) -> None:
    import websockets

    ep = await create_endpoint(client)
    url = f"ws://127.0.0.1:{server.port}/api/endpoints/{ep['id']}/relay?name=laptop"
    async with websockets.connect(url, proxy=None, max_size=None) as ws:
        assert json.loads(await ws.recv())["type"] == "hello"
        rid = (await client.post(f"/h/{ep['id']}", content=b"x")).json()["request_id"]
        request = json.loads(await ws.recv())
        assert request["type"] == "request" and request["id"] == rid

        async def pong() -> None:
            await ws.send('{"type": "ping"}')
            while json.loads(await ws.recv()) != {"type": "pong"}:
                pass

        for frame in UNUSABLE_FRAMES:
            await ws.send(frame % {"unsent": rid + 1} if "%(" in frame else frame)
        await pong()
        assert (await client.get(f"/api/requests/{rid}/deliveries")).json()["deliveries"] == []
        relays = (await client.get(f"/api/endpoints/{ep['id']}/relays")).json()["relays"]
        assert relays[0]["acked_id"] < rid, "no unusable frame moved the cursor"

        for frame in BAD_ACKS:
            await ws.send(frame % {"rid": rid})
        await pong()

        async def deliveries() -> list[dict[str, object]]:
            resp = await client.get(f"/api/requests/{rid}/deliveries")
            assert resp.status_code == 200, resp.text
            rows: list[dict[str, object]] = resp.json()["deliveries"]
            return rows

        for _ in range(500):
            if await deliveries():
                break
            await pong()
        [row] = await deliveries()
        assert row["state"] == "dead" and str(row["error"]).startswith("the relay sent an unusable ack")
        assert not any(0xD800 <= ord(c) <= 0xDFFF for c in json.dumps(row, ensure_ascii=False))
    await assert_still_works(client, ep["id"])


async def test_live_socket_ignores_hostile_client_frames(server: LiveServer, client: httpx.AsyncClient) -> None:
    import websockets

    ep = await create_endpoint(client)
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/api/endpoints/{ep['id']}/live", proxy=None) as ws:
        assert json.loads(await ws.recv())["type"] == "hello"
        assert json.loads(await ws.recv())["type"] == "synced"
        for frame in ('{"type": "\\ud800"}', '{"\\udc00": 1}', "[" * 100_000 + "]" * 100_000, "NaN", '"ping"',
                      '{"type": ["ping"]}'):
            await ws.send(frame)
        await ws.send(b"\xed\xa0\x80")  # binary frames are ignored
        await ws.send('{"type": "ping"}')
        assert json.loads(await ws.recv()) == {"type": "pong"}
        rid = (await client.post(f"/h/{ep['id']}", content=b"x")).json()["request_id"]
        got = json.loads(await ws.recv())
        assert got["type"] == "requests" and got["requests"][0]["id"] == rid
