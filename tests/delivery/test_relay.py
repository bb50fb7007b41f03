"""The relay: `hookscope forward` as a subprocess against a real server, delivering to a recording target."""

from __future__ import annotations

import asyncio
import json
import os
import random
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from app.settings import Settings
from tests.delivery.relayproc import RelayProcess, wait_relay
from tests.delivery.target import RecordingTarget
from tests.support import LiveServer, create_endpoint, live_server, wait_until


async def _send_many(client: httpx.AsyncClient, ep_id: str, bodies: list[bytes], lanes: int = 6) -> list[int]:
    """Capture the bodies (several senders at once); returns their request ids."""
    ids: list[int] = [0] * len(bodies)
    queue = list(enumerate(bodies))

    async def lane() -> None:
        while queue:
            i, body = queue.pop(0)
            resp = await client.post(
                f"/h/{ep_id}/p/{i}?i={i}", content=body,
                headers=[(b"x-i", str(i).encode()), (b"x-dup", b"1"), (b"x-dup", b"2"), (b"x-bin", b"\xfe\xa0")],
            )
            assert resp.status_code == 200
            ids[i] = int(resp.headers["x-hookscope-request-id"])

    await asyncio.gather(*(lane() for _ in range(lanes)))
    return ids


def _body(i: int) -> bytes:
    rng = random.Random(i)
    return rng.randbytes(rng.randrange(0, 3000))


async def test_relay_delivers_1000_in_order_byte_exact(
    server: LiveServer, client: httpx.AsyncClient, target: RecordingTarget, tmp_path: Path
) -> None:
    ep = await create_endpoint(client)
    relay = RelayProcess(f"{server.url}/h/{ep['id']}", [target.url + "/base"], "laptop", tmp_path / "relay.log")
    relay.start()
    try:
        await _wait_relay(client, ep["id"], "laptop")
        bodies = [_body(i) for i in range(1000)]
        ids = await _send_many(client, ep["id"], bodies)
        await wait_until(lambda: target.count >= 1000, timeout=60)
        order = sorted(range(1000), key=lambda i: ids[i])  # capture order
        got = target.received
        assert [int(r.header(b"x-i") or b"-1") for r in got] == order
        for r in got:
            i = int(r.header(b"x-i") or b"-1")
            assert r.body == bodies[i]
            assert r.method == b"POST" and r.target == f"/base/p/{i}?i={i}".encode()
            assert [v for n, v in r.headers if n == b"x-dup"] == [b"1", b"2"]
            assert r.header(b"x-bin") == b"\xfe\xa0"
            assert r.header(b"host") == f"127.0.0.1:{target.port}".encode()

        async def acked() -> dict[str, Any]:
            relays = (await client.get(f"/api/endpoints/{ep['id']}/relays")).json()["relays"]
            return dict(relays[0])

        for _ in range(200):
            status = await acked()
            if status["acked_id"] == max(ids):
                break
            await asyncio.sleep(0.02)
        assert status["connected"] and status["pending"] == 0 and status["acked_id"] == max(ids)
        for _ in range(500):  # the ack is recorded by a pipelined write: wait for its commit
            last = (await client.get(f"/api/requests/{max(ids)}/deliveries")).json()["deliveries"]
            if last:
                break
            await asyncio.sleep(0.01)
        assert last[0]["kind"] == "relay" and last[0]["relay"] == "laptop" and last[0]["status"] == 200
    finally:
        await asyncio.to_thread(relay.stop)
    assert "forwarded 1000 request(s)" in relay.output()


async def _wait_relay(client: httpx.AsyncClient, ep_id: str, name: str, connected: bool = True) -> None:
    await wait_relay(client, ep_id, name, connected)


async def test_kill9_relay_mid_stream_loses_nothing(
    server: LiveServer, client: httpx.AsyncClient, target: RecordingTarget, tmp_path: Path
) -> None:
    ep = await create_endpoint(client)
    relay = RelayProcess(f"{server.url}/h/{ep['id']}", [target.url], "k9", tmp_path / "relay.log")
    relay.start()
    await _wait_relay(client, ep["id"], "k9")
    total = 400
    sender = asyncio.create_task(_send_many(client, ep["id"], [str(i).encode() for i in range(total)], lanes=2))
    await wait_until(lambda: target.count >= 60, timeout=30)
    relay.kill9()
    await _wait_relay(client, ep["id"], "k9", connected=False)
    mid = target.count
    ids = await sender  # keep sending while the relay is dead
    relay.start()  # same name, no --from: resumes from the acknowledged cursor
    try:
        bodies = {str(i).encode() for i in range(total)}
        await wait_until(lambda: {r.body for r in target.received} >= bodies, timeout=60)
        assert mid < total
        # At-least-once: a request delivered but not acked before the kill may come twice, never out of order.
        firsts: list[int] = []
        for r in target.received:
            i = int(r.body)
            if i not in firsts:
                firsts.append(i)
        assert firsts == sorted(range(total), key=lambda i: ids[i])
        assert len(target.received) - total <= 64  # at most one window of redeliveries
    finally:
        await asyncio.to_thread(relay.stop)


