"""End to end on PostgreSQL: a real `hookscope serve --db postgresql://...` subprocess on a fresh database.

What a user of one instance relies on: captures stored byte-exact and served back, every "after" cursor (live
socket, `wait`, smee's Last-Event-ID, relay and forward positions) counted in the endpoint's seq, retention, and a
restart that keeps everything. Two endpoints are always written interleaved, so request ids (global) and seqs (per
endpoint) differ and a cursor that used one for the other would show.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from app.settings import MIB
from tests.delivery.relayproc import RelayProcess, wait_relay
from tests.delivery.target import RecordingTarget
from tests.support import (
    REPO,
    ServerProcess,
    create_endpoint,
    free_port,
    raw_request,
    server_client,
    status_of,
    wait_until,
)

# Each test starts one or two servers and moves a few MiB: more than the suite's default 120 s on a slow machine.
pytestmark = pytest.mark.timeout(300)


async def _start(dsn: str, *args: str) -> ServerProcess:
    srv = ServerProcess(dsn, list(args))
    await asyncio.to_thread(srv.start, 60.0)
    return srv


async def _stop(srv: ServerProcess) -> None:
    """SIGTERM, and check the shutdown was clean (uvicorn re-raises the signal once it has shut down)."""
    code = await asyncio.to_thread(srv.stop)
    assert srv.proc is not None and srv.proc.stderr is not None
    log = srv.proc.stderr.read().decode(errors="replace")
    srv.__exit__()
    assert code in (0, -signal.SIGTERM) and "Application shutdown complete" in log and "Traceback" not in log, log


def _client(srv: ServerProcess) -> httpx.AsyncClient:
    return server_client(srv)


async def _capture(client: httpx.AsyncClient, ep: str, body: bytes, path: str = "", **kw: Any) -> dict[str, Any]:
    """POST a capture; returns its stored JSON (with `id` and `seq`)."""
    resp = await client.post(f"/h/{ep}{path}", content=body, **kw)
    assert resp.is_success, resp.text  # 200, or what the endpoint's response setting says
    return await _get(client, resp.headers["x-hookscope-request-id"])


async def _get(client: httpx.AsyncClient, rid: int | str) -> dict[str, Any]:
    resp = await client.get(f"/api/requests/{rid}")
    assert resp.status_code == 200, resp.text
    data: dict[str, Any] = resp.json()
    return data


async def _interleaved(client: httpx.AsyncClient, mine: str, other: str, n: int, tag: str) -> list[dict[str, Any]]:
    """n captures to `mine`, each after one to `other`; returns mine in capture order."""
    out = []
    for i in range(n):
        await _capture(client, other, f"noise {tag}{i}".encode())
        out.append(await _capture(client, mine, f"{tag}{i}".encode() + b"\x00", f"/{tag}/{i}",
                                  headers={"x-i": f"{tag}{i}"}))
    return out


def _header(item: dict[str, Any], name: str) -> str | None:
    return next((v for n, v in item["headers"] if n == name), None)


def _seqs(items: list[dict[str, Any]]) -> list[int]:
    return [int(r["seq"]) for r in items]


def _assert_positions(items: list[dict[str, Any]]) -> None:
    """Seqs start at 1 and only go up, in capture order; ids stay distinct."""
    seqs = _seqs(items)
    assert seqs[0] >= 1 and seqs == sorted(set(seqs)), seqs
    assert len({r["id"] for r in items}) == len(items)


async def test_captures_are_stored_byte_exact_and_listed_by_seq(pg_dsn: str) -> None:
    srv = await _start(pg_dsn)
    try:
        async with _client(srv) as client:
            ep = (await create_endpoint(client))["id"]
            other = (await create_endpoint(client))["id"]
            nul_body = b"\x00" * 7 + bytes(range(256)) + b"\x00"
            big = random.Random(5).randbytes(5 * MIB)
            # Headers with invalid UTF-8, duplicates in their order, a NUL-bearing body and a raw %2F path.
            head = (f"POST /h/{ep}/a%2Fb/%FF/c%20d?x=%00&x=2&&flag HTTP/1.1\r\nHost: x\r\nX-B: 1\r\n"
                    "X-Bin: ").encode() + b"\xff\xfe caf\xc3\xa9" + (
                f"\r\nX-B: 2\r\nContent-Type: application/octet-stream\r\nContent-Length: {len(nul_body)}"
                "\r\n\r\n").encode()
            await _capture(client, other, b"first, so ids and seqs differ")
            answer = await raw_request(srv.port, head + nul_body)
            assert status_of(answer) == 200
            rid = answer.split(b"x-hookscope-request-id: ")[1].split(b"\r\n")[0].decode()
            raw_one = await _get(client, rid)
            assert raw_one["path"] == "/a%2Fb/%FF/c%20d" and raw_one["query"] == "x=%00&x=2&&flag"
            assert raw_one["headers"] == [["host", "x"], ["x-b", "1"], ["x-bin", "\xff\xfe caf\xc3\xa9"],
                                          ["x-b", "2"], ["content-type", "application/octet-stream"],
                                          ["content-length", str(len(nul_body))]]
            assert raw_one["headers_latin1"] == [2]
            assert base64.b64decode(raw_one["body"]) == nul_body
            assert (await client.get(f"/api/requests/{rid}/raw")).content == nul_body

            large = await _capture(client, ep, big, "/big", headers={"content-type": "application/octet-stream"})
            assert large["body_size"] == len(big)
            raw = await client.get(f"/api/requests/{large['id']}/raw")
            assert raw.status_code == 200 and raw.content == big

            rest = await _interleaved(client, ep, other, 5, "r")
            mine = [raw_one, large, *rest]
            _assert_positions(mine)
            assert raw_one["seq"] == 1 and raw_one["id"] != raw_one["seq"]

            # Newest first, two a page; `before` and `next_before` are seqs.
            listed: list[dict[str, Any]] = []
            params: dict[str, Any] = {"limit": 2}
            while True:
                page = (await client.get(f"/api/endpoints/{ep}/requests", params=params)).json()
                listed.extend(page["requests"])
                if page["next_before"] is None:
                    break
                assert page["next_before"] == page["requests"][-1]["seq"]
                params["before"] = page["next_before"]
            assert [(r["id"], r["seq"]) for r in listed] == [(r["id"], r["seq"]) for r in reversed(mine)]
            after = (await client.get(f"/api/endpoints/{ep}/requests",
                                      params={"after": mine[2]["seq"], "limit": 100})).json()
            assert [r["id"] for r in after["requests"]] == [r["id"] for r in mine[3:]]
            assert after["last_id"] == mine[-1]["seq"]
    finally:
        await _stop(srv)


async def _frame(ws: ClientConnection, timeout: float = 15.0) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    return data


async def _live_requests(ws: ClientConnection, count: int) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while len(got) < count:
        f = await _frame(ws)
        if f["type"] == "requests":
            got.extend(f["requests"])
    return got


async def _sse_events(lines: AsyncIterator[str], count: int) -> list[tuple[str | None, str | None, str]]:
    """The next `count` events of an event stream that carry data: (id, event name, data)."""
    events: list[tuple[str | None, str | None, str]] = []
    ident = name = None
    data: list[str] = []
    while len(events) < count:
        line = await asyncio.wait_for(anext(lines), 15)
        if line == "":
            if data:
                events.append((ident, name, "\n".join(data)))
            ident, name, data = None, None, []
        elif line.startswith("id: "):
            ident = line[4:]
        elif line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])
    return events


async def test_live_socket_wait_and_smee_follow_the_seq(pg_dsn: str) -> None:
    srv = await _start(pg_dsn)
    try:
        async with _client(srv) as client:
            ep = (await create_endpoint(client))["id"]
            other = (await create_endpoint(client))["id"]
            old = await _interleaved(client, ep, other, 6, "old")
            _assert_positions(old)

            live_url = f"ws://127.0.0.1:{srv.port}/api/endpoints/{ep}/live?after=0"
            async with websockets.connect(live_url, proxy=None) as ws:
                assert await _frame(ws) == {"type": "hello", "last_id": 0}  # where the stream starts
                backfill = await _live_requests(ws, len(old))
                assert [(r["id"], r["seq"]) for r in backfill] == [(r["id"], r["seq"]) for r in old]
                assert await _frame(ws) == {"type": "synced", "last_id": old[-1]["seq"]}
                new = await _interleaved(client, ep, other, 4, "new")
                streamed = await _live_requests(ws, len(new))
                assert [(r["id"], r["seq"]) for r in streamed] == [(r["id"], r["seq"]) for r in new]
                assert all(r["endpoint_id"] == ep for r in streamed)
            everything = old + new
            _assert_positions(everything)

            # A page that saw up to the 3rd gets exactly the rest.
            async with websockets.connect(live_url.replace("after=0", f"after={old[2]['seq']}"), proxy=None) as ws:
                assert await _frame(ws) == {"type": "hello", "last_id": old[2]["seq"]}
                rest = await _live_requests(ws, len(everything) - 3)
                assert [r["id"] for r in rest] == [r["id"] for r in everything[3:]]

            # wait?after=<seq>: the next capture of this endpoint, not of another.
            waiter = asyncio.create_task(client.get(f"/api/endpoints/{ep}/wait",
                                                    params={"after": everything[-1]["seq"], "timeout": 30}))
            await _capture(client, other, b"not this one")
            awaited = await _capture(client, ep, b"this one")
            resp = await asyncio.wait_for(waiter, 30)
            assert resp.status_code == 200 and resp.json()["id"] == awaited["id"]
            assert resp.json()["seq"] == awaited["seq"] > everything[-1]["seq"]
            everything.append(awaited)
            got = (await client.get(f"/api/endpoints/{ep}/wait",
                                    params={"after": everything[1]["seq"], "timeout": 5})).json()
            assert got["id"] == everything[2]["id"]

            # smee: Last-Event-ID is a seq; every event's id is the capture's seq.
            headers = {"Accept": "text/event-stream", "Last-Event-ID": str(everything[-4]["seq"])}
            async with client.stream("GET", f"/h/{ep}", headers=headers) as stream:
                assert stream.status_code == 200
                lines = stream.aiter_lines()
                events = await _sse_events(lines, 1 + 3)
                assert events[0][1] == "ready"
                assert [e[0] for e in events[1:]] == [str(r["seq"]) for r in everything[-3:]]
                assert [json.loads(e[2]).get("x-i") for e in events[1:]] == [_header(r, "x-i") for r in everything[-3:]]
                later = await _capture(client, ep, b"streamed", headers={"x-i": "later"})
                (event,) = await _sse_events(lines, 1)
                assert event[0] == str(later["seq"]) and json.loads(event[2])["x-i"] == "later"
    finally:
        await _stop(srv)


async def test_forward_target_and_relay_receive_everything_in_order(pg_dsn: str, tmp_path: Path) -> None:
    srv = await _start(pg_dsn)
    relay: RelayProcess | None = None
    try:
        async with _client(srv) as client, RecordingTarget() as forwarded, RecordingTarget() as relayed:
            ep = (await create_endpoint(client, forward_targets=[forwarded.url + "/fwd"]))["id"]
            other = (await create_endpoint(client))["id"]
            relay = RelayProcess(f"{srv.url}/h/{ep}", [relayed.url + "/dev"], "pg-laptop", tmp_path / "relay.log")
            relay.start()
            await wait_relay(client, ep, "pg-laptop")
            sent = await _interleaved(client, ep, other, 20, "a")
            await wait_until(lambda: relayed.count >= 20, timeout=60)
            # The relay goes away; what arrives meanwhile is delivered when it is back, after the rest.
            assert await asyncio.to_thread(relay.stop) == 0
            await wait_relay(client, ep, "pg-laptop", connected=False)
            sent += await _interleaved(client, ep, other, 20, "b")
            relay.start()
            await wait_until(lambda: relayed.count >= 40 and forwarded.count >= 40, timeout=60)

            expected = [f"{r['method']} {r['path']}?{r['query']}".rstrip("?").encode() for r in sent]
            bodies = [base64.b64decode(r["body"]) if r["body_encoding"] == "base64" else r["body"].encode()
                      for r in sent]
            tags = [(_header(r, "x-i") or "").encode() for r in sent]
            for target, prefix in ((forwarded, b"/fwd"), (relayed, b"/dev")):
                assert [rec.header(b"x-i") for rec in target.received] == tags
                assert [rec.body for rec in target.received] == bodies
                assert [rec.method + b" " + rec.target for rec in target.received] == [
                    e.replace(b" ", b" " + prefix, 1) for e in expected]

            async def positions() -> tuple[Any, Any]:
                relays = (await client.get(f"/api/endpoints/{ep}/relays")).json()["relays"]
                fwd = (await client.get(f"/api/endpoints/{ep}/forwarding")).json()["targets"]
                return relays[0], fwd[0]

            for _ in range(500):  # acks are recorded by pipelined writes: wait for their commits
                relay_state, fwd_state = await positions()
                if relay_state["acked_id"] == sent[-1]["seq"] and fwd_state["pending"] == 0:
                    break
                await asyncio.sleep(0.02)
            assert relay_state["acked_id"] == sent[-1]["seq"] and relay_state["pending"] == 0
            assert fwd_state["pending"] == 0
    finally:
        if relay is not None and relay.proc is not None:
            await asyncio.to_thread(relay.stop)
        await _stop(srv)


async def test_retention_prunes_and_a_restart_keeps_the_rest(pg_dsn: str) -> None:
    args = ("--retention-count", "20")
    srv = await _start(pg_dsn, *args)
    try:
        async with _client(srv) as client:
            small = (await create_endpoint(client, response={"status": 202, "headers": [["x-kept", "yes"]],
                                                              "body": "kept", "delay": 0}))["id"]
            big = (await create_endpoint(client))["id"]
            small_items, big_items = [], []
            for i in range(30):
                big_items.append(await _capture(client, big, f"big {i}".encode() + b"\x00\xff", f"/b/{i}",
                                                headers=[("x-dup", "1"), ("x-dup", "2")]))
                if i % 3 == 0:
                    small_items.append(await _capture(client, small, f"small {i}".encode(), f"/s%2F{i}"))
            _assert_positions(small_items)
            _assert_positions(big_items)
            # Deleting the newest does not make its seq free again.
            deleted = big_items.pop()
            assert (await client.delete(f"/api/requests/{deleted['id']}")).status_code == 204
    finally:
        await _stop(srv)

    # Retention runs at start-up (then on its schedule): an endpoint keeps its newest 20.
    srv = await _start(pg_dsn, *args)
    try:
        async with _client(srv) as client:
            async def count(ep: str) -> int:
                return int((await client.get(f"/api/endpoints/{ep}")).json()["request_count"])

            for _ in range(1000):
                if await count(big) == 20:
                    break
                await asyncio.sleep(0.02)
            assert (await count(small), await count(big)) == (10, 20)
            listed = (await client.get(f"/api/endpoints/{big}/requests", params={"limit": 100})).json()
            assert [r["id"] for r in reversed(listed["requests"])] == [r["id"] for r in big_items[-20:]]
            for before in small_items + big_items[-20:]:
                after = await _get(client, before["id"])
                assert after == before
                raw = await client.get(f"/api/requests/{before['id']}/raw")
                assert raw.content == (base64.b64decode(before["body"]) if before["body_encoding"] == "base64"
                                       else before["body"].encode())

            # The endpoint's settings survived, and positions go on from the largest ever handed out.
            resp = await client.post(f"/h/{small}", content=b"after the restart")
            assert resp.status_code == 202 and resp.text == "kept" and resp.headers["x-kept"] == "yes"
            newest = await _capture(client, big, b"after the restart")
            assert newest["seq"] > deleted["seq"] and newest["id"] > deleted["id"]
    finally:
        await _stop(srv)


def _with_password(dsn: str) -> tuple[str, str]:
    """`dsn` with a password in it (the tests' servers trust local users, so any password is accepted), and the
    password."""
    parts = urlsplit(dsn)
    if parts.password:
        return dsn, parts.password
    netloc = f"{parts.username or 'postgres'}:hunter2@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc)), "hunter2"


def test_the_start_up_line_and_errors_never_show_the_password(pg_dsn: str) -> None:
    dsn, password = _with_password(pg_dsn)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKSCOPE_")}
    cmd = [sys.executable, "-m", "app", "serve", "--port", str(free_port()), "--db", dsn]
    with subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().decode()
        finally:
            proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "hookscope" in line and "database postgresql://" in line and ":***@" in line, line
    assert password not in line + err.decode()

    # Nothing listens there: refused at start (status 1), the message names the database without the password.
    unreachable = dsn.replace(f":{urlsplit(dsn).port}/", f":{free_port()}/")
    result = subprocess.run([*cmd[:-1], unreachable], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("hookscope: ") and password not in result.stdout + result.stderr
