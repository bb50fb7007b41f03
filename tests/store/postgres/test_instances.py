"""Several `hookscope serve --db postgresql://...` processes on one database (issue 11's multi-instance tests):
they start together on an empty database (one migrates, all serve), and what is captured through one of them
appears exactly once, in seq order and with no gap, on another's live socket and a third's smee stream, also
when the listening connection of the one showing the live socket is killed mid-load."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from app.store.postgres.schema import MIGRATIONS
from tests.store.postgres.processes import start_instances, stop_instances
from tests.support import ServerProcess, create_endpoint, server_client, wait_until

pytestmark = pytest.mark.timeout(300)

CAPTURES = 300


def _client(srv: ServerProcess) -> httpx.AsyncClient:
    return server_client(srv)


async def _knows(client: httpx.AsyncClient, endpoint_id: str) -> bool:
    return (await client.get(f"/api/endpoints/{endpoint_id}")).status_code == 200


async def _wait_known(clients: list[httpx.AsyncClient], endpoint_id: str) -> None:
    for client in clients:
        for _ in range(500):
            if await _knows(client, endpoint_id):
                break
            await asyncio.sleep(0.02)  # polling another process's state; no event to wait on from here
        else:
            raise TimeoutError(f"{client.base_url} never learnt endpoint {endpoint_id}")


def _ports_of(pid: int) -> set[int]:
    """The local TCP ports of the sockets process `pid` holds (from /proc: no psutil needed)."""
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


async def _terminate_doorbell(dsn: str, srv: ServerProcess) -> int:
    """pg_terminate_backend the listening connection of `srv` (found by application_name, database and the
    client port its process holds); returns how many were terminated."""
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name LIKE 'hookscope doorbell %' AND datname = current_database()"
            " AND client_port = ANY($1::int[])",
            sorted(_ports_of(srv.pid)),
        ))
    finally:
        await conn.close()


async def _live(ws: ClientConnection, into: list[dict[str, Any]]) -> None:
    """Collect the request summaries of a live socket, from after its `synced` frame on, until cancelled."""
    while True:
        frame = json.loads(await ws.recv())
        if frame["type"] == "requests":
            into.extend(frame["requests"])


async def _smee(lines: AsyncIterator[str], into: list[tuple[int, dict[str, Any]]]) -> None:
    """Collect (id, data) of a smee stream's unnamed events until cancelled."""
    ident: str | None = None
    name: str | None = None
    data: list[str] = []
    async for line in lines:
        if line == "":
            if data and name is None and ident is not None:
                into.append((int(ident), json.loads("\n".join(data))))
            ident, name, data = None, None, []
        elif line.startswith("id: "):
            ident = line[4:]
        elif line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])


async def test_three_instances_start_at_once_on_an_empty_database(pg_dsn: str) -> None:
    servers = await start_instances(pg_dsn, 3)
    try:
        clients = [_client(s) for s in servers]
        for client in clients:
            assert (await client.get("/healthz")).status_code == 200
        conn = await asyncpg.connect(pg_dsn)
        try:
            versions = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")]
        finally:
            await conn.close()
        assert versions == list(range(1, len(MIGRATIONS) + 1))  # migrated once, by one of them
        # Each serves, and sees what the others create.
        made = [(await create_endpoint(c, name=f"by {i}"))["id"] for i, c in enumerate(clients)]
        for endpoint_id in made:
            await _wait_known(clients, endpoint_id)
        for client in clients:
            await client.aclose()
    finally:
        await stop_instances(servers)


