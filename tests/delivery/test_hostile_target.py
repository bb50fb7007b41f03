"""A hostile target against every deliverer: server-side forwarding, replay, and `hookscope forward`.

For each bad answer: a delivery row that is failed or dead with a readable reason; the worker goes on and
delivers the next request; and the target received each request exactly as many times as attempts were
recorded (nothing re-sent silently, no worker restarting from its cursor). Plus one regression test per worker
for an unexpected exception while handling one item.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.server import ServerConnection, serve

from app.client.relay import Options, RelayClient, Rule
from app.delivery.outgoing import Outgoing, build_outgoing, parse_target
from app.delivery.wire import HttpClient, ProtocolError
from app.settings import Settings
from tests.delivery.hostile_target import HostileTarget
from tests.delivery.relayproc import RelayProcess, wait_relay
from tests.delivery.target import RecordingTarget
from tests.support import LiveServer, create_endpoint, live_server, wait_until

# case -> words the recorded reason must contain
REASONS = {
    "negative-length": "malformed response head: bad Content-Length",
    "negative-chunk": "malformed 200 answer: illegal chunk header",
    "bad-chunk": "malformed 200 answer: illegal chunk header",
    "huge-head": "response head is larger than 64 KiB",
    "endless-body": "body larger than 8 MiB",
    "endless-continue": "more than 8 interim (1xx) answers",
    "switching": "101 Switching Protocols",
    "garbage": "malformed response head: illegal status line",
    "close": "closed the connection without answering",
    "short-body": "closed the connection before the end of its 200 answer",
    "conflicting-length": "conflicting Content-Length",
    "te-and-cl": "both Transfer-Encoding and Content-Length",
    "silent": "timed out after 1 s waiting for the answer",
    "trickle": "timed out after 1 s reading the body of its 200 answer",
}
SLOW = {"silent", "trickle"}  # bounded only by the per-attempt deadline


@pytest.fixture
async def hostile() -> AsyncIterator[HostileTarget]:
    async with HostileTarget() as t:
        yield t


@pytest.fixture
async def hostile_server(tmp_path: Path) -> AsyncIterator[LiveServer]:
    # A short retry schedule (several recorded attempts, then dead) and a 1 s per-attempt deadline.
    settings = Settings(db=tmp_path / "h.db", janitor_interval=3600, forward_retry="10ms,20ms,100ms",
                        forward_timeout=1.0)
    async with live_server(settings) as srv:
        yield srv


async def _capture(client: httpx.AsyncClient, ep_id: str, case: str) -> int:
    resp = await client.post(f"/h/{ep_id}/{case}", content=case.encode())
    assert resp.status_code == 200
    return int(resp.headers["x-hookscope-request-id"])


async def _final_delivery(client: httpx.AsyncClient, rid: int, kind: str, within: float = 30.0) -> dict[str, Any]:
    """The request's delivery of `kind` once it is no longer pending (outcomes are pipelined writes)."""
    found: list[dict[str, Any]] = []

    async def poll() -> None:
        while True:
            rows = (await client.get(f"/api/requests/{rid}/deliveries")).json()["deliveries"]
            found[:] = [r for r in rows if r["kind"] == kind and r["state"] != "pending"]
            if found:
                return
            await asyncio.sleep(0.02)

    async with asyncio.timeout(within):
        await poll()
    return found[0]


# the client alone -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(REASONS))
async def test_every_bad_answer_is_one_failed_attempt(hostile: HostileTarget, case: str) -> None:
    client = HttpClient()
    out = build_outgoing(parse_target(f"{hostile.url}/{case}"), "POST", "", "", [], b"x")
    try:
        with pytest.raises((ProtocolError, TimeoutError)) as info:
            await client.send(out, deadline=1.0)
        assert REASONS[case] in str(info.value)
        assert hostile.count(case) == 1
        # The client is still fine, and never reuses the connection the bad answer came on.
        ok = await client.send(build_outgoing(parse_target(f"{hostile.url}/ok"), "POST", "", "", [], b"x"))
        assert ok.status == 200 and hostile.hits[-1].conn == 2
    finally:
        await client.aclose()


