#!/usr/bin/env python3
"""Capture -> live latency across instances: captures POSTed to instance A, watched on instance B's live socket.

    python bench/live_instances.py [--db postgresql://postgres@127.0.0.1:5432/postgres] [--rate 200]
                                   [--seconds 10] [--runs 1] [--watch b|a]

For each run: a fresh database on the PostgreSQL server (dropped afterwards), two `hookscope serve` processes on it
(A and B), one endpoint. A websocket client on B's `/api/endpoints/{id}/live?after=0` waits for "synced", then an
open-loop load generator POSTs to A at --rate requests/s for --seconds (a few keep-alive connections; each
request's acknowledgement time is when its whole 200 answer was read). Every `requests` frame is timestamped on
arrival; latency = frame received - POST acknowledged, both on this process's monotonic clock.

Checks, per run: every acknowledged request arrives on the socket exactly once, in strictly increasing seq order,
with no seq gaps, and nothing arrives that was not acknowledged. After the load the script waits up to --drain
seconds for the last ones. Exits 1 when a check fails. `--watch a` watches A itself (the same-instance baseline).

A negative latency means the frame arrived before this process had read the 200 answer (an instance publishes
after COMMIT, before its answer is written; on the same instance that is the rule); those are counted as they
are. Each run line also gives the latency from the moment the POST was written (the sender's view).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ingest import LOCAL_PG, Cluster, fresh_database, redact
from websockets.asyncio.client import ClientConnection, connect

BODY_PAD = "x" * 200


@dataclass
class Acks:
    """What the load generator saw: request id -> time its 200 was read, and time its POST was written; the
    non-200 statuses (0: the connection closed)."""

    at: dict[int, float] = field(default_factory=dict)
    sent: dict[int, float] = field(default_factory=dict)
    failures: list[int] = field(default_factory=list)


class Loader:
    """Keep-alive HTTP/1.1 connections POSTing to one ingest URL at a paced (open-loop) rate."""

    def __init__(self, port: int, path: str, conns: int) -> None:
        self.port = port
        self.path = path.encode()
        self.conns = conns
        self.acks = Acks()
        self._pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()

    async def open(self) -> None:
        for _ in range(self.conns):
            self._pool.put_nowait(await asyncio.open_connection("127.0.0.1", self.port))

    async def close(self) -> None:
        while not self._pool.empty():
            _, writer = self._pool.get_nowait()
            writer.close()
            await writer.wait_closed()

    async def one(self, n: int) -> None:
        reader, writer = await self._pool.get()
        body = json.dumps({"n": n, "pad": BODY_PAD}).encode()
        head = (b"POST " + self.path + b" HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
                b"content-length: " + str(len(body)).encode() + b"\r\n\r\n")
        try:
            sent = time.perf_counter()
            writer.write(head + body)
            head_in = await reader.readuntil(b"\r\n\r\n")
            status = int(head_in.split(b" ", 2)[1])
            length = 0
            for line in head_in.split(b"\r\n")[1:]:
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            answer = await reader.readexactly(length)
        except (OSError, asyncio.IncompleteReadError):
            # The server closed this connection (an error answer with Connection: close, a crash): counted as a
            # failed POST, and the pool gets a fresh connection so the paced load goes on.
            writer.close()
            self.acks.failures.append(0)
            self._pool.put_nowait(await asyncio.open_connection("127.0.0.1", self.port))
            return
        acked = time.perf_counter()
        self._pool.put_nowait((reader, writer))
        if status != 200:
            self.acks.failures.append(status)
            return
        rid = int(json.loads(answer)["request_id"])
        self.acks.at[rid] = acked
        self.acks.sent[rid] = sent

    async def paced(self, rate: float, seconds: float) -> None:
        total = int(rate * seconds)
        start = time.perf_counter()
        tasks: list[asyncio.Task[None]] = []
        try:
            for i in range(total):
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(self.one(i)))
        finally:
            # Owned here: every request task is awaited before the load counts as done.
            await asyncio.gather(*tasks)


@dataclass
class Seen:
    """The `requests` frames' rows, in arrival order: (request id, seq, time the frame was received)."""

    rows: list[tuple[int, int, float]] = field(default_factory=list)
    frames: int = 0
    synced: asyncio.Event = field(default_factory=asyncio.Event)


async def watch(ws: ClientConnection, seen: Seen) -> None:
    async for message in ws:
        received = time.perf_counter()
        frame = json.loads(message)
        kind = frame.get("type")
        if kind == "synced":
            seen.synced.set()
        elif kind == "requests":
            seen.frames += 1
            seen.rows.extend((r["id"], r["seq"], received) for r in frame["requests"])
        elif kind == "reset":
            raise RuntimeError("live socket sent reset")


