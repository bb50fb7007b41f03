#!/usr/bin/env python3
"""Durable ingest throughput and latency against the HTTP stack's own ceiling, measured with wrk.

Each run starts a fresh server as a subprocess, puts wrk's load on it (2 threads, 50 connections) and stops it,
alternating, so a machine that slows down during the session affects every configuration alike:

- the ceiling: bench/ceiling_app.py, a bare ASGI app that reads the body and answers 200 on the uvicorn that
  `hookscope serve` runs (uvloop, httptools, no access log); `--guarded-ceiling` runs it under hookscope's HTTP
  guard too;
- hookscope with `--durability full` (every acknowledged capture fsynced) and `normal`, on a fresh database.

And it does so for two load profiles:

- `plain`: one 1 KiB JSON body with a Stripe-Signature header and no verification configured;
- `providers`: Stripe events (payment_intent.succeeded, ~1.5 KiB pretty-printed, Stripe's header set, signed
  with a fresh timestamp every run) and GitHub push events (~3.5 KiB, GitHub's ten headers, X-Hub-Signature-256)
  in turn, to two endpoints whose `verify` is configured with the matching secrets, so every capture is
  detected, verified and looked up for duplicates.

It prints every run, then the medians of each configuration and hookscope's rate as a ratio of the ceiling's
measured in the same run (the figure that survives a change of machine), with RSS 2 s into each run and at its
end. After each hookscope run it checks that every acknowledged request is in the database. Installs wrk from
Debian's packages when missing.

    python bench/ingest.py [--runs 5] [--duration 10] [--durability full,normal] [--profile plain,providers]
    python bench/ingest.py --no-ceiling --durability full --profile plain --runs 3   # a quick check

PostgreSQL (issue 11):

    python bench/ingest.py --db postgresql://postgres@127.0.0.1:5432/postgres [--instances 2] [--via-proxy]
    python bench/ingest.py --compare [--db postgresql://...] [--runs 3]

`--db` takes a server URL (a user that may CREATE DATABASE): each run creates a fresh database on that server,
runs the instances on it and drops it afterwards. `--instances N` runs N `hookscope serve` processes on that one
database behind bench/rr_proxy.py (connection-level round robin, so wrk's connections are spread evenly);
one instance is measured directly unless `--via-proxy` puts the proxy in front of it too (to see what the proxy
itself costs). `--compare` alternates SQLite, PostgreSQL with one instance and PostgreSQL with two instances
(`--instances` if more) in each run, prints the medians of each and the ratio of captures/s against SQLite's in
this same session. The proxy, wrk and PostgreSQL share the machine's cores with the instances: on a 2-core
machine two instances compete with all of them. These use the `plain` profile.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parent.parent
LOCAL_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
# Databases this script creates start with this, so a leftover from a killed run is easy to recognise.
DB_PREFIX = "hookscope_bench_"

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
    endpoints: list[str] = field(default_factory=list)

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

    def start(self, payloads: list[dict[str, object]] | None = None) -> list[str]:
        """Start the instances with the endpoints `payloads` describe (POST /api/endpoints bodies; one default
        endpoint when None); returns their ids."""
        self._wait_ready(self._spawn())
        self.endpoints = []
        for payload in payloads or [{}]:
            req = urllib.request.Request(self.instance_url(0) + "/api/endpoints", data=json.dumps(payload).encode(),
                                         method="POST", headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req) as resp:
                self.endpoints.append(json.load(resp)["id"])
        self.endpoint = self.endpoints[0]
        others = [self._spawn() for _ in range(1, self.instances)]
        for i in others:
            self._wait_ready(i)
            for endpoint in self.endpoints:
                self._wait_knows_endpoint(i, endpoint)
        self.url = self.instance_url(0)
        if self.proxy:
            self._start_proxy()
        return self.endpoints

    def _wait_knows_endpoint(self, i: int, endpoint: str) -> None:
        deadline = time.monotonic() + 20
        url = f"{self.instance_url(i)}/api/endpoints/{endpoint}"
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2):
                    return
            except urllib.error.HTTPError as exc:
                if exc.code != 404 or time.monotonic() > deadline:
                    raise SystemExit(f"instance {i} does not know endpoint {endpoint}: {exc}") from None
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


# --- load profiles -------------------------------------------------------------------------------------------

PROFILES = {
    "plain": "1 KiB JSON with a Stripe-Signature header, no verification configured",
    "providers": "Stripe- and GitHub-signed events with their real header sets, verification configured",
}
STRIPE_SECRET = "whsec_bench_0123456789abcdefghijklmnopqrstuv"
GITHUB_SECRET = "bench-github-secret-0123456789"
# Distinct events per provider; wrk cycles through them, so later rounds are duplicates of earlier ones (as
# provider retries are) and the duplicate lookup runs for every capture, as in real traffic.
EVENTS = 200

RESPONSE_LUA = r"""
done = function(summary, latency, requests)
  io.write(string.format("JSON {\"requests\": %d, \"errors\": %d, \"p50_us\": %d, \"p99_us\": %d, \"mean_us\": %d}\n",
    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read
      + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean))