# server-side forwarding -------------------------------------------------------------------------------------


async def test_forwarding_records_every_bad_answer_and_goes_on(
    hostile_server: LiveServer, hostile: HostileTarget
) -> None:
    async with hostile_server.client() as client:
        ep = await create_endpoint(client, forward_targets=[hostile.url])
        ids = {case: await _capture(client, ep["id"], case) for case in [*REASONS, "ok"]}
        for case, reason in REASONS.items():
            d = await _final_delivery(client, ids[case], "forward")
            assert d["state"] in ("failed", "dead") and d["status"] is None, (case, d)
            assert reason in d["error"], (case, d["error"])
            # Retries are recorded attempts; a restarted worker or a silent re-send would make these differ.
            assert hostile.count(case) == d["attempts"] == len(d["history"]), (case, d["attempts"])
        d = await _final_delivery(client, ids["ok"], "forward")
        assert d["state"] == "delivered" and d["status"] == 200 and d["response_body"] == "ok ok"
        assert hostile.count("ok") == 1
        status = (await client.get(f"/api/endpoints/{ep['id']}/forwarding")).json()["targets"][0]
        assert status["pending"] == 0 and status["acked_id"] == ids["ok"]


async def test_forward_worker_isolates_unexpected_errors(tmp_path: Path, target: RecordingTarget) -> None:
    async with live_server(Settings(db=tmp_path / "h.db", janitor_interval=3600)) as srv, srv.client() as client:
        sender = srv.app.services.sender
        attempt, send = sender.attempt, sender.client.send

        async def buggy_attempt(out: Outgoing) -> Any:
            if out.body == b"boom-worker":
                raise RuntimeError("a bug in the worker's path")
            return await attempt(out)

        async def buggy_send(out: Outgoing, deadline: float = 30.0, keep: int = 65536) -> Any:
            if out.body == b"boom-sender":
                raise ValueError("a bug in the client")
            return await send(out, deadline, keep)

        sender.attempt = buggy_attempt  # type: ignore[method-assign]
        sender.client.send = buggy_send  # type: ignore[method-assign]
        ep = await create_endpoint(client, forward_targets=[target.url])
        ids = [int((await client.post(f"/h/{ep['id']}", content=body)).headers["x-hookscope-request-id"])
               for body in (b"one", b"boom-worker", b"boom-sender", b"two")]
        last = await _final_delivery(client, ids[3], "forward")
        assert last["state"] == "delivered"
        worker = await _final_delivery(client, ids[1], "forward")
        assert worker["state"] == "dead" and "internal error while forwarding" in worker["error"]
        assert "a bug in the worker's path" in worker["error"]
        inner = await _final_delivery(client, ids[2], "forward")
        assert inner["state"] == "failed" and inner["attempts"] == 1
        assert "internal error while sending: ValueError: a bug in the client" in inner["error"]
        # Each good request went out once: the worker did not restart from its cursor.
        assert [r.body for r in target.received] == [b"one", b"two"]


# replay -----------------------------------------------------------------------------------------------------


async def test_replay_records_every_bad_answer_and_replay_many_goes_on(
    hostile_server: LiveServer, hostile: HostileTarget
) -> None:
    async with hostile_server.client() as client:
        ep = await create_endpoint(client)
        ids = {case: await _capture(client, ep["id"], case) for case in [*REASONS, "ok"]}
        for case, reason in REASONS.items():
            resp = await client.post(f"/api/requests/{ids[case]}/replay", json={"target": hostile.url})
            assert resp.status_code == 201, resp.text
            d = resp.json()
            assert d["kind"] == "replay" and d["state"] == "failed" and reason in d["error"], (case, d)
            assert hostile.count(case) == d["attempts"] == 1
        many = await client.post(f"/api/endpoints/{ep['id']}/replay", json={"target": hostile.url})
        assert many.status_code == 200, many.text
        states = {d["request_id"]: d["state"] for d in many.json()["deliveries"]}
        assert states == {rid: "delivered" if case == "ok" else "failed" for case, rid in ids.items()}
        assert all(hostile.count(case) == (1 if case == "ok" else 2) for case in ids)


