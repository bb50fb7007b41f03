"""Ownership across instances: two `hookscope serve --db postgresql://...` processes on one database deliver each
forward target and serve each named relay from one instance at a time (leases: app/store/leases.py), and a
survivor takes over from an instance killed with SIGKILL.

What must hold: every acknowledged capture reaches the target (and the relay), in seq order; a request is
delivered twice only at the takeover, where the survivor restarts from the stored cursor (at-least-once: the
items the dead owner had delivered but not yet recorded). The checks read the delivered order as seqs: at most
two runs, the first a prefix of every seq, the second a suffix, overlapping only at the takeover.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from app.delivery.forwarder import UNCOMMITTED_MAX
from app.delivery.relay import WINDOW
from tests.delivery.relayproc import RelayProcess, wait_relay
from tests.delivery.target import RecordingTarget
from tests.store.postgres.processes import start_instance, stop_instance
from tests.support import ServerProcess, create_endpoint, server_client, wait_until

# Two servers, a takeover that waits for a lease to expire (15 s), a few hundred captures.
pytestmark = pytest.mark.timeout(300)

CAPTURES = 300
# Outcome writes are pipelined, so the dead owner may have delivered up to UNCOMMITTED_MAX requests whose outcome
# it had not committed, besides the one in flight; far fewer in practice, but the bound is what
# docs/forwarding.md promises.
FORWARD_REDELIVERED_MAX = UNCOMMITTED_MAX + 1
# A relay's server keeps at most WINDOW requests unacknowledged (docs/forwarding.md, the relay protocol), plus the
# acks it had received but not committed yet: at most one more window.
RELAY_REDELIVERED_MAX = 2 * WINDOW


def _client(srv: ServerProcess) -> httpx.AsyncClient:
    return server_client(srv)


async def _known_on(client: httpx.AsyncClient, endpoint_id: str) -> None:
    """Wait until the other instance has heard of the endpoint (through the database's doorbell)."""
    for _ in range(1000):
        if (await client.get(f"/api/endpoints/{endpoint_id}")).status_code == 200:
            return
        await asyncio.sleep(0.02)  # another process's state: nothing to wait on from here but polling
    raise TimeoutError(f"{client.base_url} never learnt endpoint {endpoint_id}")


async def _capture(client: httpx.AsyncClient, ep: str, tag: str) -> int:
    """POST one capture tagged `tag` (header and body); returns its request id once acknowledged."""
    resp = await client.post(f"/h/{ep}", content=tag.encode(), headers={"x-i": tag})
    assert resp.is_success, resp.text
    return int(resp.headers["x-hookscope-request-id"])


async def _spread(clients: list[httpx.AsyncClient], ep: str, tags: list[str], ids: dict[str, int]) -> None:
    """Capture every tag, ten at a time, alternating instances (so both write the endpoint concurrently)."""
    for start in range(0, len(tags), 10):
        chunk = tags[start : start + 10]
        got = await asyncio.gather(*(_capture(clients[i % len(clients)], ep, t) for i, t in enumerate(chunk)))
        ids.update(zip(chunk, got, strict=True))


async def _seqs_of(dsn: str, ids: dict[str, int]) -> dict[str, int]:
    """tag -> seq, from the database (the truth both instances share)."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT id, seq FROM requests WHERE id = ANY($1::bigint[])", list(ids.values()))
    finally:
        await conn.close()
    seq_of_id = {int(r["id"]): int(r["seq"]) for r in rows}
    return {tag: seq_of_id[rid] for tag, rid in ids.items()}


def _check_delivery_order(got: list[int], every: list[int]) -> int:
    """`got`: the seqs in the order delivered; `every`: each acknowledged seq once, ascending. Everything
    arrived; at most one rewind (the takeover), the run before it a prefix of `every` and the run after it a
    suffix (nothing skipped, nothing out of order). Returns how many were delivered twice."""
    assert sorted(set(got)) == every, "a request was never delivered (or one was delivered that was not sent)"
    rewinds = [i for i in range(1, len(got)) if got[i] <= got[i - 1]]
    assert len(rewinds) <= 1, f"delivered out of order more than once, at {rewinds}"
    if not rewinds:
        assert got == every
        return 0
    first, second = got[: rewinds[0]], got[rewinds[0] :]
    assert first == every[: len(first)] and second == every[len(every) - len(second) :], (first, second)
    return len(got) - len(every)


async def _owner(client: httpx.AsyncClient, ep: str) -> tuple[str | None, str]:
    """(the instance delivering the endpoint's one target, the answering instance)."""
    body = (await client.get(f"/api/endpoints/{ep}/forwarding")).json()
    (target,) = body["targets"]
    return target["owner"], body["instance"]


async def test_one_instance_forwards_and_a_survivor_takes_over_after_kill_9(
    pg_dsn: str, target: RecordingTarget
) -> None:
    servers = [await start_instance(pg_dsn)]
    try:
        async with _client(servers[0]) as first:
            ep = (await create_endpoint(first, forward_targets=[target.url + "/fwd"]))["id"]
            servers.append(await start_instance(pg_dsn))
            async with _client(servers[1]) as second:
                clients = [first, second]
                await _known_on(second, ep)
                answers = [await _owner(c, ep) for c in clients]
                for _ in range(1000):
                    if answers[0][0] is not None:
                        break
                    await asyncio.sleep(0.02)  # the first worker takes the lease: nothing to wait on but polling
                    answers = [await _owner(c, ep) for c in clients]
                instances = [a[1] for a in answers]
                owner = answers[0][0]
                assert owner in instances and instances[0] != instances[1]
                assert answers[1][0] == owner  # both instances agree on who delivers
                held = instances.index(owner)
                survivor = 1 - held

                ids: dict[str, int] = {}
                tags = [f"c{i:04d}" for i in range(CAPTURES)]
                await _spread(clients, ep, tags[: CAPTURES // 2], ids)
                # Mid-stream, with deliveries in flight: the lease holder dies without a word.
                await asyncio.to_thread(servers[held].kill9)
                await _spread([clients[survivor]], ep, tags[CAPTURES // 2 :], ids)

                await wait_until(lambda: {r.header(b"x-i") for r in target.received} >= {t.encode() for t in tags},
                                 timeout=120)
                seqs = await _seqs_of(pg_dsn, ids)
                got = [seqs[(r.header(b"x-i") or b"").decode()] for r in target.received]
                assert all(r.target == b"/fwd" and r.body == r.header(b"x-i") for r in target.received)
                twice = _check_delivery_order(got, sorted(seqs.values()))
                assert twice <= FORWARD_REDELIVERED_MAX
                new_owner, me = await _owner(clients[survivor], ep)
                assert new_owner == me == instances[survivor]
                for _ in range(500):  # outcome writes are pipelined: wait for their commits
                    status = (await clients[survivor].get(f"/api/endpoints/{ep}/forwarding")).json()["targets"][0]
                    if status["pending"] == 0:
                        break
                    await asyncio.sleep(0.02)
                assert status["pending"] == 0 and status["acked_id"] == max(seqs.values())
    finally:
        for srv in servers:
            await stop_instance(srv)


async def test_a_relay_reconnecting_through_another_instance_gets_everything_not_acked(
    pg_dsn: str, tmp_path: Path
) -> None:
    servers = [await start_instance(pg_dsn), await start_instance(pg_dsn)]
    relays: list[RelayProcess] = []
    try:
        async with _client(servers[0]) as a, _client(servers[1]) as b, RecordingTarget() as relayed:
            ep = (await create_endpoint(a))["id"]
            await _known_on(b, ep)
            a_id = (await a.get(f"/api/endpoints/{ep}/forwarding")).json()["instance"]
            b_id = (await b.get(f"/api/endpoints/{ep}/forwarding")).json()["instance"]
            relays.append(RelayProcess(f"{servers[0].url}/h/{ep}", [relayed.url + "/dev"], "laptop",
                                       tmp_path / "relay-a.log").start())
            await wait_relay(a, ep, "laptop")
            (row,) = (await b.get(f"/api/endpoints/{ep}/relays")).json()["relays"]
            assert row["owner"] == a_id and not row["connected"]  # served by A, as B sees it

            ids: dict[str, int] = {}
            tags = [f"r{i:03d}" for i in range(90)]
            # Captured through both while the relay is on A: B's reach it through the database.
            await _spread([a, b], ep, tags[:40], ids)
            await wait_until(lambda: relayed.count >= 20, timeout=60)
            await asyncio.to_thread(servers[0].kill9)
            await _spread([b], ep, tags[40:], ids)
            # The client keeps trying A; pointed at B (what a load balancer does), it resumes from the cursor.
            await asyncio.to_thread(relays[0].stop)
            relays.append(RelayProcess(f"{servers[1].url}/h/{ep}", [relayed.url + "/dev"], "laptop",
                                       tmp_path / "relay-b.log").start())
            await wait_until(lambda: {r.header(b"x-i") for r in relayed.received} >= {t.encode() for t in tags},
                             timeout=120)
            seqs = await _seqs_of(pg_dsn, ids)
            got = [seqs[(r.header(b"x-i") or b"").decode()] for r in relayed.received]
            assert _check_delivery_order(got, sorted(seqs.values())) <= RELAY_REDELIVERED_MAX
            for _ in range(500):  # acks are recorded by pipelined writes: wait for their commits
                (row,) = (await b.get(f"/api/endpoints/{ep}/relays")).json()["relays"]
                if row["pending"] == 0:
                    break
                await asyncio.sleep(0.02)
            assert row["owner"] == b_id and row["connected"]
            assert row["pending"] == 0 and row["acked_id"] == max(seqs.values())
    finally:
        for relay in relays:
            if relay.proc is not None:
                await asyncio.to_thread(relay.stop)
        for srv in servers:
            await stop_instance(srv)


async def test_a_relay_connecting_elsewhere_closes_its_stale_socket(pg_dsn: str) -> None:
    servers = [await start_instance(pg_dsn), await start_instance(pg_dsn)]
    try:
        async with _client(servers[0]) as a, _client(servers[1]) as b:
            ep = (await create_endpoint(a))["id"]
            await _known_on(b, ep)
            path = f"/api/endpoints/{ep}/relay?name=twice"
            async with websockets.connect(f"ws://127.0.0.1:{servers[0].port}{path}", proxy=None) as old:
                assert json.loads(await old.recv())["type"] == "hello"
                async with websockets.connect(f"ws://127.0.0.1:{servers[1].port}{path}", proxy=None) as new:
                    assert json.loads(await new.recv())["type"] == "hello"
                    # A finds at its next ping that B holds the relay's lease now, and closes its socket.
                    frames: list[Any] = []
                    with pytest.raises(ConnectionClosed):
                        async with asyncio.timeout(60):
                            while True:
                                frames.append(json.loads(await old.recv()))
                    assert old.close_code == 4000 and old.close_reason == "replaced by a new connection"
                    assert all(f == {"type": "ping"} for f in frames)
                    (row,) = (await a.get(f"/api/endpoints/{ep}/relays")).json()["relays"]
                    assert row["owner"] != (await a.get(f"/api/endpoints/{ep}/forwarding")).json()["instance"]
                    await new.send('{"type":"ping"}')
                    async with asyncio.timeout(30):  # the new one still serves (its own pings may come first)
                        while (frame := json.loads(await new.recv())) == {"type": "ping"}:
                            pass
                    assert frame == {"type": "pong"}
    finally:
        for srv in servers:
            await stop_instance(srv)