end
"""


def lua_string(text: str) -> str:
    """A Lua long-bracket literal holding `text` exactly (a level that does not occur in it)."""
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    return f"[{'=' * level}[{text}]{'=' * level}]"


@dataclass(frozen=True)
class WrkRequest:
    path: str
    headers: tuple[tuple[str, str], ...]
    body: str  # Latin-1 text of the body bytes (wrk sends Lua strings as bytes)


def wrk_script(requests: list[WrkRequest]) -> str:
    """A wrk script sending `requests` in turn on every connection (wrk.format adds Host and Content-Length)."""
    lines = ["local reqs = {}", "init = function(args)"]
    for i, r in enumerate(requests, 1):
        headers = ", ".join(f"[ {lua_string(n)} ] = {lua_string(v)}" for n, v in r.headers)
        lines.append(f"  reqs[{i}] = wrk.format(\"POST\", {lua_string(r.path)}, {{{headers}}}, {lua_string(r.body)})")
    lines += ["end", "local i = 0", "request = function()", "  i = i % #reqs + 1", "  return reqs[i]", "end"]
    return "\n".join(lines) + RESPONSE_LUA


def plain_requests(path: str) -> list[WrkRequest]:
    """Issue 4's load: one 1 KiB JSON body with a (not verified) Stripe-Signature header."""
    return [WrkRequest(path, (
        ("Content-Type", "application/json"),
        ("Stripe-Signature", "t=1700000000,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd"),
    ), body_1kib())]


def _stripe_event(i: int, now: int) -> bytes:
    amount = 1000 + 37 * i
    event = {
        "id": f"evt_3Q{i:08d}BenchEvent{i:06d}", "object": "event", "api_version": "2024-06-20",
        "created": now, "livemode": False, "pending_webhooks": 1, "type": "payment_intent.succeeded",
        "request": {"id": f"req_{i:014d}", "idempotency_key": f"{i:08x}-6a5b-4c3d-9e8f-0123456789ab"},
        "data": {"object": {
            "id": f"pi_3Q{i:010d}", "object": "payment_intent", "amount": amount, "amount_received": amount,
            "currency": "eur", "customer": f"cus_Q{i:012d}", "description": f"Order #{10000 + i}",
            "latest_charge": f"ch_3Q{i:010d}", "livemode": False, "metadata": {"order_id": str(10000 + i)},
            "payment_method": f"pm_1Q{i:010d}", "payment_method_types": ["card"], "status": "succeeded",
            "amount_details": {"tip": {}}, "automatic_payment_methods": None, "capture_method": "automatic",
            "confirmation_method": "automatic", "created": now - 2, "receipt_email": f"buyer{i}@example.com",
            "shipping": {"name": "Jenny Rosen", "address": {"line1": "510 Townsend St", "city": "San Francisco",
                                                             "postal_code": "94103", "country": "US"}},
        }},
    }
    return json.dumps(event, indent=2).encode()


