"""Server-side forwarding against real servers on loopback."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from app.settings import Settings
from tests.delivery.target import RecordingTarget
from tests.support import LOCAL_TLS, LiveServer, ServerProcess, create_endpoint, free_port, live_server, wait_until


async def _deliveries(client: httpx.AsyncClient, rid: int) -> dict[str, Any]:
    data: dict[str, Any] = (await client.get(f"/api/requests/{rid}/deliveries")).json()
    return data


async def _first_delivery(client: httpx.AsyncClient, rid: int, within: float = 10.0) -> dict[str, Any]:
    """Outcomes are written after the target answered (pipelined), so wait for the row to be committed."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        rows = (await _deliveries(client, rid))["deliveries"]
        if rows and rows[0]["state"] != "pending":
            return dict(rows[0])
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"no final delivery for request {rid}")
        await asyncio.sleep(0.02)


async def test_forwards_in_order_byte_exact(client: httpx.AsyncClient, target: RecordingTarget) -> None:
    ep = await create_endpoint(client, forward_targets=[target.url + "/dev"])
    sent = []
    for i in range(100):
        body = bytes([i % 256]) * i + b"\x00\xff"
        resp = await client.post(
            f"/h/{ep['id']}/sub/{i}?q={i}&q=x",
            content=body,
            headers=[(b"x-seq", str(i).encode()), (b"x-dup", b"a"), (b"x-dup", b"b"), (b"x-latin", b"\xe9t\xe9")],
        )
        assert resp.status_code == 200
        sent.append((int(resp.headers["x-hookscope-request-id"]), body))
    await wait_until(lambda: target.count >= 100, timeout=20)
    assert [r.body for r in target.received] == [b for _, b in sent]
    for i, rec in enumerate(target.received):
        assert rec.method == b"POST"
        assert rec.target == f"/dev/sub/{i}?q={i}&q=x".encode()
        names = [n for n, _ in rec.headers]
        assert names[0] == b"host" and rec.header(b"host") == f"127.0.0.1:{target.port}".encode()
        assert [v for n, v in rec.headers if n == b"x-dup"] == [b"a", b"b"]
        assert rec.header(b"x-latin") == b"\xe9t\xe9"
        assert rec.header(b"user-agent") is not None  # httpx's, as captured: passed through, not added by us
        assert names.count(b"content-length") == 1
    rid = sent[-1][0]
    d = await _first_delivery(client, rid)
    assert len((await _deliveries(client, rid))["deliveries"]) == 1
    assert d["kind"] == "forward" and d["state"] == "delivered" and d["status"] == 200 and d["attempts"] == 1
    assert d["response_body"] == "ok" and d["target"] == target.url + "/dev"
    status = (await client.get(f"/api/endpoints/{ep['id']}/forwarding")).json()
    assert status["targets"][0]["pending"] == 0


async def test_target_down_then_up_delivers_all_in_order(tmp_path: Path) -> None:
    settings = Settings(db=tmp_path / "h.db", janitor_interval=3600, forward_retry="50ms,200ms,1h")
    port = free_port()
    async with live_server(settings) as srv, srv.client() as client:
        ep = await create_endpoint(client, forward_targets=[f"http://127.0.0.1:{port}/"])
        for i in range(20):
            await client.post(f"/h/{ep['id']}", content=f"n={i}")
        first = (await client.get(f"/api/endpoints/{ep['id']}/requests", params={"limit": 20})).json()
        head = min(r["id"] for r in first["requests"])

        async def retried() -> bool:
            data = await _deliveries(client, head)
            return bool(data["deliveries"]) and data["deliveries"][0]["attempts"] >= 2

        for _ in range(200):
            if await retried():
                break
            await asyncio.sleep(0.02)
        d = (await _deliveries(client, head))["deliveries"][0]
        assert d["state"] == "pending" and "refused" in d["error"] and d["next_attempt_at"]
        queued = (await _deliveries(client, head + 5))["queued"]
        assert queued == [{"kind": "forward", "target": f"http://127.0.0.1:{port}/"}]
        async with RecordingTarget(port=port) as target:
            await wait_until(lambda: target.count >= 20, timeout=20)
            assert [r.body for r in target.received] == [f"n={i}".encode() for i in range(20)]
        d = await _first_delivery(client, head)
        assert d["state"] == "delivered" and d["attempts"] >= 3 and len(d["history"]) == d["attempts"]


