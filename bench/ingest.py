#!/usr/bin/env python3
"""Durable ingest throughput and latency, measured with wrk (a real load generator).

Starts `hookscope serve` as a subprocess on a fresh database, creates an endpoint, and runs wrk with 50
concurrent connections POSTing a 1 KiB JSON body. Repeats several runs and prints medians, then checks that
every acknowledged request is really in the database. Installs wrk from Debian's packages when missing.

    python bench/ingest.py [--runs 5] [--duration 10] [--connections 50] [--durability full]

PostgreSQL (issue 11):

    python bench/ingest.py --db postgresql://postgres@127.0.0.1:5432/postgres [--instances 2] [--via-proxy]
    python bench/ingest.py --compare [--db postgresql://...] [--runs 3]

`--db` takes a server URL (a user that may CREATE DATABASE): each run creates a fresh database on that server,
runs the instances on it and drops it afterwards. `--instances N` runs N `hookscope serve` processes on that one
database behind bench/rr_proxy.py (connection-level round robin, so wrk's connections are spread evenly);
one instance is measured directly unless `--via-proxy` puts the proxy in front of it too (to see what the proxy
itself costs). `--compare` alternates SQLite, PostgreSQL with one instance and PostgreSQL with two instances
(`--instances` if more) in each run, prints the medians of each and the ratio of captures/s against SQLite's in
this same session (the figure that survives a noisy machine). The proxy, wrk and PostgreSQL share the machine's
cores with the instances: on a 2-core machine two instances compete with all of them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parent.parent
LOCAL_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
# Databases this script creates start with this, so a leftover from a killed run is easy to recognise.
DB_PREFIX = "hookscope_bench_"

LUA = r"""
wrk.method = "POST"
wrk.body = [[BODY]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Stripe-Signature"] = "t=1700000000,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd"
local ok = 0
response = function(status, headers, body)
  if status == 200 then ok = ok + 1 end
end
done = function(summary, latency, requests)
  io.write(string.format("JSON {\"requests\": %d, \"errors\": %d, \"p50_us\": %d, \"p99_us\": %d, \"mean_us\": %d}\n",
    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read
      + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean))
end
"""


def ensure_wrk() -> str:
    path = shutil.which("wrk")
    if path:
        return path
    print("wrk not found: installing it from Debian's packages", file=sys.stderr)
    subprocess.run(["apt-get", "update", "-qq"], check=False)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
    path = shutil.which("wrk")
    if not path:
        raise SystemExit("could not install wrk")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def body_1kib() -> str:
    payload = {"id": "evt_1NG8Du2eZvKYlo2CUI79vXWy", "object": "event", "type": "invoice.paid", "data": {}}
    text = json.dumps(payload)
    pad = 1024 - len(text) - len(',"pad":""')
    payload["pad"] = "x" * pad
    text = json.dumps(payload, separators=(",", ":"))
    return text[:1024]


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("server exited during start-up")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("server did not start")


# --- PostgreSQL databases ------------------------------------------------------------------------------------


def _on(dsn: str, sql: str, *params: object, fetch: bool = False) -> object:
    """Run one statement on `dsn` over a connection of its own; returns its first value when `fetch`."""
    import asyncpg

    async def go() -> object:
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            if fetch:
                return await conn.fetchval(sql, *params)
            return await conn.execute(sql, *params)
        finally:
            await conn.close()

    return asyncio.run(go())


def database_url(server: str, name: str) -> str:
    """`server` with its database replaced by `name` (user, password, host, port and options kept)."""
    parts = urlsplit(server)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


@contextlib.contextmanager
def fresh_database(server: str) -> Iterator[str]:
    """A new, empty database on the PostgreSQL server `server`; yields its URL and drops it afterwards (also
    when the run failed), with FORCE so a straggling connection cannot keep it alive."""
    name = DB_PREFIX + uuid.uuid4().hex[:12]
    _on(server, f'CREATE DATABASE "{name}"')
    try:
        yield database_url(server, name)
    finally:
        _on(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def stored_count(db: str, endpoint: str) -> int:
    """Rows of `endpoint` in the database `db` (a SQLite file or a postgresql:// URL)."""
    if db.startswith(("postgresql://", "postgres://")):
        count = _on(db, "SELECT count(*) FROM requests WHERE endpoint_id = $1", endpoint, fetch=True)
        assert isinstance(count, int)
        return count
    conn = sqlite3.connect(db)
    try:
        (stored,) = conn.execute("SELECT COUNT(*) FROM requests WHERE endpoint_id = ?", (endpoint,)).fetchone()
    finally:
        conn.close()
    return int(stored)


def committed_transactions(db: str) -> int:
    """pg_stat_database's commit count of the database `db` (read after the instances exited, whose backends
    flushed their statistics when they ended)."""
    sql = "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
    count = _on(db, sql, fetch=True)
    assert isinstance(count, int)
    return count


# --- instances and the proxy ---------------------------------------------------------------------------------


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(":" + parts.password + "@", ":***@")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@dataclass
class Cluster:
    """`instances` `hookscope serve` processes on one database, and bench/rr_proxy.py in front when `proxy`.

    start() starts the first instance, creates an endpoint through it, then starts the others (which load the
    endpoint at open, so a capture sent to any instance finds it without cross-instance fan-out) and waits until
    every instance answers for the endpoint. stop() terminates them all and returns the proxy's connection counts
    (empty without a proxy). Each instance logs to a file in `workdir`; a failed start prints its tail.
    """

    db: str
    instances: int
    proxy: bool
    workdir: Path
    serve_args: list[str] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)
    proxy_proc: subprocess.Popen[str] | None = None
    url: str = ""
    endpoint: str = ""

    def instance_url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.ports[i]}"

    def _spawn(self) -> int:
        i = len(self.procs)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKSCOPE_")}
        cmd = [sys.executable, "-m", "app", "serve", "--port", str(port), "--db", self.db, *self.serve_args]
        log = self.workdir / f"instance-{port}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.ports.append(port)
        self.procs.append(proc)
        self.logs.append(log)
        return i

    def _wait_ready(self, i: int) -> None:
        try:
            wait_ready(self.instance_url(i), self.procs[i], timeout=60)
        except SystemExit:
            print(f"instance {i} (port {self.ports[i]}) failed to start", file=sys.stderr)
            self.print_log_tails([i])
            raise

    def print_log_tails(self, which: list[int] | None = None, chars: int = 2000) -> None:
        """The end of each instance's log (stdout and stderr), on stderr: what to look at when a run failed."""
        for i in range(len(self.logs)) if which is None else which:
            tail = self.logs[i].read_text(errors="replace")[-chars:]
            print(f"--- instance {i} (port {self.ports[i]}) log ends with:\n{tail}", file=sys.stderr)

    def start(self) -> str:
        self._wait_ready(self._spawn())
        req = urllib.request.Request(self.instance_url(0) + "/api/endpoints", data=b"{}", method="POST")
        with urllib.request.urlopen(req) as resp:
            self.endpoint = json.load(resp)["id"]
        others = [self._spawn() for _ in range(1, self.instances)]
        for i in others:
            self._wait_ready(i)
            self._wait_knows_endpoint(i)
        self.url = self.instance_url(0)
        if self.proxy:
            self._start_proxy()
        return self.endpoint

    def _wait_knows_endpoint(self, i: int) -> None:
        deadline = time.monotonic() + 20
        url = f"{self.instance_url(i)}/api/endpoints/{self.endpoint}"
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2):
                    return
            except urllib.error.HTTPError as exc:
                if exc.code != 404 or time.monotonic() > deadline:
                    raise SystemExit(f"instance {i} does not know endpoint {self.endpoint}: {exc}") from None
            time.sleep(0.05)

    def _start_proxy(self) -> None:
        cmd = [sys.executable, str(REPO / "bench" / "rr_proxy.py"), "--listen", "127.0.0.1:0"]
        for port in self.ports:
            cmd += ["--backend", f"127.0.0.1:{port}"]
        self.proxy_proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        out: IO[str] | None = self.proxy_proc.stdout
        assert out is not None
        line = out.readline()
        match = re.fullmatch(r"listening on (127\.0\.0\.1:\d+)\n", line)
        if not match:
            raise SystemExit(f"rr_proxy did not start (said {line!r})")
        self.url = "http://" + match.group(1)

    def stop(self) -> list[int]:
        counts: list[int] = []
        if self.proxy_proc is not None:
            self.proxy_proc.send_signal(signal.SIGTERM)
            rest, _ = self.proxy_proc.communicate(timeout=30)
            found = re.search(r"connections per backend: ([\d ]+)", rest)
            counts = [int(x) for x in found.group(1).split()] if found else []
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(30)
        return counts