async def test_capture_on_a_shows_on_b_live_and_c_smee_exactly_once_across_a_lost_listener(pg_dsn: str) -> None:
    a, b, c = servers = await start_instances(pg_dsn, 3)
    try:
        async with _client(a) as ca, _client(b) as cb, _client(c) as cc:
            ep = (await create_endpoint(ca))["id"]
            other = (await create_endpoint(ca))["id"]
            await _wait_known([cb, cc], ep)
            live: list[dict[str, Any]] = []
            acked: dict[int, str] = {}  # request id -> the x-i header it was sent with
            smee: list[tuple[int, dict[str, Any]]] = []
            async with websockets.connect(f"ws://127.0.0.1:{b.port}/api/endpoints/{ep}/live?after=0",
                                          proxy=None) as ws, \
                    cc.stream("GET", f"/h/{ep}", headers={"Accept": "text/event-stream"}) as stream:
                assert json.loads(await ws.recv()) == {"type": "hello", "last_id": 0}
                assert json.loads(await ws.recv()) == {"type": "synced", "last_id": 0}
                lines = stream.aiter_lines()
                while await asyncio.wait_for(anext(lines), 15) != "event: ready":
                    pass
                readers = [asyncio.create_task(_live(ws, live)), asyncio.create_task(_smee(lines, smee))]
                try:
                    async def capture(i: int) -> None:
                        await ca.post(f"/h/{other}", content=b"noise")  # ids and seqs differ
                        resp = await ca.post(f"/h/{ep}/{i}", content=f"capture {i}".encode(), headers={"x-i": str(i)})
                        assert resp.status_code == 200, resp.text
                        acked[int(resp.headers["x-hookscope-request-id"])] = str(i)

                    for k in range(0, CAPTURES, 20):
                        await asyncio.gather(*(capture(i) for i in range(k, k + 20)))
                        if k in (100, 200):
                            # B's listening connection dies mid-load; what is rung meanwhile is lost to it.
                            assert await _terminate_doorbell(pg_dsn, b) == 1
                    await wait_until(lambda: len(live) >= CAPTURES and len(smee) >= CAPTURES, timeout=60)
                finally:
                    for task in readers:
                        task.cancel()
                    await asyncio.gather(*readers, return_exceptions=True)
            # Exactly once each, in seq order, no gap (one endpoint, nothing deleted: seqs are 1..N).
            assert [r["seq"] for r in live] == list(range(1, CAPTURES + 1))
            assert sorted(r["id"] for r in live) == sorted(acked)
            assert [ident for ident, _ in smee] == list(range(1, CAPTURES + 1))
            # The same capture under the same seq on both: smee's payload carries the header it was sent with.
            id_of = {r["seq"]: r["id"] for r in live}
            assert [data.get("x-i") for _, data in smee] == [acked[id_of[s]] for s, _ in smee]
            got = (await cb.get(f"/api/requests/{live[-1]['id']}")).json()
            assert got["seq"] == CAPTURES
    finally:
        await stop_instances(servers)



SLOW_TRIGGER = """
CREATE TABLE slow_backends (pid integer PRIMARY KEY, held integer NOT NULL DEFAULT 0);
CREATE FUNCTION hold_the_batch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE slow_backends SET held = held + 1 WHERE pid = pg_backend_pid();
    IF FOUND THEN
        PERFORM pg_sleep(0.05);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER hold_the_batch AFTER INSERT ON requests FOR EACH STATEMENT EXECUTE FUNCTION hold_the_batch();
"""


async def test_a_slow_committing_instance_makes_no_tailer_skip_a_request(pg_dsn: str) -> None:
    """(b) A and B capture to one endpoint while A's writer holds every batch open 50 ms after inserting it (a
    trigger keyed to A's writer backend): live sockets on both see every seq once, in order, with no gap."""
    a, b = servers = await start_instances(pg_dsn, 2)
    try:
        admin = await asyncpg.connect(pg_dsn)
        try:
            await admin.execute(SLOW_TRIGGER)
            async with _client(a) as ca, _client(b) as cb:
                ep = (await create_endpoint(ca))["id"]
                await _wait_known([cb], ep)
                await ca.post(f"/h/{ep}", content=b"first")  # A's writer connection exists from here on
                slowed = await admin.fetchval(
                    "INSERT INTO slow_backends SELECT pid FROM pg_stat_activity WHERE application_name ="
                    " 'hookscope-writer' AND datname = current_database() AND client_port = ANY($1::int[])"
                    " RETURNING pid",
                    sorted(_ports_of(a.pid)),
                )
                assert slowed is not None, "A's writer connection was not found"
                seen: dict[str, list[dict[str, Any]]] = {"a": [], "b": []}
                async with websockets.connect(f"ws://127.0.0.1:{a.port}/api/endpoints/{ep}/live?after=0",
                                              proxy=None) as wa, \
                        websockets.connect(f"ws://127.0.0.1:{b.port}/api/endpoints/{ep}/live?after=0",
                                           proxy=None) as wb:
                    readers = [asyncio.create_task(_live(wa, seen["a"])), asyncio.create_task(_live(wb, seen["b"]))]
                    try:
                        acked: list[int] = []

                        async def capture(client: httpx.AsyncClient, i: int) -> None:
                            resp = await client.post(f"/h/{ep}/{i}", content=f"capture {i}".encode())
                            assert resp.status_code == 200, resp.text
                            acked.append(int(resp.headers["x-hookscope-request-id"]))

                        for k in range(0, CAPTURES, 20):
                            await asyncio.gather(*(capture(ca if i % 2 else cb, i) for i in range(k, k + 20)))
                        total = CAPTURES + 1
                        await wait_until(lambda: all(len(v) >= total for v in seen.values()), timeout=60)
                    finally:
                        for task in readers:
                            task.cancel()
                        await asyncio.gather(*readers, return_exceptions=True)
                # A really was slow: each of its batches stayed open 50 ms, holding the endpoint's row lock.
                assert await admin.fetchval("SELECT held FROM slow_backends") > 0
                for name, rows in seen.items():
                    assert [r["seq"] for r in rows] == list(range(1, total + 1)), name
                    assert sorted(r["id"] for r in rows)[1:] == sorted(acked), name
        finally:
            await admin.close()
    finally:
        await stop_instances(servers)