def pick(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


async def measure(args: argparse.Namespace, cluster: Cluster) -> tuple[bool, list[float]]:
    """One run on a started cluster; prints its line; returns whether every check passed, and the latencies."""
    endpoint = cluster.endpoint
    a_port = cluster.ports[0]
    b_port = cluster.ports[0 if args.watch == "a" else 1]
    seen = Seen()
    loader = Loader(a_port, f"/h/{endpoint}", args.connections)
    async with connect(f"ws://127.0.0.1:{b_port}/api/endpoints/{endpoint}/live?after=0", max_size=2**24) as ws:
        watcher = asyncio.create_task(watch(ws, seen))
        try:
            await asyncio.wait_for(seen.synced.wait(), 10)
            await loader.open()
            try:
                await loader.paced(args.rate, args.seconds)
            finally:
                await loader.close()
            deadline = time.monotonic() + args.drain
            acked = loader.acks.at
            while time.monotonic() < deadline and not watcher.done():
                if len({rid for rid, _, _ in seen.rows} & acked.keys()) == len(acked):
                    break
                await asyncio.sleep(0.05)
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        if watcher.done() and not watcher.cancelled() and watcher.exception() is not None:
            print(f"live socket failed: {watcher.exception()!r}", flush=True)
            return False, []
    return report(args, loader.acks, seen)


def report(args: argparse.Namespace, acks: Acks, seen: Seen) -> tuple[bool, list[float]]:
    """Prints the run's line; returns whether every check passed, and the latencies in ms."""
    ids = [rid for rid, _, _ in seen.rows]
    seqs = [seq for _, seq, _ in seen.rows]
    counts: dict[int, int] = {}
    for rid in ids:
        counts[rid] = counts.get(rid, 0) + 1
    duplicates = sum(1 for c in counts.values() if c > 1)
    missing = len(acks.at.keys() - counts.keys())
    unexpected = len(counts.keys() - acks.at.keys())
    out_of_order = sum(1 for x, y in itertools.pairwise(seqs) if y <= x)
    gaps = (max(seqs) - min(seqs) + 1 - len(set(seqs))) if seqs else 0
    first: dict[int, float] = {}
    for rid, _, t in seen.rows:
        first.setdefault(rid, t)
    latencies = sorted((first[rid] - t) * 1000 for rid, t in acks.at.items() if rid in first)
    from_sent = sorted((first[rid] - t) * 1000 for rid, t in acks.sent.items() if rid in first)
    where = "A" if args.watch == "a" else "B"
    line = (f"{len(acks.at)} acknowledged ({len(acks.failures)} failed), {len(counts)} arrived on {where} in "
            f"{seen.frames} frames")
    if latencies:
        line += (f"; capture -> live p50 {pick(latencies, 0.5):.1f} ms, p99 {pick(latencies, 0.99):.1f} ms, "
                 f"max {latencies[-1]:.1f} ms (from POST written: p50 {pick(from_sent, 0.5):.1f} ms, "
                 f"p99 {pick(from_sent, 0.99):.1f} ms)")
    problems = {"missing": missing, "duplicated": duplicates, "out of seq order": out_of_order,
                "seq gaps": gaps, "not acknowledged": unexpected, "failed POSTs": len(acks.failures)}
    bad = {k: v for k, v in problems.items() if v}
    line += "; " + (", ".join(f"{k} {v}" for k, v in bad.items()) if bad
                    else "every acknowledged request exactly once, in seq order, no gaps")
    print(line, flush=True)
    return not bad and bool(acks.at), latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default=LOCAL_PG, help="a PostgreSQL server URL (a user that may CREATE DATABASE)")
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--connections", type=int, default=8, help="keep-alive connections of the load generator")
    parser.add_argument("--drain", type=float, default=15, help="seconds to wait for the last frames after the load")
    parser.add_argument("--watch", default="b", choices=["a", "b"], help="b: across instances; a: the same one")
    parser.add_argument("--durability", default="full", choices=["full", "normal"])
    args = parser.parse_args()
    if not args.db.startswith(("postgresql://", "postgres://")):
        parser.error("--db takes a postgresql:// server URL")
    ok = True
    all_latencies: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            with fresh_database(args.db) as db:
                cluster = Cluster(db, 2, False, Path(tmp), ["--durability", args.durability])
                try:
                    cluster.start()
                    print(f"run {i + 1}: ", end="", flush=True)
                    passed, latencies = asyncio.run(measure(args, cluster))
                    if not passed:
                        cluster.print_log_tails()
                    ok = ok and passed
                    all_latencies += latencies
                finally:
                    cluster.stop()
    if all_latencies:
        all_latencies.sort()
        print(f"all {args.runs} runs ({args.rate:.0f}/s for {args.seconds:.0f} s, A -> {args.watch.upper()}, "
              f"durability {args.durability}, server {redact(args.db)}): capture -> live p50 "
              f"{pick(all_latencies, 0.5):.1f} ms, p99 {pick(all_latencies, 0.99):.1f} ms, "
              f"max {all_latencies[-1]:.1f} ms ({len(all_latencies)} captures)")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