async def test_replay_many_isolates_unexpected_errors(client: httpx.AsyncClient, server: LiveServer,
                                                      target: RecordingTarget) -> None:
    attempt = server.app.services.sender.attempt

    async def buggy_attempt(out: Outgoing) -> Any:
        if out.body == b"boom":
            raise RuntimeError("a bug")
        return await attempt(out)

    server.app.services.sender.attempt = buggy_attempt  # type: ignore[method-assign]
    ep = await create_endpoint(client)
    for body in (b"a", b"boom", b"b"):
        await client.post(f"/h/{ep['id']}", content=body)
    resp = await client.post(f"/api/endpoints/{ep['id']}/replay", json={"target": target.url})
    assert resp.status_code == 200, resp.text
    rows = resp.json()["deliveries"]
    assert [d["state"] for d in rows] == ["delivered", "failed", "delivered"]
    assert "internal error while replaying: RuntimeError: a bug" in rows[1]["error"]
    assert [r.body for r in target.received] == [b"a", b"b"]


# `hookscope forward` ----------------------------------------------------------------------------------------


async def test_relay_client_process_records_every_bad_answer_and_keeps_running(
    hostile_server: LiveServer, hostile: HostileTarget, tmp_path: Path
) -> None:
    cases = [c for c in REASONS if c not in SLOW]  # the relay's deadline is 30 s; see the in-process test below
    async with hostile_server.client() as client:
        ep = await create_endpoint(client)
        relay = RelayProcess(f"{hostile_server.url}/h/{ep['id']}", [hostile.url], "hostile", tmp_path / "r.log",
                             ["--retry-for", "300ms"])
        relay.start()
        try:
            await wait_relay(client, ep["id"], "hostile")
            ids = {case: await _capture(client, ep["id"], case) for case in [*cases, "ok"]}
            d = await _final_delivery(client, ids["ok"], "relay", within=60)
            assert d["state"] == "delivered" and d["status"] == 200 and hostile.count("ok") == 1
            for case in cases:
                d = await _final_delivery(client, ids[case], "relay")
                assert d["state"] == "dead" and d["status"] is None and REASONS[case] in d["error"], (case, d)
                assert hostile.count(case) == d["attempts"], (case, d["attempts"])
            assert relay.proc is not None and relay.proc.poll() is None  # still running
        finally:
            await asyncio.to_thread(relay.stop)
    out = relay.output()
    for case in cases:
        assert f"#{ids[case]} POST /{case} -> {hostile.url} error: " in out, case
    assert f"#{ids['ok']} POST /ok -> {hostile.url} 200" in out
    assert f"forwarded 1 request(s), {len(cases)} failed" in out


class FakeRelayServer:
    """The server side of the relay protocol, scripted: sends the given frames, collects the client's acks."""

    def __init__(self, frames: list[str]) -> None:
        self.frames = frames
        self.acks: dict[int, dict[str, Any]] = {}
        self.port = 0

    async def handler(self, ws: ServerConnection) -> None:
        await ws.send(json.dumps({"type": "hello", "endpoint": "X", "relay": "t", "acked_id": 0, "acked_seq": 0,
                                  "ping_interval": 30}))
        for frame in self.frames:
            await ws.send(frame)
        async for raw in ws:
            msg = json.loads(raw)
            for item in [msg] if msg["type"] == "ack" else msg.get("items", []):
                self.acks[item["id"]] = item


