"""Byte-level ingest through a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest

from app.settings import Settings
from tests.support import LiveServer, create_endpoint, live_server, raw_request, status_of, wait_until

ALL_BYTES = bytes(range(256))


async def _get(client: httpx.AsyncClient, rid: int | str) -> dict:  # type: ignore[type-arg]
    resp = await client.get(f"/api/requests/{rid}")
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


async def test_all_256_byte_values_round_trip(client: httpx.AsyncClient) -> None:
    ep = await create_endpoint(client)
    resp = await client.post(
        f"/h/{ep['id']}", content=ALL_BYTES * 4, headers={"content-type": "application/octet-stream"}
    )
    assert resp.status_code == 200
    rid = resp.headers["x-hookscope-request-id"]
    data = await _get(client, rid)
    assert data["body_encoding"] == "base64"
    assert base64.b64decode(data["body"]) == ALL_BYTES * 4
    assert data["body_size"] == 1024
    raw = await client.get(f"/api/requests/{rid}/raw")
    assert raw.content == ALL_BYTES * 4
    assert raw.headers["content-type"] == "application/octet-stream"
    assert raw.headers["x-content-type-options"] == "nosniff"


async def test_utf8_body_is_text(client: httpx.AsyncClient) -> None:
    ep = await create_endpoint(client)
    body = '{"emoji":"🎉","quote":"\\"x\\""}'.encode()
    resp = await client.post(f"/h/{ep['id']}", content=body, headers={"content-type": "application/json"})
    data = await _get(client, resp.headers["x-hookscope-request-id"])
    assert data["body_encoding"] == "utf-8"
    assert data["body"].encode() == body


async def test_a_provider_event_whose_ids_escape_lone_surrogates_is_stored_byte_exact(
    client: httpx.AsyncClient,
) -> None:
    """The detected event fields get U+FFFD for each lone surrogate (no store can hold one); the body stays as sent."""
    ep = await create_endpoint(client)
    body = b'{"id":"evt_\\ud800x","object":"event","type":"a\\udfffb"}'
    resp = await client.post(
        f"/h/{ep['id']}", content=body, headers={"stripe-signature": "t=1,v1=00", "content-type": "application/json"}
    )
    assert resp.status_code == 200, resp.text
    data = await _get(client, resp.headers["x-hookscope-request-id"])
    assert (data["provider"], data["event_id"], data["event_type"]) == ("stripe", "evt_\ufffdx", "a\ufffdb")
    assert data["body"].encode() == body


async def test_duplicate_headers_keep_order(server: LiveServer, client: httpx.AsyncClient) -> None:
    ep = await create_endpoint(client)
    raw = (
        f"POST /h/{ep['id']} HTTP/1.1\r\nHost: x\r\nX-B: 1\r\nX-A: first\r\nX-B: 2\r\nX-A: second\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    answer = await raw_request(server.port, raw)
    assert status_of(answer) == 200
    rid = answer.split(b"x-hookscope-request-id: ")[1].split(b"\r\n")[0].decode()
    data = await _get(client, rid)
    assert data["headers"] == [
        ["host", "x"], ["x-b", "1"], ["x-a", "first"], ["x-b", "2"], ["x-a", "second"], ["content-length", "0"]
    ]


@pytest.mark.parametrize(
    "method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND", "PURGE", "MKCOL", "QUERY", "SEARCH"]
)
async def test_any_method_is_captured(client: httpx.AsyncClient, method: str) -> None:
    ep = await create_endpoint(client)
    resp = await client.request(method, f"/h/{ep['id']}/m")
    assert resp.status_code == 200
    data = await _get(client, resp.headers["x-hookscope-request-id"])
    assert data["method"] == method


@pytest.mark.parametrize("method", ["X-FOO", "BREW", "WHATEVER.1"])
async def test_any_method_token_with_h11(settings: Settings, method: str) -> None:
    async with live_server(replace(settings, http="h11")) as srv, srv.client() as client:
        ep = await create_endpoint(client)
        resp = await client.request(method, f"/h/{ep['id']}/m", content=b"tea")
        assert resp.status_code == 200
        data = await _get(client, resp.headers["x-hookscope-request-id"])
        assert data["method"] == method and data["body"] == "tea"


async def test_head_gets_headers_only(client: httpx.AsyncClient) -> None:
    ep = await create_endpoint(client)
    resp = await client.head(f"/h/{ep['id']}")
    assert resp.status_code == 200 and resp.content == b""
    assert (await _get(client, resp.headers["x-hookscope-request-id"]))["method"] == "HEAD"


async def test_raw_path_and_query_kept(server: LiveServer, client: httpx.AsyncClient) -> None:
    ep = await create_endpoint(client)
    target = f"/h/{ep['id']}/a%2Fb/c%20d/%zz/%FF/?q=%20x&q=2&&flag&e=%E2%82%AC"
    answer = await raw_request(server.port, f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert status_of(answer) == 200
    rid = answer.split(b"x-hookscope-request-id: ")[1].split(b"\r\n")[0].decode()
    data = await _get(client, rid)
    assert data["path"] == "/a%2Fb/c%20d/%zz/%FF/"
    assert data["query"] == "q=%20x&q=2&&flag&e=%E2%82%AC"


@pytest.mark.parametrize(("suffix", "path"), [("", ""), ("/", "/"), ("/x/y", "/x/y")])
async def test_sub_path_forms(client: httpx.AsyncClient, suffix: str, path: str) -> None:
    ep = await create_endpoint(client)
    resp = await client.post(f"/h/{ep['id']}{suffix}")
    assert (await _get(client, resp.headers["x-hookscope-request-id"]))["path"] == path


async def test_unknown_endpoint_404_and_nothing_stored(client: httpx.AsyncClient) -> None:
    ep = await create_endpoint(client)
    resp = await client.post("/h/does-not-exist/x", content=b"data")
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "endpoint_not_found"
    await client.post(f"/h/{ep['id']}", content=b"ok")
    # Only the request to the real endpoint exists, server-wide: id 1.
    assert (await client.get("/api/requests/1")).json()["endpoint_id"] == ep["id"]
    assert (await client.get("/api/requests/2")).status_code == 404


async def test_invalid_utf8_header_value(server: LiveServer, client: httpx.AsyncClient) -> None:
    ep = await create_endpoint(client)
    raw = f"POST /h/{ep['id']} HTTP/1.1\r\nHost: x\r\nX-Bin: ".encode() + b"\xff\xfe caf\xc3\xa9" + (
        b"\r\nX-Utf8: caf\xc3\xa9\r\nContent-Length: 3\r\n\r\n\xff\x00\x80"
    )
    answer = await raw_request(server.port, raw)
    assert status_of(answer) == 200
    rid = answer.split(b"x-hookscope-request-id: ")[1].split(b"\r\n")[0].decode()
    data = await _get(client, rid)
    assert data["headers"][1] == ["x-bin", "\xff\xfe caf\xc3\xa9"]  # shown as ISO-8859-1
    assert data["headers"][2] == ["x-utf8", "café"]  # valid UTF-8 shown as text
    assert data["headers_latin1"] == [1]
    assert data["headers"][1][1].encode("latin-1") == b"\xff\xfe caf\xc3\xa9"
    assert base64.b64decode(data["body"]) == b"\xff\x00\x80"


async def test_chunked_and_empty_bodies(client: httpx.AsyncClient) -> None:
    ep = await create_endpoint(client)

    async def gen() -> AsyncIterator[bytes]:
        for i in range(50):
            yield bytes([i]) * 1000

    resp = await client.post(f"/h/{ep['id']}", content=gen())
    data = await _get(client, resp.headers["x-hookscope-request-id"])
    assert data["body_encoding"] == "utf-8"  # bytes 0..49 are ASCII
    assert data["body"].encode() == b"".join(bytes([i]) * 1000 for i in range(50))
    assert ["transfer-encoding", "chunked"] in data["headers"]
    empty = await client.post(f"/h/{ep['id']}", content=b"")
    data = await _get(client, empty.headers["x-hookscope-request-id"])
    assert data["body"] == "" and data["body_size"] == 0


async def test_many_and_long_headers(client: httpx.AsyncClient) -> None:
    ep = await create_endpoint(client)
    headers = [(f"x-h{i}", f"v{i}") for i in range(1000)] + [("x-long", "a" * 60_000)]
    resp = await client.post(f"/h/{ep['id']}", headers=headers)
    assert resp.status_code < 500
    if resp.status_code == 200:
        data = await _get(client, resp.headers["x-hookscope-request-id"])
        assert len([h for h in data["headers"] if h[0].startswith("x-h")]) == 1000
        assert ["x-long", "a" * 60_000] in data["headers"]


async def test_large_body_spills_to_file_and_round_trips(server: LiveServer, client: httpx.AsyncClient) -> None:
    ep = await create_endpoint(client)
    body = ALL_BYTES[::-1] * (3 * 4096)  # 3 MiB, over the spill threshold; starts with 0xff (not UTF-8)
    resp = await client.put(f"/h/{ep['id']}/big", content=body)
    rid = resp.headers["x-hookscope-request-id"]
    assert (await client.get(f"/api/requests/{rid}/raw")).content == body
    files = list((server.settings.db.parent / (server.settings.db.name + ".bodies")).iterdir())
    assert len(files) == 1 and files[0].read_bytes() == body
    data = (await client.get(f"/api/requests/{rid}", params={"max_body": 100})).json()
    assert data["body_truncated"] is True and base64.b64decode(data["body"]) == body[:100]
    assert (await client.delete(f"/api/requests/{rid}")).status_code == 204
    assert not files[0].exists()


async def test_declared_too_large_is_413_and_recorded(settings: Settings) -> None:
    async with live_server(replace(settings, max_body=1000)) as srv, srv.client() as client:
        ep = await create_endpoint(client)
        resp = await client.post(f"/h/{ep['id']}", content=b"x" * 1001)
        assert resp.status_code == 413
        assert resp.json()["error"]["code"] == "body_too_large"
        data = await _get(client, resp.headers["x-hookscope-request-id"])
        assert data["rejected"] == "body_too_large" and data["body"] == "" and data["body_size"] == 1001
        ok = await client.post(f"/h/{ep['id']}", content=b"x" * 1000)
        assert ok.status_code == 200


async def test_streamed_too_large_is_413(settings: Settings) -> None:
    async with live_server(replace(settings, max_body=100_000)) as srv, srv.client() as client:
        ep = await create_endpoint(client)

        async def gen() -> AsyncIterator[bytes]:
            for _ in range(50):
                yield b"y" * 10_000

        resp = await client.post(f"/h/{ep['id']}", content=gen())
        assert resp.status_code == 413  # the sender reads our answer: the rest of its body was drained
        data = await _get(client, resp.headers["x-hookscope-request-id"])
        assert data["rejected"] == "body_too_large" and data["body_size"] > 100_000
        assert list((srv.settings.db.parent / (srv.settings.db.name + ".bodies")).iterdir()) == []


async def test_disconnect_mid_body_stores_nothing(server: LiveServer, client: httpx.AsyncClient) -> None:
    ep = await create_endpoint(client)
    head = f"POST /h/{ep['id']} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n".encode()
    await raw_request(server.port, head + b"z" * 400_000, close_after_send=True)
    # A complete request afterwards is the first one stored; the cut one left no row and no file.
    resp = await client.post(f"/h/{ep['id']}", content=b"after")
    listing = (await client.get(f"/api/endpoints/{ep['id']}/requests")).json()["requests"]
    assert [r["id"] for r in listing] == [int(resp.headers["x-hookscope-request-id"])]
    bodies = server.settings.db.parent / (server.settings.db.name + ".bodies")
    assert list(bodies.iterdir()) == []


async def test_configured_response(client: httpx.AsyncClient) -> None:
    ep = await create_endpoint(
        client,
        response={"status": 202, "headers": [["X-Custom", "yes"], ["Content-Type", "text/plain"]], "body": "accepted"},
    )
    resp = await client.post(f"/h/{ep['id']}")
    assert resp.status_code == 202
    assert resp.text == "accepted"
    assert resp.headers["x-custom"] == "yes" and resp.headers["content-type"] == "text/plain"
    assert resp.headers["x-hookscope-request-id"].isdigit()


async def test_default_response_names_the_request(client: httpx.AsyncClient) -> None:
    ep = await create_endpoint(client)
    resp = await client.post(f"/h/{ep['id']}")
    assert resp.json() == {"ok": True, "request_id": int(resp.headers["x-hookscope-request-id"])}


async def test_forwarded_for_only_from_trusted_proxy(settings: Settings) -> None:
    async with live_server(replace(settings, trusted_proxies=("127.0.0.1",))) as srv, srv.client() as client:
        ep = await create_endpoint(client)
        resp = await client.post(f"/h/{ep['id']}", headers={"x-forwarded-for": "203.0.113.9, 127.0.0.1"})
        assert (await _get(client, resp.headers["x-hookscope-request-id"]))["client"] == "203.0.113.9"
    async with live_server(settings) as srv, srv.client() as client:
        ep = await create_endpoint(client)
        resp = await client.post(f"/h/{ep['id']}", headers={"x-forwarded-for": "203.0.113.9"})
        assert (await _get(client, resp.headers["x-hookscope-request-id"]))["client"] == "127.0.0.1"


async def test_full_write_queue_answers_503(settings: Settings) -> None:
    import threading

    async with live_server(replace(settings, queue_size=1)) as srv, srv.client() as client:
        ep = await create_endpoint(client)
        gate = threading.Event()
        started = threading.Event()

        def blocker(conn: object) -> None:  # holds the writer thread until released
            started.set()
            gate.wait(30)

        blocked = asyncio.ensure_future(srv.app.services.store.writer.submit(blocker))  # type: ignore[attr-defined]
        await asyncio.to_thread(started.wait, 10)
        queued = asyncio.ensure_future(client.post(f"/h/{ep['id']}", content=b"queued"))
        await wait_until(lambda: srv.app.services.store.writer.pending == 1)  # type: ignore[attr-defined]
        shed = await client.post(f"/h/{ep['id']}", content=b"shed")
        assert shed.status_code == 503
        assert shed.headers["retry-after"] == "1" and shed.json()["error"]["code"] == "overloaded"
        gate.set()
        await blocked
        assert (await queued).status_code == 200
        bodies = [r["body_size"] for r in (await client.get(f"/api/endpoints/{ep['id']}/requests")).json()["requests"]]
        assert bodies == [len(b"queued")]