async def test_server_restart_resumes_pending_deliveries(tmp_path: Path) -> None:
    port = free_port()
    server = ServerProcess(tmp_path / "h.db", ["--forward-retry", "50ms,200ms,1h"])
    with server:
        async with httpx.AsyncClient(base_url=server.url, trust_env=False, verify=LOCAL_TLS) as client:
            ep = await create_endpoint(client, forward_targets=[f"http://127.0.0.1:{port}/in"])
            for i in range(10):
                assert (await client.post(f"/h/{ep['id']}", content=f"r{i}")).status_code == 200
        server.kill9()
        async with RecordingTarget(port=port) as target:
            server.start()
            await wait_until(lambda: target.count >= 10, timeout=20)
            assert [r.body for r in target.received] == [f"r{i}".encode() for i in range(10)]


async def test_dead_delivery_can_be_retried_by_hand(tmp_path: Path) -> None:
    settings = Settings(db=tmp_path / "h.db", janitor_interval=3600, forward_retry="10ms,20ms,100ms")
    port = free_port()
    async with live_server(settings) as srv, srv.client() as client:
        ep = await create_endpoint(client, forward_targets=[f"http://127.0.0.1:{port}"])
        rid = int((await client.post(f"/h/{ep['id']}", content=b"x")).headers["x-hookscope-request-id"])
        for _ in range(300):
            data = await _deliveries(client, rid)
            if data["deliveries"] and data["deliveries"][0]["state"] == "dead":
                break
            await asyncio.sleep(0.02)
        d = data["deliveries"][0]
        assert d["state"] == "dead" and d["attempts"] >= 2
        async with RecordingTarget(port=port) as target:
            resp = await client.post(f"/api/deliveries/{d['id']}/retry")
            assert resp.status_code == 200, resp.text
            assert resp.json()["state"] == "delivered" and resp.json()["attempts"] == d["attempts"] + 1
            assert target.received[0].body == b"x"


async def test_4xx_is_final_and_not_retried(client: httpx.AsyncClient) -> None:
    async with RecordingTarget(lambda r: (404, [], b"nope")) as target:
        ep = await create_endpoint(client, forward_targets=[target.url])
        rid = int((await client.post(f"/h/{ep['id']}", content=b"a")).headers["x-hookscope-request-id"])
        await client.post(f"/h/{ep['id']}", content=b"b")
        await wait_until(lambda: target.count >= 2, timeout=10)
        d = await _first_delivery(client, rid)
        assert d["state"] == "failed" and d["status"] == 404 and d["attempts"] == 1


async def test_ssrf_guard_refuses_forward_and_replay(server: LiveServer, client: httpx.AsyncClient) -> None:
    async def fake(host: str, port: int) -> list[str]:
        return ["10.9.8.7"]

    server.app.services.sender.resolver = fake
    ep = await create_endpoint(client, forward_targets=["http://10.0.0.1:9/x"])
    rid = int((await client.post(f"/h/{ep['id']}", content=b"a")).headers["x-hookscope-request-id"])
    d = await _first_delivery(client, rid)
    assert d["state"] == "failed" and "refused" in d["error"] and "--forward-allow" in d["error"]
    for url in ("http://169.254.169.254/latest/meta-data/", "http://internal.example:8080/"):
        resp = await client.post(f"/api/requests/{rid}/replay", json={"target": url})
        assert resp.status_code == 201
        assert resp.json()["state"] == "failed" and "refused" in resp.json()["error"]
    assert "10.9.8.7" in resp.json()["error"]  # the resolved address was what the guard judged


async def test_forward_allow_lets_an_operator_widen_the_guard(tmp_path: Path, target: RecordingTarget) -> None:
    settings = Settings(db=tmp_path / "h.db", janitor_interval=3600, forward_allow=("dev.example",))

    async def fake(host: str, port: int) -> list[str]:
        return ["127.0.0.1"] if host == "dev.example" else []

    async with live_server(replace(settings)) as srv, srv.client() as client:
        srv.app.services.sender.resolver = fake
        ep = await create_endpoint(client)
        rid = int((await client.post(f"/h/{ep['id']}", content=b"z")).headers["x-hookscope-request-id"])
        resp = await client.post(f"/api/requests/{rid}/replay", json={"target": f"http://dev.example:{target.port}/"})
        assert resp.json()["state"] == "delivered"
        assert target.received[0].header(b"host") == f"dev.example:{target.port}".encode()