# --- runs ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """What one measurement runs on: SQLite (server None) or a PostgreSQL server with N instances."""

    server: str | None
    instances: int = 1
    proxy: bool = False

    @property
    def label(self) -> str:
        if self.server is None:
            return "SQLite"
        n = f"{self.instances} instance{'s' if self.instances > 1 else ''}"
        return f"PostgreSQL, {n}" + (" via rr_proxy" if self.proxy else "")


@dataclass(frozen=True)
class Result:
    rate: float
    p50_ms: float
    p99_ms: float
    errors: int
    acknowledged: int
    stored: int
    spread: tuple[int, ...]  # connections the proxy gave each instance (empty without the proxy)
    # PostgreSQL: transactions committed in the run's database, reads included (pg_stat_database counts a
    # read-only statement as one too), so stored/commits is a lower bound of group commit's batch size.
    commits: int | None = None

    def line(self) -> str:
        text = (f"{self.rate:.0f} captures/s, p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms, "
                f"errors {self.errors}, acknowledged {self.acknowledged}, stored {self.stored}")
        if self.spread:
            text += ", proxy connections " + "+".join(str(c) for c in self.spread)
        if self.commits:
            text += f", {self.commits} transactions (reads included; {self.stored / self.commits:.1f} captures per)"
        return text


