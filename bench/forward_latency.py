"""Forwarding benchmark: capture-to-target latency at a fixed rate, and catch-up throughput after a reconnect.

    python bench/forward_latency.py [--rate 200] [--seconds 10] [--backlog 10000] [--runs 3]

Starts `hookscope serve` (subprocess, default durability FULL) and a recording target (raw asyncio HTTP/1.1
server in this process), then for each run:
  * relay:   `hookscope forward` (subprocess) to the target; open-loop load at --rate requests/s; latency is the
             target's receive time minus the moment the request was written by the load generator (same clock);
  * forward: the same through the endpoint's server-side `forward_targets`;
  * catch-up (relay): stop the relay, capture --backlog requests, start it again; rate = backlog / (last - first
             arrival at the target);
  * catch-up (forward): target down while --backlog requests are captured, then up; same rate.
Prints each run and the medians. The load generator is a small asyncio client (httpx is too slow to drive this).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.delivery.target import Received, RecordingTarget  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Loader:
    """Keep-alive HTTP/1.1 connections writing POSTs to one ingest URL; records when each was written."""

    def __init__(self, port: int, path: str, conns: int = 8) -> None:
        self.port = port
        self.path = path.encode()
        self.conns = conns
        self.sent_at: dict[int, float] = {}
        self.statuses: dict[int, int] = {}
        self._pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()

    async def open(self) -> None:
        for _ in range(self.conns):
            self._pool.put_nowait(await asyncio.open_connection("127.0.0.1", self.port))

    async def close(self) -> None:
        while not self._pool.empty():
            _, w = self._pool.get_nowait()
            w.close()

    async def one(self, seq: int) -> None:
        reader, writer = await self._pool.get()
        body = json.dumps({"seq": seq, "pad": "x" * 200}).encode()
        head = (b"POST " + self.path + b" HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
                b"x-seq: " + str(seq).encode() + b"\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n")
        self.sent_at[seq] = time.perf_counter()
        writer.write(head + body)
        line = await reader.readuntil(b"\r\n\r\n")
        status = int(line.split(b" ", 2)[1])
        length = 0
        for h in line.split(b"\r\n")[1:]:
            if h.lower().startswith(b"content-length:"):
                length = int(h.split(b":", 1)[1])
        await reader.readexactly(length)
        self.statuses[seq] = status
        self._pool.put_nowait((reader, writer))

    async def paced(self, rate: float, seconds: float, first: int) -> list[int]:
        n = int(rate * seconds)
        start = time.perf_counter()
        tasks = []
        for i in range(n):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self.one(first + i)))
        await asyncio.gather(*tasks)
        return list(range(first, first + n))

    async def burst(self, n: int, first: int) -> None:
        seqs = iter(range(first, first + n))

        async def lane() -> None:
            for seq in seqs:
                await self.one(seq)

        await asyncio.gather(*(lane() for _ in range(self.conns)))


def seq_of(r: Received) -> int:
    return int(r.header(b"x-seq") or b"-1")


def percentiles(values: list[float]) -> tuple[float, float, float]:
    values = sorted(values)
    pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]  # noqa: E731
    return pick(0.5), pick(0.99), values[-1]


async def api(port: int, method: str, path: str, body: Any = None) -> Any:
    import httpx

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", trust_env=False) as c:
        resp = await c.request(method, path, json=body)
        resp.raise_for_status()
        return resp.json() if resp.content else None


async def wait_for(cond: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark condition not met")
        await asyncio.sleep(0.005)


def start_relay(port: int, ep: str, target: str, name: str, start: str | None = None) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "app", "forward", f"http://127.0.0.1:{port}/h/{ep}", "--to", target,
           "--name", name, "--quiet", "--no-color", *(["--from", start] if start else [])]
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    proc.wait(20)


async def relay_connected(port: int, ep: str, name: str) -> None:
    for _ in range(2000):
        relays = (await api(port, "GET", f"/api/endpoints/{ep}/relays"))["relays"]
        if any(r["name"] == name and r["connected"] for r in relays):
            return
        await asyncio.sleep(0.01)
    raise TimeoutError("relay did not connect")


async def latency_run(port: int, target: RecordingTarget, mode: str, rate: float, seconds: float,
                      seq0: int) -> dict[str, float]:
    ep = (await api(port, "POST", "/api/endpoints",
                    {"forward_targets": [target.url]} if mode == "forward" else {}))["id"]
    relay = None
    if mode == "relay":
        relay = start_relay(port, ep, target.url, f"bench-{seq0}", "now")
        await relay_connected(port, ep, f"bench-{seq0}")
    loader = Loader(port, f"/h/{ep}")
    await loader.open()
    target.received.clear()
    seqs = await loader.paced(rate, seconds, seq0)
    await wait_for(lambda: len(target.received) >= len(seqs), 60)
    await loader.close()
    if relay is not None:
        stop(relay)
    arrivals = {seq_of(r): r.at for r in target.received}
    lat = [(arrivals[s] - loader.sent_at[s]) * 1000 for s in seqs]
    p50, p99, worst = percentiles(lat)
    in_order = [seq_of(r) for r in target.received] == sorted(seq_of(r) for r in target.received)
    return {"p50_ms": p50, "p99_ms": p99, "max_ms": worst, "n": len(seqs), "in_order": float(in_order)}


async def catchup_relay(port: int, target: RecordingTarget, backlog: int, seq0: int) -> dict[str, float]:
    ep = (await api(port, "POST", "/api/endpoints", {}))["id"]
    name = f"catchup-{seq0}"
    relay = start_relay(port, ep, target.url, name, "now")
    await relay_connected(port, ep, name)
    stop(relay)  # the cursor now exists; everything captured from here is the backlog
    loader = Loader(port, f"/h/{ep}")
    await loader.open()
    await loader.burst(backlog, seq0)
    await loader.close()
    target.received.clear()
    relay = start_relay(port, ep, target.url, name)
    await wait_for(lambda: len(target.received) >= backlog, 120)
    stop(relay)
    span = target.received[-1].at - target.received[0].at
    return {"rate": backlog / span, "n": backlog}


async def catchup_forward(port: int, backlog: int, seq0: int) -> dict[str, float]:
    tport = free_port()
    ep = (await api(port, "POST", "/api/endpoints", {"forward_targets": [f"http://127.0.0.1:{tport}"]}))["id"]
    loader = Loader(port, f"/h/{ep}")
    await loader.open()
    await loader.burst(backlog, seq0)
    await loader.close()
    async with RecordingTarget(port=tport) as target:
        await wait_for(lambda: len(target.received) >= backlog, 300)
        span = target.received[-1].at - target.received[0].at
    return {"rate": backlog / span, "n": backlog}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--backlog", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--durability", default="full")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="hookscope-bench-"))
    port = free_port()
    # Started once before any measurement, so blocking the loop here is harmless.
    server = subprocess.Popen(  # noqa: ASYNC220
        [sys.executable, "-m", "app", "serve", "--port", str(port), "--db", str(tmp / "b.db"),
         "--durability", args.durability, "--forward-retry", "50ms,1s,1h", "--retention-count", "0",
         "--log-level", "warning"],
        cwd=REPO, stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(500):
            try:
                await api(port, "GET", "/healthz")
                break
            except Exception:
                await asyncio.sleep(0.02)
        print(f"load average before: {os.getloadavg()[0]:.2f}; cores: {os.cpu_count()}; "
              f"durability {args.durability}", flush=True)
        results: dict[str, list[dict[str, float]]] = {"relay": [], "forward": [], "catchup_relay": [],
                                                      "catchup_forward": []}
        seq = 0
        async with RecordingTarget() as target:
            for run in range(args.runs):
                for mode in ("relay", "forward"):
                    r = await latency_run(port, target, mode, args.rate, args.seconds, seq)
                    seq += 1_000_000
                    results[mode].append(r)
                    print(f"run {run + 1} {mode:8s} {args.rate:.0f}/s: p50 {r['p50_ms']:.2f} ms  "
                          f"p99 {r['p99_ms']:.2f} ms  max {r['max_ms']:.2f} ms  in order: {bool(r['in_order'])}",
                          flush=True)
                r = await catchup_relay(port, target, args.backlog, seq)
                seq += 1_000_000
                results["catchup_relay"].append(r)
                print(f"run {run + 1} relay catch-up of {args.backlog}: {r['rate']:.0f} requests/s", flush=True)
                r = await catchup_forward(port, args.backlog, seq)
                seq += 1_000_000
                results["catchup_forward"].append(r)
                print(f"run {run + 1} forward catch-up of {args.backlog}: {r['rate']:.0f} requests/s", flush=True)
        print("\nmedians of", args.runs, "runs:")
        for mode in ("relay", "forward"):
            rs = results[mode]
            print(f"  {mode:8s} p50 {statistics.median(r['p50_ms'] for r in rs):.2f} ms, "
                  f"p99 {statistics.median(r['p99_ms'] for r in rs):.2f} ms")
        for mode in ("catchup_relay", "catchup_forward"):
            print(f"  {mode}: {statistics.median(r['rate'] for r in results[mode]):.0f} requests/s")
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)


if __name__ == "__main__":
    asyncio.run(main())
