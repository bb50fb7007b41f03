"""The inspector's live websocket (app/web/live.py) against a real uvicorn server: every frame of docs/events.md,
in commit order."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from app.events.types import RequestAdded
from app.settings import Settings
from app.web.auth import session_value
from tests.delivery.target import RecordingTarget
from tests.support import LiveServer, create_endpoint, live_server, wait_until


def ws_url(server: LiveServer, endpoint_id: str, after: int | None = None) -> str:
    query = "" if after is None else f"?after={after}"
    return f"ws://127.0.0.1:{server.port}/api/endpoints/{endpoint_id}/live{query}"


async def frame(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    return data


async def post(client: httpx.AsyncClient, endpoint_id: str, n: int, tag: str = "r") -> list[int]:
    ids = []
    for i in range(n):
        resp = await client.post(f"/h/{endpoint_id}/{tag}{i}", content=f"body {tag}{i}")
        assert resp.status_code == 200
        ids.append(resp.json()["request_id"])
    return ids


async def collect_ids(ws: ClientConnection, want: set[int], seen: list[int], timeout: float = 10.0) -> None:
    """Read frames until every id in `want` arrived; every request id received is appended to `seen`."""
    deadline = time.monotonic() + timeout
    while not want <= set(seen):
        f = await frame(ws, max(0.1, deadline - time.monotonic()))
        if f["type"] == "requests":
            seen.extend(r["id"] for r in f["requests"])


async def test_backfill_then_stream_in_order_without_gaps_across_reconnect(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    ep = await create_endpoint(client)
    before = await post(client, ep["id"], 25, "old")
    seen: list[int] = []
    async with websockets.connect(ws_url(server, ep["id"], 0), proxy=None) as ws:
        hello = await frame(ws)
        assert hello == {"type": "hello", "last_id": 0}
        # Captures racing the backfill: each must arrive exactly once, before or after "synced".
        racing = asyncio.create_task(post(client, ep["id"], 25, "race"))
        synced = None
        while synced is None:
            f = await frame(ws)
            if f["type"] == "requests":
                assert all(r["endpoint_id"] == ep["id"] and "headers" not in r for r in f["requests"])
                seen.extend(r["id"] for r in f["requests"])
            elif f["type"] == "synced":
                synced = f
        assert set(before) <= set(seen)
        assert synced["last_id"] == max(seen)
        race_ids = await racing
        await collect_ids(ws, set(race_ids), seen)
    # Sent while no page was connected: the reconnect with after=<last seen> backfills exactly these.
    offline = await post(client, ep["id"], 7, "offline")
    async with websockets.connect(ws_url(server, ep["id"], max(seen)), proxy=None) as ws:
        assert (await frame(ws))["type"] == "hello"
        await collect_ids(ws, set(offline), seen)
        live = await post(client, ep["id"], 3, "live")
        await collect_ids(ws, set(live), seen)
    expected = before + race_ids + offline + live
    assert seen == sorted(seen), "ids must arrive in ascending order"
    assert len(seen) == len(set(seen)), "no duplicates"
    assert sorted(seen) == sorted(expected), "no gaps"


async def test_without_after_streams_only_new_requests(server: LiveServer, client: httpx.AsyncClient) -> None:
    ep = await create_endpoint(client)
    old = await post(client, ep["id"], 3)
    async with websockets.connect(ws_url(server, ep["id"]), proxy=None) as ws:
        hello = await frame(ws)
        assert hello["last_id"] >= max(old)
        assert (await frame(ws)) == {"type": "synced", "last_id": hello["last_id"]}
        new = await post(client, ep["id"], 1, "new")
        f = await frame(ws)
        assert f["type"] == "requests" and [r["id"] for r in f["requests"]] == new


async def test_deletes_and_clears_reach_open_pages_in_order(server: LiveServer, client: httpx.AsyncClient) -> None:
    ep = await create_endpoint(client)
    first = await post(client, ep["id"], 2)
    async with websockets.connect(ws_url(server, ep["id"]), proxy=None) as ws:
        hello = await frame(ws)
        assert (await frame(ws)) == {"type": "synced", "last_id": hello["last_id"]}
        assert (await client.delete(f"/api/requests/{first[0]}")).status_code == 204
        assert (await frame(ws)) == {"type": "deleted", "ids": [first[0]], "reason": "deleted"}
        later = await post(client, ep["id"], 1, "later")
        f = await frame(ws)
        assert [r["id"] for r in f["requests"]] == later
        assert (await client.delete(f"/api/endpoints/{ep['id']}/requests")).json() == {"deleted": 2}
        assert (await frame(ws)) == {"type": "cleared"}


async def test_other_endpoints_requests_are_not_streamed(server: LiveServer, client: httpx.AsyncClient) -> None:
    ep = await create_endpoint(client)
    other = await create_endpoint(client)
    async with websockets.connect(ws_url(server, ep["id"], 0), proxy=None) as ws:
        await frame(ws)
        assert (await frame(ws))["type"] == "synced"
        await post(client, other["id"], 2)
        mine = await post(client, ep["id"], 1)
        f = await frame(ws)
        assert [r["id"] for r in f["requests"]] == mine


async def test_after_beyond_newest_id_sends_reset_then_streams(server: LiveServer, client: httpx.AsyncClient) -> None:
    ep = await create_endpoint(client)
    await post(client, ep["id"], 2)
    async with websockets.connect(ws_url(server, ep["id"], 10**9), proxy=None) as ws:
        hello = await frame(ws)
        assert hello["type"] == "hello" and hello["last_id"] < 10**9
        assert (await frame(ws)) == {"type": "reset"}
        assert (await frame(ws))["type"] == "synced"
        new = await post(client, ep["id"], 1)
        f = await frame(ws)
        assert [r["id"] for r in f["requests"]] == new


async def test_ping_pong(server: LiveServer, client: httpx.AsyncClient) -> None:
    ep = await create_endpoint(client)
    async with websockets.connect(ws_url(server, ep["id"]), proxy=None) as ws:
        await frame(ws)
        await frame(ws)
        await ws.send(json.dumps({"type": "ping"}))
        assert (await frame(ws)) == {"type": "pong"}


async def test_unknown_endpoint_closes_4404(server: LiveServer) -> None:
    async with websockets.connect(ws_url(server, "nope"), proxy=None) as ws:
        with pytest.raises(websockets.exceptions.ConnectionClosed) as info:
            await frame(ws)
    assert info.value.rcvd is not None and info.value.rcvd.code == 4404


async def test_bad_after_closes_4400(server: LiveServer, client: httpx.AsyncClient) -> None:
    ep = await create_endpoint(client)
    for bad in ("x", "-1", str(2**64)):
        async with websockets.connect(ws_url(server, ep["id"]) + f"?after={bad}", proxy=None) as ws:
            with pytest.raises(websockets.exceptions.ConnectionClosed) as info:
                await frame(ws)
        assert info.value.rcvd is not None and info.value.rcvd.code == 4400


async def test_foreign_origin_is_refused_own_origin_accepted(server: LiveServer, client: httpx.AsyncClient) -> None:
    ep = await create_endpoint(client)
    for origin in ("http://evil.example", f"http://127.0.0.1:{server.port}.evil.example", "null"):
        async with websockets.connect(ws_url(server, ep["id"]), origin=origin, proxy=None) as ws:  # type: ignore[arg-type]
            with pytest.raises(websockets.exceptions.ConnectionClosed) as info:
                await frame(ws)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1008, origin
    own = f"http://127.0.0.1:{server.port}"
    async with websockets.connect(ws_url(server, ep["id"]), origin=own, proxy=None) as ws:  # type: ignore[arg-type]
        assert (await frame(ws))["type"] == "hello"


async def test_token_required_when_set(tmp_path: Path) -> None:
    settings = Settings(db=tmp_path / "t.db", janitor_interval=3600, token="s3cret")
    async with live_server(settings) as srv, srv.client(headers={"authorization": "Bearer s3cret"}) as client:
        ep = await create_endpoint(client)
        url = ws_url(srv, ep["id"])
        for headers in ({}, {"authorization": "Bearer wrong"}, {"cookie": "hookscope_session=forged"}):
            with pytest.raises(websockets.exceptions.InvalidStatus) as info:
                async with websockets.connect(url, additional_headers=headers, proxy=None):
                    pass
            assert info.value.response.status_code == 403
        good = (
            {"authorization": "Bearer s3cret"},
            {"cookie": f"hookscope_session={session_value('s3cret')}"},
        )
        for headers in good:
            async with websockets.connect(url, additional_headers=headers, proxy=None) as ws:
                assert (await frame(ws))["type"] == "hello"


async def test_lagging_subscriber_is_closed_1013_without_slowing_capture(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    ep = await create_endpoint(client)
    [rid] = await post(client, ep["id"], 1)
    sample = await server.app.services.store.get_request(rid)
    assert sample is not None
    bus = server.app.services.bus
    async with websockets.connect(ws_url(server, ep["id"], rid), proxy=None) as stalled:
        assert (await frame(stalled))["type"] == "hello"
        assert (await frame(stalled))["type"] == "synced"
        # A burst larger than the subscriber's queue, published without yielding to the loop: the handler cannot
        # keep up by construction. Publishing must stay non-blocking all the same.
        started = time.perf_counter()
        for i in range(1, 3001):
            bus.emit(RequestAdded(replace(sample, id=rid + 10**6 + i, body=None)))
        assert time.perf_counter() - started < 0.5
        assert bus.evictions >= 1
        # Capture goes on at full speed while the evicted socket is being closed.
        started = time.perf_counter()
        await post(client, ep["id"], 20, "after-burst")
        assert time.perf_counter() - started < 5
        with pytest.raises(websockets.exceptions.ConnectionClosed) as info:
            while True:
                await frame(stalled)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1013
    assert bus.subscriber_count(ep["id"]) == 0


async def test_disconnect_storm_is_quiet_and_the_server_keeps_serving(
    server: LiveServer, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """100 pages that vanish: half right after the handshake (before the hello can be sent), half while
    captures stream to them and their pings are being answered. A client leaving is not an error."""
    ep = await create_endpoint(client)
    watched = [logging.getLogger(name) for name in ("hookscope.live", "uvicorn.error")]
    for logger in watched:  # uvicorn's loggers do not propagate to the root, where caplog listens
        logger.addHandler(caplog.handler)
    caplog.set_level(logging.WARNING)
    try:
        streaming = []
        for _ in range(50):
            ws = await websockets.connect(ws_url(server, ep["id"], 0), proxy=None)
            streaming.append(ws)

        async def vanish_at_once() -> None:
            ws = await websockets.connect(ws_url(server, ep["id"], 0), proxy=None)
            ws.transport.abort()

        async def vanish_while_streaming(ws: ClientConnection, i: int) -> None:
            for _ in range(i % 7):
                await ws.send(json.dumps({"type": "ping"}))
                await ws.recv()
            await ws.send(json.dumps({"type": "ping"}))
            ws.transport.abort() if i % 2 else await ws.close()

        captures = asyncio.gather(*(post(client, ep["id"], 10, f"storm{lane}-") for lane in range(3)))
        await asyncio.gather(*(vanish_at_once() for _ in range(50)),
                             *(vanish_while_streaming(ws, i) for i, ws in enumerate(streaming)))
        await captures
        await wait_until(lambda: server.app.services.bus.subscriber_count(ep["id"]) == 0, timeout=20)
        # Still serving: a new page gets the backlog and a new capture live.
        async with websockets.connect(ws_url(server, ep["id"], 0), proxy=None) as ws:
            assert (await frame(ws))["type"] == "hello"
            seen: list[int] = []
            new = await post(client, ep["id"], 1, "after")
            await collect_ids(ws, set(new), seen)
            assert len(seen) == 31
        assert (await client.get("/healthz")).status_code == 200
    finally:
        for logger in watched:
            logger.removeHandler(caplog.handler)
    noisy = [(r.name, r.levelname, r.getMessage()) for r in caplog.records
             if r.name in ("hookscope.live", "uvicorn.error") and r.levelno >= logging.WARNING]
    assert noisy == []


# --- every committed change reaches open pages ----------------------------------------------------------------------


def settings_of(endpoint: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in endpoint.items() if k not in ("request_count", "last_request_at")}


async def synced(ws: ClientConnection) -> None:
    """Read the opening frames up to "synced" (requests backfilled meanwhile are dropped)."""
    assert (await frame(ws))["type"] == "hello"
    while (await frame(ws))["type"] != "synced":
        pass


async def test_retention_prune_removes_rows_from_open_pages(tmp_path: Path) -> None:
    settings = Settings(db=tmp_path / "h.db", janitor_interval=3600, retention_count=2)
    async with live_server(settings) as srv, srv.client() as client:
        ep = await create_endpoint(client)
        other = await create_endpoint(client)
        ids = await post(client, ep["id"], 5)
        await post(client, other["id"], 3)
        async with websockets.connect(ws_url(srv, ep["id"], 0), proxy=None) as ws:
            await synced(ws)
            result = await srv.app.services.store.prune(time.time(), None)
            assert result.removed == 3 + 1
            # Only this endpoint's removals, ids listed: the page drops exactly those rows.
            assert (await frame(ws)) == {"type": "deleted", "ids": ids[:3], "reason": "pruned"}
            later = await post(client, ep["id"], 1, "later")
            f = await frame(ws)
            assert f["type"] == "requests" and [r["id"] for r in f["requests"]] == later


async def test_forward_deliveries_reach_open_pages_after_their_capture(
    client: httpx.AsyncClient, server: LiveServer, target: RecordingTarget
) -> None:
    ep = await create_endpoint(client, forward_targets=[target.url + "/in"])
    async with websockets.connect(ws_url(server, ep["id"]), proxy=None) as ws:
        await synced(ws)
        [rid] = await post(client, ep["id"], 1)
        f = await frame(ws)
        assert f["type"] == "requests" and [r["id"] for r in f["requests"]] == [rid]
        f = await frame(ws)
        assert f["type"] == "delivery"
        delivery = f["delivery"]
        assert (delivery["request_id"], delivery["kind"], delivery["state"]) == (rid, "forward", "delivered")
        assert delivery["target"] == target.url + "/in" and delivery["status"] == 200
        # The same shape, and the same committed row, as the deliveries API shows.
        listed = (await client.get(f"/api/requests/{rid}/deliveries")).json()["deliveries"]
        assert listed == [delivery]
    assert target.count == 1


async def test_changing_verification_sends_the_endpoint_then_the_new_verdicts(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    ep = await create_endpoint(client)
    [rid] = await post(client, ep["id"], 1)
    async with websockets.connect(ws_url(server, ep["id"]), proxy=None) as ws:
        await synced(ws)
        resp = await client.patch(f"/api/endpoints/{ep['id']}",
                                  json={"verify": {"scheme": "stripe", "secrets": ["whsec_live_test_0001"]}})
        assert resp.status_code == 200, resp.text
        # The settings commit first, then the verdicts re-checked under them.
        f = await frame(ws)
        assert f == {"type": "endpoint", "endpoint": (await client.get(f"/api/endpoints/{ep['id']}")).json()}
        assert f["endpoint"]["verify"]["scheme"] == "stripe"
        f = await frame(ws)
        shown = (await client.get(f"/api/requests/{rid}")).json()["verification"]
        assert shown["status"] == "invalid"  # unsigned: it was "unconfigured" before
        assert f == {"type": "verdicts", "verdicts": [{"id": rid, "verification": shown}]}


async def test_frames_follow_commit_order_and_a_deleted_endpoint_closes_4404(
    client: httpx.AsyncClient, server: LiveServer
) -> None:
    ep = await create_endpoint(client, name="before")
    async with websockets.connect(ws_url(server, ep["id"]), proxy=None) as ws:
        await synced(ws)
        [first] = await post(client, ep["id"], 1, "a")
        assert (await client.delete(f"/api/requests/{first}")).status_code == 204
        [second] = await post(client, ep["id"], 1, "b")
        patched = await client.patch(f"/api/endpoints/{ep['id']}", json={"name": "after"})
        assert patched.status_code == 200
        assert (await client.delete(f"/api/endpoints/{ep['id']}/requests")).status_code == 200
        assert (await client.delete(f"/api/endpoints/{ep['id']}")).status_code == 204
        frames = []
        with pytest.raises(websockets.exceptions.ConnectionClosed) as info:
            while True:
                frames.append(await frame(ws))
    assert info.value.rcvd is not None and info.value.rcvd.code == 4404
    assert [f["type"] for f in frames] == [
        "requests", "deleted", "requests", "endpoint", "cleared", "endpoint_deleted",
    ]
    assert [r["id"] for r in frames[0]["requests"]] == [first]
    assert frames[1] == {"type": "deleted", "ids": [first], "reason": "deleted"}
    assert [r["id"] for r in frames[2]["requests"]] == [second]
    # Its counts are read when the frame is sent (the clear may have committed by then); the rest is the commit's.
    assert settings_of(frames[3]["endpoint"]) == settings_of(patched.json())
    assert frames[3]["endpoint"]["name"] == "after"
    assert frames[5] == {"type": "endpoint_deleted"}