def run_once(wrk: str, args: argparse.Namespace, workdir: Path, config: Config) -> Result:
    serve_args = ["--durability", args.durability, "--http", args.http]
    with contextlib.ExitStack() as stack:
        if config.server is None:
            db = str(workdir / f"bench-{uuid.uuid4().hex[:8]}.db")
        else:
            db = stack.enter_context(fresh_database(config.server))
        cluster = Cluster(db, config.instances, config.proxy, workdir, serve_args)
        try:
            endpoint = cluster.start()
            script = workdir / "post.lua"
            script.write_text(LUA.replace("[[BODY]]", "[[" + body_1kib() + "]]"))
            out = subprocess.run(
                [wrk, "-t2", f"-c{args.connections}", f"-d{args.duration}s", "--latency", "-s", str(script),
                 f"{cluster.url}/h/{endpoint}"],
                capture_output=True, text=True, check=True,
            ).stdout
            line = next(x for x in out.splitlines() if x.startswith("JSON "))
            stats = json.loads(line[5:])
            rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
        finally:
            spread = cluster.stop()
        stored = stored_count(db, endpoint)
        commits = None if config.server is None else committed_transactions(db)
    acknowledged = stats["requests"] - stats["errors"]
    # wrk counts a request when its response arrived; every 200 must be stored (stored may exceed it by
    # requests still in flight when wrk stopped, which committed but whose answers were not counted).
    if stored < acknowledged:
        raise SystemExit(f"LOST DATA ({config.label}): {acknowledged} acknowledged but only {stored} stored")
    return Result(rate, stats["p50_us"] / 1000, stats["p99_us"] / 1000, stats["errors"], acknowledged, stored,
                  tuple(spread), commits)


def medians(results: list[Result]) -> dict[str, float]:
    return {
        "rate": statistics.median(r.rate for r in results),
        "p50_ms": statistics.median(r.p50_ms for r in results),
        "p99_ms": statistics.median(r.p99_ms for r in results),
        "errors": sum(r.errors for r in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--durability", default="full", choices=["full", "normal"])
    parser.add_argument("--http", default="auto", choices=["auto", "httptools", "h11"])
    parser.add_argument("--db", default=None, metavar="postgresql://USER@HOST:PORT/DB",
                        help="a PostgreSQL server (a fresh database is created on it for each run); default SQLite")
    parser.add_argument("--instances", type=int, default=None,
                        help="hookscope processes on the one PostgreSQL database, behind rr_proxy when more than one")
    parser.add_argument("--via-proxy", action="store_true", help="put rr_proxy in front of a single instance too")
    parser.add_argument("--compare", action="store_true",
                        help=f"alternate SQLite, PostgreSQL x1 and x2 in each run (server: --db, else {LOCAL_PG})")
    args = parser.parse_args()
    if args.db is not None and not args.db.startswith(("postgresql://", "postgres://")):
        parser.error("--db takes a postgresql:// server URL (SQLite is the default)")
    if args.instances is not None and args.instances < 1:
        parser.error("--instances must be at least 1")
    if (args.instances is not None or args.via_proxy) and args.db is None and not args.compare:
        parser.error("--instances and --via-proxy need --db postgresql://... (SQLite runs one process)")
    wrk = ensure_wrk()

    if args.compare:
        server = args.db or LOCAL_PG
        many = max(2, args.instances or 2)
        configs = [Config(None), Config(server, 1, args.via_proxy), Config(server, many, True)]
    elif args.db is not None:
        n = args.instances or 1
        configs = [Config(args.db, n, n > 1 or args.via_proxy)]
    else:
        configs = [Config(None)]
    default_output = configs == [Config(None)]

    results: dict[Config, list[Result]] = {c: [] for c in configs}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            # Alternating within each run, so a machine that slows down during the session affects all alike.
            for config in configs:
                r = run_once(wrk, args, Path(tmp), config)
                results[config].append(r)
                where = "" if default_output else f" ({config.label})"
                print(f"run {i + 1}{where}: {r.line()}", flush=True)

    setup = (f"{args.connections} connections, 1 KiB JSON, durability {args.durability}, "
             f"{os.cpu_count()} cores")
    for config in configs:
        med = medians(results[config])
        if default_output:
            print(f"median of {args.runs} runs ({setup}): {med['rate']:.0f} captures/s, "
                  f"p50 {med['p50_ms']:.1f} ms, p99 {med['p99_ms']:.1f} ms")
        else:
            print(f"median of {args.runs} runs, {config.label} ({setup}): {med['rate']:.0f} captures/s, "
                  f"p50 {med['p50_ms']:.1f} ms, p99 {med['p99_ms']:.1f} ms, errors {med['errors']:.0f} in all")
    if args.compare:
        base = medians(results[configs[0]])["rate"]
        ratios = ", ".join(
            f"{c.label.removeprefix('PostgreSQL, ')} {medians(results[c])['rate'] / base:.2f}" for c in configs[1:]
        )
        print(f"PostgreSQL vs SQLite in this run: {ratios} (captures/s, medians; server {redact(server)})")


if __name__ == "__main__":
    main()
