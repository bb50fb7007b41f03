"""Process-level guarantees: a 2xx survives kill -9; memory stays flat with huge and concurrent bodies."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from tests.support import LOCAL_TLS, ServerProcess


def _body(i: int) -> bytes:
    seed = hashlib.sha256(str(i).encode()).digest()
    if i % 25 == 0:
        return seed * 20_000  # 640 KB: spilled to a body file
    return seed * (1 + i % 40) + bytes(range(256))


async def test_every_acknowledged_request_survives_kill_9(tmp_path: Path) -> None:
    db = tmp_path / "crash.db"
    acked: dict[int, int] = {}  # request id -> body index
    with ServerProcess(db) as srv:
        async with httpx.AsyncClient(base_url=srv.url, trust_env=False, verify=LOCAL_TLS, timeout=10,
                                     limits=httpx.Limits(max_connections=32)) as client:
            ep = (await client.post("/api/endpoints")).json()["id"]
            killed = asyncio.Event()
            enough = asyncio.Event()

            async def sender(worker: int) -> None:
                i = worker
                while True:
                    try:
                        resp = await client.post(f"/h/{ep}/w{worker}", content=_body(i),
                                                 headers=[("x-index", str(i)), ("x-dup", "a"), ("x-dup", "b")])
                    except httpx.TransportError:
                        if killed.is_set():
                            return
                        raise
                    if resp.status_code == 200:
                        acked[int(resp.headers["x-hookscope-request-id"])] = i
                        if len(acked) >= 400:
                            enough.set()
                    i += 32

            async def killer() -> None:
                await enough.wait()
                srv.kill9()  # mid-load: 32 senders have requests in flight
                killed.set()

            async with asyncio.timeout(120):
                await asyncio.gather(killer(), *(sender(w) for w in range(32)))
    assert len(acked) >= 400

    with ServerProcess(db) as srv:
        async with httpx.AsyncClient(base_url=srv.url, trust_env=False, verify=LOCAL_TLS, timeout=30) as client:
            for rid, i in acked.items():
                raw = await client.get(f"/api/requests/{rid}/raw")
                assert raw.status_code == 200, rid
                assert raw.content == _body(i), rid
                meta = (await client.get(f"/api/requests/{rid}", params={"max_body": 0})).json()
                assert ["x-index", str(i)] in meta["headers"]
                dups = [v for n, v in meta["headers"] if n == "x-dup"]
                assert dups == ["a", "b"]


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def _reset_peak(pid: int) -> None:
    # Writing "5" to clear_refs resets the peak RSS (VmHWM) to the current RSS (Linux >= 4.0).
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


async def _chunks(total: int, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    block = os.urandom(size)
    sent = 0
    while sent < total:
        n = min(size, total - sent)
        yield block[:n]
        sent += n


async def test_memory_stays_flat_with_huge_and_concurrent_bodies(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "mem.db", ["--max-body", "25MiB"]) as srv:
        async with httpx.AsyncClient(base_url=srv.url, trust_env=False, verify=LOCAL_TLS, timeout=60) as client:
            ep = (await client.post("/api/endpoints")).json()["id"]
            await client.post(f"/h/{ep}", content=b"warm-up")
            _reset_peak(srv.pid)
            base = _peak_rss_kib(srv.pid)

            # 30 MiB streamed (chunked, no Content-Length): refused with 413 while streaming.
            resp = await client.post(f"/h/{ep}", content=_chunks(30 * 1024 * 1024))
            assert resp.status_code == 413
            growth_413 = _peak_rss_kib(srv.pid) - base
            assert growth_413 < 16 * 1024, f"peak RSS grew {growth_413} KiB on a refused 30 MiB body"

            # Ten concurrent 20 MiB uploads are accepted and stored without buffering them in memory.
            results = await asyncio.gather(
                *(client.post(f"/h/{ep}/big", content=_chunks(20 * 1024 * 1024)) for _ in range(10))
            )
            assert [r.status_code for r in results] == [200] * 10
            growth = _peak_rss_kib(srv.pid) - base
            assert growth < 48 * 1024, f"peak RSS grew {growth} KiB with 10 x 20 MiB concurrent bodies"
            rids = [r.headers["x-hookscope-request-id"] for r in results]
            sizes = [(await client.get(f"/api/requests/{rid}?max_body=0")).json()["body_size"] for rid in rids]
            assert sizes == [20 * 1024 * 1024] * 10


async def test_sigterm_drains_and_exits_cleanly(tmp_path: Path) -> None:
    db = tmp_path / "term.db"
    srv = ServerProcess(db)
    srv.start()
    acked: list[int] = []
    try:
        async with httpx.AsyncClient(base_url=srv.url, trust_env=False, verify=LOCAL_TLS, timeout=10) as client:
            ep = (await client.post("/api/endpoints")).json()["id"]
            stop = asyncio.Event()

            async def sender() -> None:
                while not stop.is_set():
                    try:
                        resp = await client.post(f"/h/{ep}", content=b"t" * 100)
                    except httpx.TransportError:
                        return
                    if resp.status_code == 200:
                        acked.append(int(resp.headers["x-hookscope-request-id"]))
                        if len(acked) == 100:
                            stop.set()

            tasks = [asyncio.create_task(sender()) for _ in range(8)]
            await asyncio.wait_for(stop.wait(), 60)
            returncode = await asyncio.to_thread(srv.stop)
            await asyncio.gather(*tasks)
        assert srv.proc is not None and srv.proc.stderr is not None
        log = srv.proc.stderr.read().decode()
    finally:
        if srv.proc and srv.proc.stderr:
            srv.proc.stderr.close()
    # uvicorn finishes in-flight requests, runs our lifespan shutdown (the writer commits what is queued), then
    # re-raises SIGTERM so the exit status says how it ended.
    assert returncode in (0, -15)
    assert "Application shutdown complete." in log and "Traceback" not in log
    with ServerProcess(db) as again:
        async with httpx.AsyncClient(base_url=again.url, trust_env=False, verify=LOCAL_TLS) as client:
            for rid in acked:
                assert (await client.get(f"/api/requests/{rid}/raw")).content == b"t" * 100