def stripe_requests(path: str, now: int) -> list[WrkRequest]:
    """Stripe events as Stripe sends them, signed now (Stripe's 5-minute tolerance: built afresh per run)."""
    out = []
    for i in range(EVENTS):
        body = _stripe_event(i, now)
        mac = hmac.new(STRIPE_SECRET.encode(), f"{now}.".encode() + body, hashlib.sha256).hexdigest()
        out.append(WrkRequest(path, (
            ("Content-Type", "application/json; charset=utf-8"),
            ("Cache-Control", "no-cache"),
            ("User-Agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)"),
            ("Accept", "*/*; q=0.5, application/xml"),
            ("Stripe-Signature", f"t={now},v1={mac}"),
        ), body.decode("latin-1")))
    return out


def _github_push(i: int) -> bytes:
    user = {"name": "octocat", "email": "octocat@github.com", "username": "octocat"}
    commits = [{
        "id": hashlib.sha1(f"{i}-{c}".encode()).hexdigest(), "tree_id": hashlib.sha1(f"t{i}-{c}".encode()).hexdigest(),
        "distinct": True, "message": f"Fix the thing #{i}.{c}", "timestamp": "2026-11-30T10:00:00+01:00",
        "url": f"https://github.com/octo-org/hello-world/commit/{i:040x}", "author": user, "committer": user,
        "added": [], "removed": [], "modified": ["README.md", f"src/module_{c}.py"],
    } for c in range(3)]
    repo = {"id": 1296269, "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5", "name": "hello-world",
            "full_name": "octo-org/hello-world", "private": False, "owner": {"login": "octo-org", "id": 6811672},
            "html_url": "https://github.com/octo-org/hello-world", "default_branch": "main", "size": 1234,
            "stargazers_count": 80, "watchers_count": 80, "language": "Python", "forks_count": 9}
    event = {"ref": "refs/heads/main", "before": f"{i:040x}", "after": f"{i + 1:040x}", "repository": repo,
             "pusher": {"name": "octocat", "email": "octocat@github.com"},
             "sender": {"login": "octocat", "id": 583231, "type": "User"}, "created": False, "deleted": False,
             "forced": False, "compare": f"https://github.com/octo-org/hello-world/compare/{i:012x}...{i + 1:012x}",
             "commits": commits, "head_commit": commits[-1]}
    return json.dumps(event).encode()


def github_requests(path: str) -> list[WrkRequest]:
    """GitHub push events with GitHub's header set, signed with X-Hub-Signature-256 (and the legacy sha1)."""
    out = []
    for i in range(EVENTS):
        body = _github_push(i)
        sha256 = hmac.new(GITHUB_SECRET.encode(), body, hashlib.sha256).hexdigest()
        sha1 = hmac.new(GITHUB_SECRET.encode(), body, hashlib.sha1).hexdigest()
        out.append(WrkRequest(path, (
            ("Accept", "*/*"),
            ("Content-Type", "application/json"),
            ("User-Agent", "GitHub-Hookshot/8a8c2c5"),
            ("X-GitHub-Delivery", str(uuid.UUID(int=i + 1))),
            ("X-GitHub-Event", "push"),
            ("X-GitHub-Hook-ID", "445566778"),
            ("X-GitHub-Hook-Installation-Target-ID", "1296269"),
            ("X-GitHub-Hook-Installation-Target-Type", "repository"),
            ("X-Hub-Signature", f"sha1={sha1}"),
            ("X-Hub-Signature-256", f"sha256={sha256}"),
        ), body.decode("latin-1")))
    return out


def profile_endpoints(profile: str) -> list[dict[str, object]]:
    """The endpoints a profile sends to (POST /api/endpoints bodies), in the order profile_script takes them."""
    if profile == "plain":
        return [{"name": "bench"}]
    return [{"name": "stripe", "verify": {"scheme": "stripe", "secrets": [STRIPE_SECRET]}},
            {"name": "github", "verify": {"scheme": "github", "secrets": [GITHUB_SECRET]}}]


def profile_script(profile: str, endpoints: list[str]) -> str:
    if profile == "plain":
        return wrk_script(plain_requests(f"/h/{endpoints[0]}"))
    stripe = stripe_requests(f"/h/{endpoints[0]}", int(time.time()))
    github = github_requests(f"/h/{endpoints[1]}")
    return wrk_script([r for pair in zip(stripe, github, strict=True) for r in pair])