async def test_routes_and_ack_of_errors(
    server: LiveServer, client: httpx.AsyncClient, target: RecordingTarget, tmp_path: Path
) -> None:
    async with RecordingTarget() as github, RecordingTarget(lambda r: (500, [], b"boom")) as broken:
        ep = await create_endpoint(client)
        rules = [f"header:x-github-event={github.url}/gh", f"json:type:invoice.paid={broken.url}",
                 f"path:/stripe={target.url}"]
        relay = RelayProcess(f"{server.url}/h/{ep['id']}", rules, "routes", tmp_path / "r.log", ["--from", "now"])
        relay.start()
        try:
            await _wait_relay(client, ep["id"], "routes")
            await client.post(f"/h/{ep['id']}/x", headers={"x-github-event": "push"}, content=b"gh")
            await client.post(f"/h/{ep['id']}/y", json={"type": "invoice.paid"})
            await client.post(f"/h/{ep['id']}/stripe/z", content=b"st")
            last = await client.post(f"/h/{ep['id']}/nowhere", content=b"none")
            rid = int(last.headers["x-hookscope-request-id"])
            await wait_until(lambda: github.count == 1 and broken.count == 1 and target.count == 1, timeout=20)
            assert github.received[0].target == b"/gh/x" and target.received[0].target == b"/stripe/z"
            for _ in range(300):
                d = (await client.get(f"/api/requests/{rid}/deliveries")).json()["deliveries"]
                if d:
                    break
                await asyncio.sleep(0.02)
            assert d[0]["state"] == "dead" and "no --to rule" in d[0]["error"]
            d = (await client.get(f"/api/requests/{rid - 2}/deliveries")).json()["deliveries"]
            assert d[0]["status"] == 500 and d[0]["state"] == "failed" and d[0]["response_body"] == "boom"
        finally:
            await asyncio.to_thread(relay.stop)
        out = relay.output()
        assert "#1 POST /x -> " in out and " 500 " in out and "forwarded 3 request(s), 1 failed" in out


async def test_relay_requires_token_and_protocol_basics(tmp_path: Path) -> None:
    settings = Settings(db=tmp_path / "h.db", janitor_interval=3600, token="s3cret", relay_ping_interval=0.2)
    async with live_server(settings) as srv:
        auth = {"Authorization": "Bearer s3cret"}
        async with srv.client(headers=auth) as client:
            ep = await create_endpoint(client)
            ws_url = srv.url.replace("http", "ws") + f"/api/endpoints/{ep['id']}/relay?name=t&from=all"
            with pytest.raises(websockets.exceptions.InvalidStatus):
                async with websockets.connect(ws_url, proxy=None):
                    pass
            await client.post(f"/h/{ep['id']}/a", content=b"one")
            async with websockets.connect(ws_url, additional_headers=auth, proxy=None) as ws:
                hello = json.loads(await ws.recv())
                assert hello["type"] == "hello" and hello["acked_id"] == hello["acked_seq"] == 0
                req = json.loads(await ws.recv())
                assert req["type"] == "request" and req["path"] == "/a" and req["body"] == "b25l"
                listed = (await client.get(f"/api/endpoints/{ep['id']}/requests")).json()["requests"]
                assert [(r["id"], r["seq"]) for r in listed] == [(req["id"], req["seq"])]
                ping = json.loads(await ws.recv())
                assert ping == {"type": "ping"}
                await ws.send(json.dumps({"type": "ack", "id": req["id"], "status": 204, "target": "http://x/"}))
                session = srv.app.services.relays.sessions.get(ep["id"], "t")
                await wait_until(lambda: session.acked_seq == req["seq"] and session.in_flight == 0)
                # Acked already: the same ack again names no request still in flight, and changes nothing.
                await ws.send(json.dumps({"type": "ack", "id": req["id"], "status": 500, "target": "http://x/"}))
                # Silent client: after three ping intervals the server gives up on it.
                with pytest.raises(websockets.exceptions.ConnectionClosed):
                    while True:
                        await asyncio.wait_for(ws.recv(), 5)
            relays = (await client.get(f"/api/endpoints/{ep['id']}/relays")).json()["relays"]
            assert relays[0]["acked_id"] == req["seq"] and relays[0]["connected"] is False
            deliveries = (await client.get(f"/api/requests/{req['id']}/deliveries")).json()["deliveries"]
            assert [(d["status"], d["attempts"]) for d in deliveries] == [(204, 1)]  # the repeated ack was ignored
            assert (await client.delete(f"/api/endpoints/{ep['id']}/relays/t")).status_code == 204


