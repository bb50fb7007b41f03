"""Passthrough and capture across `hookscope serve --db postgresql://...` processes on one database: the provider
hits instance A while the relay is connected to instance B (or B holds the forward target's lease), and A's sender
gets the dev server's answer; an answer whose record was cut is never passed on as if complete; an endpoint
created on A captures on B at once (app/ingest/passthrough.py, app/store/postgres/lookup.py, docs/forwarding.md).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.delivery.relayproc import RelayProcess, wait_relay
from tests.delivery.target import Received, RecordingTarget
from tests.store.postgres.processes import start_instance, stop_instances
from tests.support import ServerProcess, create_endpoint, server_client, wait_until

pytestmark = pytest.mark.timeout(240)

# Over what a delivery record keeps of a body (64 KiB), under what local passthrough returns (1 MiB).
BIG = 100 * 1024


def _dev_server(r: Received) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """A distinctive answer, so the sender can only have got it from the dev server; /big answers BIG bytes."""
    if r.target.endswith(b"/big"):
        return 203, [(b"x-dev", b"big")], b"B" * BIG
    return 209, [(b"content-type", b"text/plain"), (b"x-dev", b"yes")], b"dev:" + r.body


def _client(srv: ServerProcess) -> httpx.AsyncClient:
    # The timeout bounds a wait that must not happen (passthrough deadlines below are 30 s).
    return server_client(srv, timeout=20)


async def _instance(client: httpx.AsyncClient, ep: str) -> str:
    instance: str = (await client.get(f"/api/endpoints/{ep}/forwarding")).json()["instance"]
    return instance


async def _known_on(client: httpx.AsyncClient, ep: str) -> None:
    for _ in range(1000):
        if (await client.get(f"/api/endpoints/{ep}")).status_code == 200:
            return
        await asyncio.sleep(0.02)  # another process's state: nothing to wait on from here but polling
    raise TimeoutError(f"{client.base_url} never learnt endpoint {ep}")


async def test_a_relay_on_another_instance_answers_the_sender(pg_dsn: str, tmp_path: Path) -> None:
    servers = [await start_instance(pg_dsn), await start_instance(pg_dsn)]
    relay: RelayProcess | None = None
    try:
        async with _client(servers[0]) as a, _client(servers[1]) as b, RecordingTarget(_dev_server) as dev:
            ep = (await create_endpoint(a, passthrough={"timeout": 30},
                                        response={"status": 202, "body": "configured"}))["id"]
            await _known_on(b, ep)
            relay = RelayProcess(f"{servers[1].url}/h/{ep}", [dev.url], "laptop", tmp_path / "relay.log").start()
            await wait_relay(b, ep, "laptop")
            (row,) = (await a.get(f"/api/endpoints/{ep}/relays")).json()["relays"]
            assert not row["connected"] and row["owner"] == await _instance(b, ep)  # on B, as A sees it

            resp = await a.post(f"/h/{ep}/slack", content=b"challenge-1")
            assert resp.status_code == 209 and resp.text == "dev:challenge-1", resp.text
            assert resp.headers["x-dev"] == "yes" and resp.headers["x-hookscope-request-id"]
            assert dev.received[-1].target == b"/slack"

            # An answer over 64 KiB: B's delivery record keeps only the first 64 KiB, so A must not pass it on
            # (the configured response at the deadline); B, whose relay it is, passes it whole.
            await a.patch(f"/api/endpoints/{ep}", json={"passthrough": 2})
            resp = await a.post(f"/h/{ep}/big", content=b"x")
            assert resp.status_code == 202 and resp.text == "configured"
            rid = resp.headers["x-hookscope-request-id"]
            await wait_until(lambda: dev.count >= 2, timeout=30)  # still delivered
            deliveries: list[dict[str, object]] = []
            for _ in range(500):  # the relay's ack is recorded by a pipelined write
                deliveries = (await a.get(f"/api/requests/{rid}/deliveries")).json()["deliveries"]
                if deliveries:
                    break
                await asyncio.sleep(0.02)
            (d,) = deliveries
            assert d["status"] == 203 and d["response_truncated"] and d["response_size"] == BIG

            await _known_on(b, ep)
            await b.patch(f"/api/endpoints/{ep}", json={"passthrough": 30})
            resp = await b.post(f"/h/{ep}/big", content=b"y")
            assert resp.status_code == 203 and resp.content == b"B" * BIG
    finally:
        if relay is not None and relay.proc is not None:
            await asyncio.to_thread(relay.stop)
        await stop_instances(servers)


async def test_a_forward_target_held_by_another_instance_answers_the_sender(pg_dsn: str) -> None:
    servers = [await start_instance(pg_dsn)]
    try:
        async with RecordingTarget(_dev_server) as dev, _client(servers[0]) as b:
            # B alone takes the target's lease; A starts after, and finds it held.
            ep = (await create_endpoint(b, forward_targets=[dev.url + "/fwd"], passthrough={"timeout": 30},
                                        response={"status": 202, "body": "configured"}))["id"]
            b_id = await _instance(b, ep)
            for _ in range(1000):
                (target,) = (await b.get(f"/api/endpoints/{ep}/forwarding")).json()["targets"]
                if target["owner"] == b_id:
                    break
                await asyncio.sleep(0.02)  # another process's state: nothing to wait on but polling
            assert target["owner"] == b_id
            servers.append(await start_instance(pg_dsn))
            async with _client(servers[1]) as a:
                assert await _instance(a, ep) != b_id
                for i in range(3):
                    resp = await a.post(f"/h/{ep}/x", content=f"fwd-{i}".encode())
                    assert resp.status_code == 209 and resp.text == f"dev:fwd-{i}", resp.text
                    assert resp.headers["x-dev"] == "yes"
                (target,) = (await a.get(f"/api/endpoints/{ep}/forwarding")).json()["targets"]
                assert target["owner"] == b_id  # B delivered them all
    finally:
        await stop_instances(servers)


async def test_passthrough_without_any_deliverer_answers_at_once(pg_dsn: str) -> None:
    servers = [await start_instance(pg_dsn), await start_instance(pg_dsn)]
    try:
        async with _client(servers[0]) as a:
            ep = (await create_endpoint(a, passthrough={"timeout": 30},
                                        response={"status": 202, "body": "configured"}))["id"]
            # No target, no relay on any instance: waiting 30 s would trip the client's 20 s timeout.
            resp = await a.post(f"/h/{ep}", content=b"x")
            assert resp.status_code == 202 and resp.text == "configured"
    finally:
        await stop_instances(servers)


async def test_an_endpoint_created_on_one_instance_captures_on_another_at_once(pg_dsn: str) -> None:
    servers = [await start_instance(pg_dsn), await start_instance(pg_dsn)]
    try:
        async with _client(servers[0]) as a, _client(servers[1]) as b:
            for i in range(20):
                # No wait in between: B may not have heard of it yet; it must look it up, not answer 404.
                ep = (await create_endpoint(a, name=f"new-{i}"))["id"]
                resp = await b.post(f"/h/{ep}", content=b"first")
                assert resp.status_code == 200, resp.text
            assert (await b.post("/h/AAAAAAAAAAAAAAAAAAAAAA", content=b"x")).status_code == 404
    finally:
        await stop_instances(servers)