# --- servers -------------------------------------------------------------------------------------------------


def rss_mib(pid: int) -> float:
    """Resident memory of a process, MiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Server(contextlib.AbstractContextManager["Server"]):
    """What wrk runs against: `url` (wrk's target), `pid` (the process to watch), `script` (wrk's Lua) and
    `stored()` (what reached the database; None when nothing is stored)."""

    url: str
    pid: int
    endpoints: list[str]
    spread: Sequence[int] = ()
    commits: int | None = None

    def __init__(self, workdir: Path, profile: str) -> None:
        self.workdir = workdir
        self.profile = profile

    def wrk_script(self) -> Path:
        path = self.workdir / f"load-{uuid.uuid4().hex[:8]}.lua"
        path.write_text(profile_script(self.profile, self.endpoints), encoding="latin-1")
        return path

    def stored(self) -> int | None:
        return None


class CeilingServer(Server):
    """bench/ceiling_app.py: reads the body and answers 200; the same load as hookscope's (paths are ignored)."""

    def __init__(self, workdir: Path, profile: str = "plain", guarded: bool = False) -> None:
        super().__init__(workdir, profile)
        self.guarded = guarded
        self.endpoints = [f"ceiling{i}" for i in range(len(profile_endpoints(profile)))]

    def __enter__(self) -> CeilingServer:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKSCOPE_")}
        cmd = [sys.executable, str(REPO / "bench" / "ceiling_app.py"), "--port", str(port)]
        self.proc = subprocess.Popen(cmd + (["--guarded"] if self.guarded else []), cwd=REPO, env=env)
        self.url = f"http://127.0.0.1:{port}"
        self.pid = self.proc.pid
        try:
            wait_ready(self.url, self.proc)
        except BaseException:
            self.proc.kill()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(30)