def _request_frame(rid: int, case: str, **extra: Any) -> str:
    frame = {"type": "request", "id": rid, "seq": rid, "received_at": 0, "method": "POST", "path": f"/{case}",
             "query": "", "headers": [["x-case", case]], "body": base64.b64encode(case.encode()).decode(),
             "want_response": False}
    return json.dumps({**frame, **extra})


async def test_relay_client_isolates_bad_items_and_times_out(hostile: HostileTarget) -> None:
    frames = [
        "this is not JSON",
        json.dumps({"type": "request", "method": "POST"}),  # no id: nothing to ack, ignored
        _request_frame(1, "ok", headers=5),  # unusable: acked as this request's failure
        _request_frame(2, "silent"),
        _request_frame(3, "trickle"),
        _request_frame(4, "negative-length"),
        _request_frame(5, "ok"),
    ]
    fake = FakeRelayServer(frames)
    out = io.StringIO()
    async with serve(fake.handler, "127.0.0.1", 0) as ws_server:
        port = ws_server.sockets[0].getsockname()[1]  # type: ignore[index]
        options = Options(f"http://127.0.0.1:{port}/h/X", [Rule(hostile.url)], name="t", retry_for=0.0, timeout=1.0)
        relay = RelayClient(options, out=out)
        task = asyncio.create_task(relay.run())
        try:
            await wait_until(lambda: len(fake.acks) == 5 or task.done(), timeout=30)
            assert not task.done()  # nothing here ends the relay
        finally:
            relay.stopping.set()
            assert await asyncio.wait_for(task, 15) == 0
    acks = fake.acks
    assert acks[1]["status"] is None and "internal error in the relay: TypeError" in acks[1]["error"]
    assert REASONS["silent"] in acks[2]["error"] and REASONS["trickle"] in acks[3]["error"]
    assert REASONS["negative-length"] in acks[4]["error"]
    assert acks[5]["status"] == 200 and acks[5]["error"] is None
    assert [h.case for h in hostile.hits] == ["silent", "trickle", "negative-length", "ok"]
    text = out.getvalue()
    assert "ignored a frame from the server that is not a JSON object" in text
    assert "ignored a request the relay could not read" in text
    assert "#4 POST /negative-length -> " in text and "forwarded 1 request(s), 4 failed" in text


# the relay server's acks ------------------------------------------------------------------------------------


async def test_relay_server_records_an_unusable_ack_and_goes_on(server: LiveServer, client: httpx.AsyncClient) -> None:
    ep = await create_endpoint(client)
    first, second = [await _capture(client, ep["id"], name) for name in ("a", "b")]
    ws_url = server.url.replace("http", "ws") + f"/api/endpoints/{ep['id']}/relay?name=t&from=all"
    async with websockets.connect(ws_url, proxy=None) as ws:
        assert json.loads(await ws.recv())["type"] == "hello"
        got: list[int] = []
        while len(got) < 2:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
            got += [i["id"] for i in frame["items"]] if frame["type"] == "batch" else \
                [frame["id"]] if frame["type"] == "request" else []
        assert got == [first, second]
        await ws.send(json.dumps({"type": "acks", "items": [
            {"type": "ack", "id": first, "status": "two hundred", "target": "http://x/"},
            {"type": "ack", "id": second, "status": 200, "target": "http://x/", "attempts": 1},
        ]}))
        session = server.app.services.relays.sessions.get(ep["id"], "t")
        await wait_until(lambda: session.acked_seq == second and session.in_flight == 0)
    bad = await _final_delivery(client, first, "relay")
    assert bad["state"] == "dead" and "unusable ack" in bad["error"] and bad["relay"] == "t"
    good = await _final_delivery(client, second, "relay")
    assert good["state"] == "delivered" and good["status"] == 200
    relays = (await client.get(f"/api/endpoints/{ep['id']}/relays")).json()["relays"]
    assert relays[0]["acked_id"] == second and relays[0]["pending"] == 0


with contextlib.suppress(ImportError):  # keep the module importable without pytest-timeout's marker
    pytestmark = pytest.mark.timeout(180)
