"""Passthrough: the dev server's answer goes back to the sender when it comes in time."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from app.ingest.passthrough import response_headers_for_sender
from tests.delivery.relayproc import RelayProcess
from tests.delivery.target import Received, RecordingTarget
from tests.support import LiveServer, create_endpoint, wait_until


def _challenge(r: Received) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    return 201, [(b"content-type", b"text/plain"), (b"x-dev", b"yes")], b"challenge=" + r.body


async def test_passthrough_returns_the_targets_answer_in_time(client: httpx.AsyncClient) -> None:
    async with RecordingTarget(_challenge) as target:
        ep = await create_endpoint(
            client, forward_targets=[target.url], passthrough={"timeout": 3},
            response={"status": 202, "body": "configured"},
        )
        resp = await client.post(f"/h/{ep['id']}/slack", content=b"abc")
        assert resp.status_code == 201 and resp.text == "challenge=abc"
        assert resp.headers["x-dev"] == "yes" and resp.headers["x-hookscope-request-id"]

        target.delay = 1.5  # now too slow for a 0.3 s deadline: the configured response goes out
        await client.patch(f"/api/endpoints/{ep['id']}", json={"passthrough": 0.3})
        started = time.monotonic()
        resp = await client.post(f"/h/{ep['id']}/slack", content=b"late")
        assert resp.status_code == 202 and resp.text == "configured"
        assert time.monotonic() - started < 1.2
        await wait_until(lambda: target.count >= 2, timeout=10)  # still delivered
        assert target.received[-1].body == b"late"


async def test_passthrough_through_a_relay(
    server: LiveServer, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    async with RecordingTarget(_challenge) as target:
        ep = await create_endpoint(client, passthrough=True)
        relay = RelayProcess(f"{server.url}/h/{ep['id']}", [target.url], "pt", tmp_path / "r.log")
        relay.start()
        try:
            await wait_until(lambda: server.app.services.relays.sessions.connected(ep["id"]), timeout=20)
            resp = await client.get(f"/h/{ep['id']}/meta?hub.challenge=42")
            assert resp.status_code == 201 and resp.text == "challenge="
            assert target.received[0].target == b"/meta?hub.challenge=42"
        finally:
            await asyncio.to_thread(relay.stop)


async def test_without_a_deliverer_passthrough_answers_at_once(client: httpx.AsyncClient) -> None:
    ep = await create_endpoint(client, passthrough={"timeout": 5})
    started = time.monotonic()
    resp = await client.post(f"/h/{ep['id']}", content=b"x")
    assert resp.status_code == 200 and time.monotonic() - started < 1.0


def test_response_headers_drop_framing_and_hop_by_hop() -> None:
    got = response_headers_for_sender([
        (b"content-type", b"text/plain"), (b"content-length", b"3"), (b"connection", b"close"),
        (b"date", b"x"), (b"x-a", b"1"), (b"transfer-encoding", b"chunked"),
    ])
    assert got == [(b"content-type", b"text/plain"), (b"x-a", b"1")]