class HookscopeServer(Server):
    """`hookscope serve` on a fresh database (SQLite in `workdir`, or a new database on the PostgreSQL server
    `pg`), `instances` of them behind rr_proxy when `proxy`, with the profile's endpoints."""

    def __init__(self, workdir: Path, durability: str, profile: str = "plain", pg: str | None = None,
                 instances: int = 1, proxy: bool = False, http: str = "auto") -> None:
        super().__init__(workdir, profile)
        self.pg = pg
        self.serve_args = ["--durability", durability, "--http", http]
        self.instances = instances
        self.proxy = proxy
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> HookscopeServer:
        self._db = contextlib.ExitStack()  # drops a PostgreSQL database when closed
        with contextlib.ExitStack() as undo:  # a failed start stops what started and drops the database
            undo.enter_context(self._db)
            if self.pg is None:
                self.db = str(self.workdir / f"bench-{uuid.uuid4().hex[:8]}.db")
            else:
                self.db = self._db.enter_context(fresh_database(self.pg))
            self.cluster = Cluster(self.db, self.instances, self.proxy, self.workdir, self.serve_args)
            undo.callback(self.cluster.stop)
            self.endpoints = self.cluster.start(profile_endpoints(self.profile))
            self.url = self.cluster.url
            self.pid = self.cluster.procs[0].pid
            undo.pop_all()
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop the instances, then count what they stored, then drop a PostgreSQL database."""
        with self._db:
            self.spread = self.cluster.stop()
            if exc[0] is None:
                self.rows = sum(stored_count(self.db, e) for e in self.endpoints)
                self.commits = committed_transactions(self.db) if self.pg is not None else None

    def stored(self) -> int | None:
        return self.rows


# --- runs ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """What one measurement runs: the ceiling app, or hookscope with a durability on SQLite (server None) or on
    a PostgreSQL server with N instances; and the load profile."""

    kind: str = "hookscope"  # "hookscope" or "ceiling"
    profile: str = "plain"
    durability: str = "full"
    server: str | None = None
    instances: int = 1
    proxy: bool = False

    @property
    def label(self) -> str:
        if self.kind == "ceiling":
            return f"ceiling ({self.profile})"
        if self.server is None:
            return f"hookscope {self.durability} ({self.profile})"
        n = f"{self.instances} instance{'s' if self.instances > 1 else ''}"
        return f"PostgreSQL, {n}" + (" via rr_proxy" if self.proxy else "")


@dataclass(frozen=True)
class Result:
    rate: float
    p50_ms: float
    p99_ms: float
    errors: int
    acknowledged: int
    stored: int | None
    spread: tuple[int, ...]  # connections the proxy gave each instance (empty without the proxy)
    rss_mib: tuple[float, float]  # the server's resident memory 2 s into the load, and at its end
    # PostgreSQL: transactions committed in the run's database, reads included (pg_stat_database counts a
    # read-only statement as one too), so stored/commits is a lower bound of group commit's batch size.
    commits: int | None = None

    def line(self) -> str:
        text = f"{self.rate:.0f}/s, p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms, errors {self.errors}"
        if self.stored is not None:
            text += f", acknowledged {self.acknowledged}, stored {self.stored}"
        text += f", RSS {self.rss_mib[0]:.0f} -> {self.rss_mib[1]:.0f} MiB"
        if self.spread:
            text += ", proxy connections " + "+".join(str(c) for c in self.spread)
        if self.commits:
            text += f", {self.commits} transactions (reads included; {(self.stored or 0) / self.commits:.1f} per)"
        return text


def run_wrk(wrk: str, server: Server, args: argparse.Namespace) -> tuple[dict[str, int], float, tuple[float, float]]:
    """wrk's summary, its requests/s, and the server's RSS 2 s into the load and at its end."""
    script = server.wrk_script()
    proc = subprocess.Popen(
        [wrk, "-t2", f"-c{args.connections}", f"-d{args.duration}s", "--latency", "-s", str(script), server.url],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        proc.wait(timeout=2)
    except subprocess.TimeoutExpired:
        pass
    first = rss_mib(server.pid)
    out, _ = proc.communicate()
    last = rss_mib(server.pid)
    if proc.returncode != 0:
        raise SystemExit(f"wrk failed: {out}")
    line = next(x for x in out.splitlines() if x.startswith("JSON "))
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return json.loads(line[5:]), rate, (first, last)


def run_once(wrk: str, args: argparse.Namespace, workdir: Path, config: Config) -> Result:
    if config.kind == "ceiling":
        with CeilingServer(workdir, config.profile, guarded=args.guarded_ceiling) as ceiling:
            stats, rate, rss = run_wrk(wrk, ceiling, args)
        return Result(rate, stats["p50_us"] / 1000, stats["p99_us"] / 1000, stats["errors"],
                      stats["requests"] - stats["errors"], None, (), rss)
    server = HookscopeServer(workdir, config.durability, config.profile, config.server, config.instances,
                             config.proxy, args.http)
    with server:
        stats, rate, rss = run_wrk(wrk, server, args)
    stored, commits = server.stored(), server.commits
    acknowledged = stats["requests"] - stats["errors"]
    # wrk counts a request when its response arrived; every 200 must be stored (stored may exceed it by
    # requests still in flight when wrk stopped, which committed but whose answers were not counted).
    if stored is not None and stored < acknowledged:
        raise SystemExit(f"LOST DATA ({config.label}): {acknowledged} acknowledged but only {stored} stored")
    return Result(rate, stats["p50_us"] / 1000, stats["p99_us"] / 1000, stats["errors"], acknowledged, stored,
                  tuple(server.spread), rss, commits)


def medians(results: list[Result]) -> dict[str, float]:
    return {
        "rate": statistics.median(r.rate for r in results),
        "p50_ms": statistics.median(r.p50_ms for r in results),
        "p99_ms": statistics.median(r.p99_ms for r in results),
        "errors": sum(r.errors for r in results),
        "rss_growth": max(r.rss_mib[1] - r.rss_mib[0] for r in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--durability", default="full,normal",
                        help="comma-separated: full, normal (default both)")
    parser.add_argument("--profile", default="plain,providers",
                        help=f"comma-separated load profiles: {', '.join(PROFILES)} (default both)")
    parser.add_argument("--no-ceiling", action="store_true", help="measure hookscope only")
    parser.add_argument("--guarded-ceiling", action="store_true",
                        help="run the ceiling app under hookscope's HTTP guard (app/server/http_guard.py)")
    parser.add_argument("--http", default="auto", choices=["auto", "httptools", "h11"])
    parser.add_argument("--db", default=None, metavar="postgresql://USER@HOST:PORT/DB",
                        help="a PostgreSQL server (a fresh database is created on it for each run); default SQLite")
    parser.add_argument("--instances", type=int, default=None,
                        help="hookscope processes on the one PostgreSQL database, behind rr_proxy when more than one")
    parser.add_argument("--via-proxy", action="store_true", help="put rr_proxy in front of a single instance too")
    parser.add_argument("--compare", action="store_true",
                        help=f"alternate SQLite, PostgreSQL x1 and x2 in each run (server: --db, else {LOCAL_PG})")
    args = parser.parse_args()
    durabilities = args.durability.split(",")
    profiles = args.profile.split(",")
    if not set(durabilities) <= {"full", "normal"} or not durabilities:
        parser.error("--durability takes full, normal or full,normal")
    if not set(profiles) <= set(PROFILES):
        parser.error(f"--profile takes {', '.join(PROFILES)}")
    if args.db is not None and not args.db.startswith(("postgresql://", "postgres://")):
        parser.error("--db takes a postgresql:// server URL (SQLite is the default)")
    if args.instances is not None and args.instances < 1:
        parser.error("--instances must be at least 1")
    if (args.instances is not None or args.via_proxy) and args.db is None and not args.compare:
        parser.error("--instances and --via-proxy need --db postgresql://... (SQLite runs one process)")
    wrk = ensure_wrk()

    configs: list[Config] = []
    if args.compare:
        server = args.db or LOCAL_PG
        many = max(2, args.instances or 2)
        for d in durabilities:
            configs += [Config(durability=d), Config(durability=d, server=server, proxy=args.via_proxy),
                        Config(durability=d, server=server, instances=many, proxy=True)]
    elif args.db is not None:
        n = args.instances or 1
        configs = [Config(durability=d, server=args.db, instances=n, proxy=n > 1 or args.via_proxy)
                   for d in durabilities]
    else:
        for p in profiles:
            if not args.no_ceiling:
                configs.append(Config("ceiling", p))
            configs += [Config("hookscope", p, d) for d in durabilities]

    results: dict[Config, list[Result]] = {c: [] for c in configs}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            # Alternating within each run, so a machine that slows down during the session affects all alike.
            for config in configs:
                r = run_once(wrk, args, Path(tmp), config)
                results[config].append(r)
                print(f"run {i + 1} ({config.label}): {r.line()}", flush=True)

    print(f"\nmedians of {args.runs} runs: {args.connections} connections, {args.duration} s each, "
          f"{os.cpu_count()} cores")
    for config in configs:
        med = medians(results[config])
        line = (f"  {config.label}: {med['rate']:.0f}/s, p50 {med['p50_ms']:.1f} ms, p99 {med['p99_ms']:.1f} ms, "
                f"errors {med['errors']:.0f} in all, RSS growth within a run at most {med['rss_growth']:.0f} MiB")
        ceiling = next((c for c in configs if c.kind == "ceiling" and c.profile == config.profile), None)
        if ceiling is not None and config is not ceiling:
            line += f"; {med['rate'] / medians(results[ceiling])['rate']:.2f}x the ceiling"
        print(line)
    if args.compare:
        for d in durabilities:
            group = [c for c in configs if c.durability == d]
            base = medians(results[group[0]])["rate"]
            ratios = ", ".join(
                f"{c.label.removeprefix('PostgreSQL, ')} {medians(results[c])['rate'] / base:.2f}" for c in group[1:]
            )
            print(f"PostgreSQL vs SQLite, durability {d}: {ratios} (captures/s, medians; server {redact(server)})")


if __name__ == "__main__":
    main()