async def test_relay_socket_refuses_foreign_origins(server: LiveServer, client: httpx.AsyncClient) -> None:
    # Without a token on loopback, a web page the developer visits could otherwise open the relay socket and read
    # every capture (cross-site websocket hijacking).
    ep = await create_endpoint(client)
    ws_url = server.url.replace("http", "ws") + f"/api/endpoints/{ep['id']}/relay?name=t&from=all"
    for origin in ("http://evil.example", "null"):
        with pytest.raises(websockets.exceptions.InvalidStatus) as info:
            async with websockets.connect(ws_url, origin=origin, proxy=None):  # type: ignore[arg-type]
                pass
        assert info.value.response.status_code == 403
    own = f"http://127.0.0.1:{server.port}"
    async with websockets.connect(ws_url, origin=own, proxy=None) as ws:  # type: ignore[arg-type]
        assert json.loads(await ws.recv())["type"] == "hello"


async def test_relay_socket_refuses_bad_names_and_starts(server: LiveServer, client: httpx.AsyncClient) -> None:
    ep = await create_endpoint(client)
    base = server.url.replace("http", "ws") + f"/api/endpoints/{ep['id']}/relay?"
    cases = {
        "name=t&from=abc": "invalid_from",
        "name=t&from=0": "invalid_from",
        "name=t&from=-1": "invalid_from",
        "name=t&from=99999999999999999999999": "invalid_from",  # beyond SQLite's integers: was an uncaught error
        "name=" + "x" * 101: "invalid_name",
        "name=%00": "invalid_name",
        "from=all": "invalid_name",
    }
    for query, code in cases.items():
        async with websockets.connect(base + query, proxy=None) as ws:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert frame["type"] == "error" and frame["code"] == code, (query, frame)
    async with websockets.connect(base + "name=t&from=1", proxy=None) as ws:
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "hello"


async def test_a_request_whose_body_file_is_gone_becomes_a_dead_relay_delivery(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    """One request the server cannot even read must not end the relay session (it would reconnect into the same
    request for ever): it becomes this relay's dead delivery and the requests behind it still go out."""
    ep = (await create_endpoint(client))["id"]
    ids = []
    for body in (b"first", b"x" * (512 * 1024), b"last"):  # the middle one is spilled to a body file
        resp = await client.post(f"/h/{ep}", content=body)
        ids.append(int(resp.headers["x-hookscope-request-id"]))
    for name in os.listdir(str(server.settings.db) + ".bodies"):
        os.unlink(os.path.join(str(server.settings.db) + ".bodies", name))
    url = f"ws://127.0.0.1:{server.port}/api/endpoints/{ep}/relay?name=r&from=all"
    async with websockets.connect(url, ping_interval=None) as ws:
        assert json.loads(await ws.recv())["type"] == "hello"
        got: list[dict[str, Any]] = []
        while len(got) < 2:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
            got.extend(frame["items"] if frame["type"] == "batch" else [frame] if frame["type"] == "request" else [])
        assert [item["id"] for item in got] == [ids[0], ids[2]]
        await ws.send(json.dumps({"type": "acks", "items": [
            {"type": "ack", "id": i, "target": "http://t/", "status": 200, "attempts": 1} for i in (ids[0], ids[2])
        ]}))

        async def cursor() -> int:
            relays = (await client.get(f"/api/endpoints/{ep}/relays")).json()["relays"]
            return int(relays[0]["acked_id"])

        deadline = asyncio.get_running_loop().time() + 10
        while await cursor() != ids[2]:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.02)
    # The relay's position moves in memory before the pipelined delivery write commits: wait for the row.
    deadline = asyncio.get_running_loop().time() + 10
    while not (dead := (await client.get(f"/api/requests/{ids[1]}/deliveries")).json()["deliveries"]):
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)
    assert [(d["kind"], d["state"]) for d in dead] == [("relay", "dead")]
    assert "could not relay" in dead[0]["error"] and "missing" in dead[0]["error"]
