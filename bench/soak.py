"""Soak: mixed load against one `hookscope serve` for a set time, then an account of every acknowledged capture.

    python bench/soak.py [--duration 10m] [--rate 200] [--json soak.json] [--keep]

Everything runs on 127.0.0.1, in a temporary directory, with durability full. For --duration:
  * ingest: --rate requests/s, paced (open loop) over a pool of keep-alive raw-socket connections; each request
    carries `X-Soak-Seq: N`; 1 in --big-every has a --big-min..--big-max body (spilled to files by the server);
  * live: --subscribers websockets on /api/endpoints/{id}/live; --non-readers of them never read their socket
    (the server must close them rather than buffer for them: 1013 is hookscope's eviction, 1011 uvicorn's
    keepalive-ping timeout; the time until the server's end of the socket closes is read from /proc/net/tcp, so
    the client never reads), the others read and check that ids only go up, across reconnects;
  * a relay (`hookscope forward --name soak-relay`, subprocess) to a recording target, and the endpoint's
    forward_targets pointing at a second recording target (bench/soak_target.py, subprocess). Every
    --kill-every seconds, staggered, the relay or the forward target is SIGKILLed, left down --down seconds
    (longer than --retention-count takes to arrive, so pruning meets captures still owed), and restarted;
  * retention: a small --retention-count so pruning runs all the time, with --retention-ceiling (default rate x
    duration + count) so large that nothing still owed to the relay or the forward target can be pruned (the
    largest backlog seen, and the server's own count of owed captures it pruned, are reported);
  * hostile requests, --hostile-rate per second in turn: a 1 MiB header block, slowloris (half a head, then
    nothing), a stalled body, a body over --max-body, garbage bytes, lone-surrogate JSON to the API, a cross-site
    POST (Origin: http://evil.example), an API request for a foreign Host. Each must be refused (4xx or a closed
    connection) quickly: within 2 s, or --header-timeout/--body-timeout + 2 s for the slow kinds.
The server's RSS, open fds and database size (db + -wal + bodies directory) are sampled every second.

After the load: a drain (at most --drain seconds) until every acknowledged capture reached both targets, then the
stored captures are listed through the API (?after= paging). Lost = acknowledged with a 2xx and not delivered to
both targets by the end, or neither stored now nor delivered to both (pruned after delivery is fine). Duplicates
(at-least-once re-deliveries after a kill) are allowed and counted. Prints a table (and --json FILE); exits 1 when
a check fails: anything lost, a reading subscriber that saw an id twice or out of order, a delivery with wrong
bytes, the server dying, a hostile request accepted, answered 5xx or answered slowly, or a non-reader that was
never evicted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import random
import resource
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from array import array
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from app.settings import parse_duration, parse_size  # noqa: E402

MiB = 1024 * 1024
RELAY_NAME = "soak-relay"
TCP_ESTABLISHED = 1
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ---------------------------------------------------------------- subprocesses


class Proc:
    """A subprocess in its own session, so a kill takes its whole process group and nothing outlives the run."""

    def __init__(self, name: str, cmd: list[str], log: Path) -> None:
        self.name = name
        self.cmd = cmd
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0
        self._out: IO[bytes] | None = None

    def start(self, extra: list[str] | None = None) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKSCOPE_")}
        if self._out is None:
            self._out = self.log.open("ab")
        self.proc = subprocess.Popen([*self.cmd, *(extra or [])], cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self._out, stderr=subprocess.STDOUT, start_new_session=True)
        self.starts += 1

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _signal(self, sig: int) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)

    def kill9(self) -> None:
        self._signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)
        self.kills += 1

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        """Ask politely, then SIGKILL the group; returns the exit code (None if it had to be killed)."""
        if self.proc is None:
            return None
        code: int | None = self.proc.poll()
        if code is None:
            self._signal(sig)
            try:
                code = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                code = None
        # Children the process may have left behind go with the group.
        self._signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        return code

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None


# ---------------------------------------------------------------- ingest load


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[bytes, bytes], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head[:-4].split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
    return status, headers, body


class Ingest:
    """Paced POSTs over keep-alive connections. Per-sequence state lives in flat arrays sized up front
    (rate x duration), so the script's memory does not grow with the run."""

    # SENT is set before the first byte goes out: a delivery can reach a target before its ingest answer is read.
    NOT_SENT, SENT, OK, BUSY, OTHER, ERROR = range(6)

    def __init__(self, port: int, endpoint: str, n_max: int, conns: int, big_every: int, big_min: int,
                 big_max: int, seed: int) -> None:
        self.port = port
        self.path = f"/h/{endpoint}/soak".encode()
        self.n_max = n_max
        self.conns = conns
        self.big_every = big_every
        self.big_min = big_min
        self.big_max = big_max
        self.rng = random.Random(seed)
        # One random block that every large body is a prefix of (plus its own sequence prefix): no 5 MiB
        # allocation per request.
        self.big = memoryview(os.urandom(big_max)) if big_every else memoryview(b"")
        self.state = bytearray(n_max)
        self.rid = array("q", bytes(8 * n_max))
        self.length = array("I", bytes(4 * n_max))
        self.crc = array("I", bytes(4 * n_max))
        self.latency_small: list[float] = []  # bounded: n_max entries at most, floats
        self.latency_big: list[float] = []
        self.window: list[float] = []  # latencies since the last progress line
        self.statuses: Counter[str] = Counter()
        self.sent = 0
        self.skipped = 0
        self.max_lag = 0.0
        self.max_inflight = 2 * conns
        self.tasks: set[asyncio.Task[None]] = set()
        self._pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None] = asyncio.Queue()
        for _ in range(conns):
            self._pool.put_nowait(None)

    def _request(self, seq: int) -> tuple[list[bytes | memoryview], bool]:
        big = self.big_every > 0 and seq % self.big_every == self.big_every - 1
        if big:
            prefix = b"soak %d\n" % seq
            rest = self.big[: self.rng.randint(self.big_min, self.big_max) - len(prefix)]
            parts: list[bytes | memoryview] = [prefix, rest]
            ctype = b"application/octet-stream"
            self.crc[seq] = zlib.crc32(rest, zlib.crc32(prefix))
            self.length[seq] = len(prefix) + len(rest)
        else:
            body = json.dumps({"seq": seq, "type": "soak.event", "pad": "x" * self.rng.randint(50, 2000)}).encode()
            parts = [body]
            ctype = b"application/json"
            self.crc[seq] = zlib.crc32(body)
            self.length[seq] = len(body)
        head = (b"POST " + self.path + b"?seq=%d HTTP/1.1\r\nhost: 127.0.0.1:%d\r\ncontent-type: " % (seq, self.port)
                + ctype + b"\r\nx-soak-seq: %d\r\ncontent-length: %d\r\n\r\n" % (seq, self.length[seq]))
        return [head, *parts], big

    async def one(self, seq: int) -> None:
        conn = await self._pool.get()
        parts, big = self._request(seq)
        self.state[seq] = self.SENT
        start = time.perf_counter()
        try:
            if conn is None:
                conn = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.port), 10)
            reader, writer = conn
            writer.writelines(parts)
            await writer.drain()
            status, headers, body = await asyncio.wait_for(read_response(reader), 60)
            elapsed = (time.perf_counter() - start) * 1000
            self.statuses[str(status)] += 1
            if 200 <= status < 300:
                self.state[seq] = self.OK
                self.rid[seq] = int(headers.get(b"x-hookscope-request-id") or json.loads(body)["request_id"])
                (self.latency_big if big else self.latency_small).append(elapsed)
                self.window.append(elapsed)
            else:
                self.state[seq] = self.BUSY if status == 503 else self.OTHER
            if headers.get(b"connection", b"").lower() == b"close":
                writer.close()
                conn = None
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError, KeyError) as exc:
            # No answer: not acknowledged, so not counted against the server if it never arrives anywhere.
            self.state[seq] = self.ERROR
            self.statuses[type(exc).__name__] += 1
            if conn is not None:
                conn[1].close()
            conn = None
        finally:
            self._pool.put_nowait(conn)

    async def run(self, rate: float, until: float) -> None:
        start = time.monotonic()
        seq = 0
        while seq < self.n_max:
            due = start + seq / rate
            if due >= until:
                break
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                self.max_lag = max(self.max_lag, -delay)
            if len(self.tasks) >= self.max_inflight:
                # The server (or this script) cannot keep up: drop the tick rather than queue without bound.
                self.skipped += 1
            else:
                task = asyncio.create_task(self.one(seq))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
                self.sent += 1
            seq += 1

    async def finish(self, timeout: float) -> None:
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=timeout)
        for task in list(self.tasks):
            task.cancel()
        while not self._pool.empty():
            conn = self._pool.get_nowait()
            if conn is not None:
                conn[1].close()

    def acked(self) -> int:
        return self.state.count(self.OK)


# ---------------------------------------------------------------- delivery targets


class Deliveries:
    """Tails a soak_target.py log: counts per sequence (saturating bytes) and checks lengths and checksums."""

    def __init__(self, name: str, path: Path, ingest: Ingest) -> None:
        self.name = name
        self.path = path
        self.ingest = ingest
        self.count = bytearray(ingest.n_max)
        self.pos = 0
        self.partial = b""
        self.lines = 0
        self.unknown = 0
        self.corrupt = 0
        self.corrupt_samples: list[str] = []
        self._undelivered_from = 0

    def poll(self) -> None:
        if not self.path.exists():
            return
        with self.path.open("rb") as f:
            f.seek(self.pos)
            while True:
                chunk = f.read(4 * MiB)
                if not chunk:
                    break
                self.pos += len(chunk)
                data = self.partial + chunk
                lines = data.split(b"\n")
                self.partial = lines.pop()
                for line in lines:
                    self._line(line)

    def _line(self, line: bytes) -> None:
        self.lines += 1
        try:
            seq_s, length_s, crc_s = line.split()
            seq, length, crc = int(seq_s), int(length_s), int(crc_s)
        except ValueError:
            self.unknown += 1
            return
        if not 0 <= seq < self.ingest.n_max or self.ingest.state[seq] == Ingest.NOT_SENT:
            self.unknown += 1
            return
        if self.count[seq] < 255:
            self.count[seq] += 1
        if length != self.ingest.length[seq] or crc != self.ingest.crc[seq]:
            self.corrupt += 1
            if len(self.corrupt_samples) < 5:
                self.corrupt_samples.append(f"seq {seq}: {length} bytes crc {crc}, sent {self.ingest.length[seq]}")

    def distinct(self) -> int:
        return len(self.count) - self.count.count(0)

    def duplicates(self) -> int:
        return sum(self.count) - self.distinct()

    def all_acked_delivered(self) -> bool:
        """Whether every acknowledged capture arrived here; remembers how far it already checked."""
        state, count = self.ingest.state, self.count
        i = self._undelivered_from
        while i < len(state):
            if state[i] == Ingest.OK and count[i] == 0:
                break
            i += 1
        self._undelivered_from = i
        return i >= len(state)


# ---------------------------------------------------------------- live subscribers


@dataclass
class ReaderStats:
    last: int = 0
    seen: int = 0
    connects: int = 0
    evicted: int = 0
    closes: Counter[str] = field(default_factory=Counter)
    violations: int = 0
    samples: list[str] = field(default_factory=list)
    deleted_frames: int = 0


async def live_reader(port: int, endpoint: str, stats: ReaderStats) -> None:
    """Reads everything; reconnects with after=<last id> like the inspector page does. Runs until cancelled."""
    while True:
        url = f"ws://127.0.0.1:{port}/api/endpoints/{endpoint}/live?after={stats.last}"
        try:
            async with ws_connect(url, open_timeout=10, close_timeout=2, ping_interval=None,
                                  max_size=64 * MiB) as ws:
                stats.connects += 1
                while True:
                    frame = json.loads(await ws.recv())
                    kind = frame.get("type")
                    if kind == "requests":
                        for row in frame["requests"]:
                            rid = row["id"]
                            if rid <= stats.last:
                                stats.violations += 1
                                if len(stats.samples) < 5:
                                    stats.samples.append(f"id {rid} after {stats.last}")
                            else:
                                stats.last = rid
                                stats.seen += 1
                    elif kind in ("deleted", "cleared"):
                        stats.deleted_frames += 1
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else None
            if code == 1013:
                stats.evicted += 1
            else:
                stats.closes[str(code)] += 1
        except (OSError, TimeoutError, InvalidHandshake, ValueError, KeyError, TypeError) as exc:
            # ValueError/KeyError/TypeError: a frame that is not the documented protocol; counted, then reconnect.
            stats.closes[type(exc).__name__] += 1
            await asyncio.sleep(1)
        await asyncio.sleep(0.2)


@dataclass
class NonReaderStats:
    connects: int = 0
    close_codes: Counter[str] = field(default_factory=Counter)  # "none": closed without a close frame
    not_evicted: int = 0
    open_at_end: int = 0
    evict_seconds: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)


class ServerSockets:
    """The state of the server's end of our loopback connections, from /proc/net/tcp, read once a second.

    A non-reader cannot learn from its own socket that the server gave up on it: the server's FIN queues behind the
    megabytes it could not send, so the client end stays ESTABLISHED until it reads. The server's end shows it at
    once (FIN_WAIT1 from the moment the server closes, then gone)."""

    def __init__(self, server_port: int) -> None:
        self.server_port = server_port
        self.states: dict[int, int] = {}  # client port -> TCP state of the server's end (1: ESTABLISHED)

    def refresh(self) -> None:
        states: dict[int, int] = {}
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                parts = line.split(None, 4)
                local, remote, state = parts[1], parts[2], parts[3]
                if int(local.rsplit(":", 1)[1], 16) == self.server_port:
                    states[int(remote.rsplit(":", 1)[1], 16)] = int(state, 16)
        self.states = states

    def server_closed(self, client_port: int) -> bool:
        return self.states.get(client_port) != TCP_ESTABLISHED

    def closed_or_after(self, client_port: int, until: float) -> bool:
        return self.server_closed(client_port) or time.monotonic() >= until

    async def run(self) -> None:
        while True:
            await asyncio.to_thread(self.refresh)
            await asyncio.sleep(1)


def close_code(data: bytes) -> int | None:
    """The code of the first close frame in a stream of unmasked server frames, None if there is none."""
    i = 0
    while i + 2 <= len(data):
        opcode, length = data[i] & 0x0F, data[i + 1] & 0x7F
        i += 2
        if length == 126:
            if i + 2 > len(data):
                return None
            (length,) = struct.unpack_from(">H", data, i)
            i += 2
        elif length == 127:
            if i + 8 > len(data):
                return None
            (length,) = struct.unpack_from(">Q", data, i)
            i += 8
        if opcode == 0x8:
            return struct.unpack_from(">H", data, i)[0] if length >= 2 and i + 2 <= len(data) else 1005
        i += length
    return None


async def non_reader(port: int, endpoint: str, stats: NonReaderStats, until: float, limit: float,
                     watch: ServerSockets) -> None:
    """Opens a live socket and never reads it; watches the server's end until the server gives up on it."""
    loop = asyncio.get_running_loop()
    while time.monotonic() < until - 5:
        sock = socket.socket()
        # A small receive window, so the server's send side fills in seconds rather than after megabytes.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)), 10)
            await loop.sock_sendall(sock, (
                f"GET /api/endpoints/{endpoint}/live HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: c29hay1ub24tcmVhZGVyIQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n").encode())
            head = b""
            async with asyncio.timeout(10):
                while b"\r\n\r\n" not in head:
                    chunk = await loop.sock_recv(sock, 1)  # byte by byte: not one byte past the handshake
                    if not chunk:
                        raise ConnectionError("closed during handshake")
                    head += chunk
            if not head.startswith(b"HTTP/1.1 101"):
                stats.errors[head.split(b"\r\n", 1)[0].decode(errors="replace")] += 1
                await asyncio.sleep(1)
                continue
            stats.connects += 1
            opened = time.monotonic()
            client_port = sock.getsockname()[1]
            await asyncio.sleep(2)  # the watcher must have seen the connection established first
            await wait_condition(functools.partial(watch.closed_or_after, client_port, until), limit, 0.5)
            if not watch.server_closed(client_port):
                if time.monotonic() - opened >= limit:
                    stats.not_evicted += 1
                else:
                    stats.open_at_end += 1
                continue
            stats.evict_seconds.append(time.monotonic() - opened)
            code = await drain_close_code(loop, sock)
            stats.close_codes["none" if code is None else str(code)] += 1
        except (OSError, TimeoutError) as exc:
            stats.errors[type(exc).__name__] += 1
            await asyncio.sleep(1)
        finally:
            sock.close()


async def drain_close_code(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> int | None:
    """Reads what the server left in the pipe (bounded in time and bytes) and finds its close frame."""
    data = bytearray()
    with contextlib.suppress(OSError, TimeoutError):
        async with asyncio.timeout(5):
            while len(data) < 64 * MiB:
                chunk = await loop.sock_recv(sock, 65536)
                if not chunk:
                    break
                data += chunk
    return close_code(bytes(data))


# ---------------------------------------------------------------- hostile requests


@dataclass
class HostileKind:
    name: str
    bound: float  # seconds within which the refusal must come
    answers: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    bad: int = 0  # accepted (2xx/3xx), 5xx, or not refused within the bound

    def record(self, outcome: str, seconds: float) -> None:
        self.answers[outcome] += 1
        self.latencies.append(seconds)
        refused = outcome in ("closed", "reset") or (outcome.isdigit() and 400 <= int(outcome) < 500)
        if not refused or seconds > self.bound:
            self.bad += 1


async def exchange(port: int, writes: Callable[[asyncio.StreamWriter], Awaitable[None]],
                   timeout: float) -> tuple[str, float, bytes]:
    """Connect, write concurrently with reading, and classify the answer: the status code, or closed/reset/timeout
    when there was none. Returns the outcome, the seconds until it, and the bytes read (at most 64 KiB)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
    start = time.monotonic()

    async def write() -> None:
        with contextlib.suppress(OSError):
            await writes(writer)

    writing = asyncio.create_task(write())
    data = b""
    outcome = "timeout"
    try:
        async with asyncio.timeout(timeout):
            while len(data) < 65536:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                data += chunk
                if b"\r\n\r\n" in data:
                    head = data.split(b"\r\n\r\n", 1)[0]
                    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                                   if line.lower().startswith(b"content-length:")), 0)
                    if len(data) >= len(head) + 4 + length:
                        break
        if data.startswith(b"HTTP/1."):
            outcome = data.split(b" ", 2)[1].decode()
        else:
            outcome = "closed"
    except TimeoutError:
        outcome = data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/1.") else "timeout"
    except OSError:
        outcome = data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/1.") else "reset"
    finally:
        elapsed = time.monotonic() - start
        writing.cancel()
        with contextlib.suppress(BaseException):
            await writing
        writer.close()
    return outcome, elapsed, data


class Hostile:
    def __init__(self, port: int, ingest_ep: str, api: httpx.AsyncClient, max_body: int, header_timeout: float,
                 body_timeout: float) -> None:
        self.port = port
        self.ep = ingest_ep
        self.api = api
        self.max_body = max_body
        host = f"127.0.0.1:{port}"
        self.host = host
        slow = 2.0
        self.kinds = {
            "header_1mib": (HostileKind("header_1mib", slow), self._header_1mib),
            "slowloris": (HostileKind("slowloris", header_timeout + slow), self._slowloris),
            "slow_body": (HostileKind("slow_body", body_timeout + slow), self._slow_body),
            # The server may read up to --max-body before it refuses: allow the time 8 MiB takes on a busy machine.
            "body_over_max": (HostileKind("body_over_max", 5.0), self._body_over_max),
            "garbage": (HostileKind("garbage", slow), self._garbage),
            "surrogate_json": (HostileKind("surrogate_json", slow), self._surrogate_json),
            "cross_site_post": (HostileKind("cross_site_post", slow), self._cross_site),
            "foreign_host": (HostileKind("foreign_host", slow), self._foreign_host),
        }
        self.timeout = max(header_timeout, body_timeout) + 10
        self.tasks: set[asyncio.Task[None]] = set()
        self.stray_endpoints = 0

    async def _header_1mib(self, w: asyncio.StreamWriter) -> None:
        w.write(f"POST /h/{self.ep}/hostile HTTP/1.1\r\nHost: {self.host}\r\n".encode())
        line = b"x-pad-%04d: " + b"a" * 1000 + b"\r\n"
        for i in range(0, 1024, 16):
            # Drained chunk by chunk, so writing stops as soon as the server has closed.
            w.write(b"".join(line % j for j in range(i, i + 16)))
            await w.drain()
        w.write(b"content-length: 0\r\n\r\n")
        await w.drain()
        await asyncio.sleep(3600)

    async def _slowloris(self, w: asyncio.StreamWriter) -> None:
        w.write(f"POST /h/{self.ep}/slow HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: text/pl".encode())
        await w.drain()
        await asyncio.sleep(3600)

    async def _slow_body(self, w: asyncio.StreamWriter) -> None:
        w.write(f"POST /h/{self.ep}/slow HTTP/1.1\r\nHost: {self.host}\r\nContent-Length: 1000\r\n\r\n"
                "0123456789".encode())
        await w.drain()
        await asyncio.sleep(3600)

    async def _body_over_max(self, w: asyncio.StreamWriter) -> None:
        total = self.max_body + MiB
        w.write(f"POST /h/{self.ep}/big HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/octet-stream"
                f"\r\nContent-Length: {total}\r\n\r\n".encode())
        chunk = b"\0" * 65536
        for _ in range(total // len(chunk)):
            w.write(chunk)
            await w.drain()
        await asyncio.sleep(3600)

    async def _garbage(self, w: asyncio.StreamWriter) -> None:
        w.write(b"\x16\x03\x01" + os.urandom(4093) + b"\r\n\r\n")
        await w.drain()
        await asyncio.sleep(3600)

    def _api(self, method: str, path: str, body: bytes, extra: str = "", host: str | None = None) -> bytes:
        return (f"{method} {path} HTTP/1.1\r\nHost: {host or self.host}\r\nContent-Type: application/json\r\n"
                f"{extra}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body

    async def _surrogate_json(self, w: asyncio.StreamWriter) -> None:
        # "\ud800" is valid JSON text for a string that cannot be encoded as UTF-8.
        body = b'{"name": "soak \\ud800 lone", "response": {"body": "\\udfff"}}'
        w.write(self._api("POST", "/api/endpoints", body))
        await w.drain()
        await asyncio.sleep(3600)

    async def _cross_site(self, w: asyncio.StreamWriter) -> None:
        # What a foreign page's form or fetch(no-cors) can send without a preflight.
        w.write(self._api("POST", "/api/endpoints", b'{"name": "evil"}',
                          "Origin: http://evil.example\r\nSec-Fetch-Site: cross-site\r\n").replace(
            b"application/json", b"text/plain"))
        await w.drain()
        await asyncio.sleep(3600)

    async def _foreign_host(self, w: asyncio.StreamWriter) -> None:
        # DNS rebinding: a foreign name resolving to 127.0.0.1 reaches the API with its own Host header.
        w.write(self._api("GET", "/api/endpoints", b"", host="evil.example"))
        await w.drain()
        await asyncio.sleep(3600)

    async def _one(self, kind: HostileKind, writes: Callable[[asyncio.StreamWriter], Awaitable[None]]) -> None:
        try:
            outcome, seconds, data = await exchange(self.port, writes, self.timeout)
        except (OSError, TimeoutError) as exc:
            kind.record(type(exc).__name__, 0.0)
            return
        kind.record(outcome, seconds)
        if outcome in ("200", "201"):
            await self._delete_stray(data)

    async def _delete_stray(self, data: bytes) -> None:
        """A cross-site POST that got through created an endpoint: remove it so the run stays comparable."""
        with contextlib.suppress(Exception):
            ep = json.loads(data.split(b"\r\n\r\n", 1)[1])["id"]
            self.stray_endpoints += 1
            await self.api.delete(f"/api/endpoints/{ep}")

    async def run(self, rate: float, until: float) -> None:
        names = list(self.kinds)
        i = 0
        while time.monotonic() < until - self.timeout and rate > 0:
            kind, writes = self.kinds[names[i % len(names)]]
            i += 1
            if len(self.tasks) < 32:
                task = asyncio.create_task(self._one(kind, writes))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
            await asyncio.sleep(1 / rate)
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=self.timeout + 5)


# ---------------------------------------------------------------- sampling


@dataclass
class Series:
    t: list[float] = field(default_factory=list)
    rss_mib: list[float] = field(default_factory=list)
    fds: list[float] = field(default_factory=list)
    db_mib: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    loop_lag_ms: list[float] = field(default_factory=list)
    healthz_ms: list[float] = field(default_factory=list)


def proc_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def proc_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def db_size_mib(db: Path) -> float:
    total = 0
    for p in (db, Path(f"{db}-wal")):
        with contextlib.suppress(FileNotFoundError):
            total += p.stat().st_size
    bodies = Path(f"{db}.bodies")
    for root, _dirs, files in os.walk(bodies):
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                total += os.stat(os.path.join(root, name)).st_size
    return total / MiB


async def sampler(pid: int, db: Path, series: Series, t0: float, api: httpx.AsyncClient) -> None:
    """Once a second until cancelled. The loop lag (how late this wake-up is) says whether the script itself kept up;
    the /healthz round trip whether the server's event loop did (slow ingest with a quick /healthz points at the
    commit path instead)."""
    next_at = time.monotonic()
    while True:
        next_at += 1.0
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        series.loop_lag_ms.append(max(0.0, time.monotonic() - next_at) * 1000)
        try:
            rss, fds, cpu = proc_rss_mib(pid), len(os.listdir(f"/proc/{pid}/fd")), proc_cpu_seconds(pid)
        except (FileNotFoundError, ProcessLookupError):
            return  # the server is gone; the main task notices
        series.t.append(time.monotonic() - t0)
        series.rss_mib.append(rss)
        series.fds.append(fds)
        series.cpu_s.append(cpu)
        series.db_mib.append(await asyncio.to_thread(db_size_mib, db))
        start = time.perf_counter()
        try:
            await api.get("/healthz", timeout=5)
            series.healthz_ms.append((time.perf_counter() - start) * 1000)
        except httpx.HTTPError:
            series.healthz_ms.append(5000.0)


@dataclass
class Backlog:
    relay_max: int = 0
    forward_max: int = 0
    relay_skipped: int = 0  # owed captures retention pruned anyway (past the ceiling), as the server counts them
    forward_skipped: int = 0
    stored_min: int | None = None
    stored_max: int = 0
    relay_connected_samples: int = 0
    samples: int = 0
    errors: Counter[str] = field(default_factory=Counter)


async def backlog_poller(api: httpx.AsyncClient, ep: str, backlog: Backlog) -> None:
    """Every 2 s: what the relay and the forward target still owe, and how many captures are stored."""
    while True:
        await asyncio.sleep(2)
        try:
            relays = (await api.get(f"/api/endpoints/{ep}/relays")).json()["relays"]
            targets = (await api.get(f"/api/endpoints/{ep}/forwarding")).json()["targets"]
            stored = (await api.get(f"/api/endpoints/{ep}")).json()["request_count"]
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            backlog.errors[type(exc).__name__] += 1
            continue
        backlog.samples += 1
        for r in relays:
            if r["name"] == RELAY_NAME:
                backlog.relay_max = max(backlog.relay_max, r.get("pending") or 0)
                backlog.relay_skipped = max(backlog.relay_skipped, r.get("skipped") or 0)
                backlog.relay_connected_samples += bool(r.get("connected"))
        for t in targets:
            backlog.forward_max = max(backlog.forward_max, t.get("pending") or 0)
            backlog.forward_skipped = max(backlog.forward_skipped, t.get("skipped") or 0)
        backlog.stored_max = max(backlog.stored_max, stored)
        backlog.stored_min = stored if backlog.stored_min is None else min(backlog.stored_min, stored)


# ---------------------------------------------------------------- chaos


async def chaos(relay: Proc, target: Proc, period: float, down: float, t0: float, until: float,
                events: list[str]) -> None:
    """SIGKILL the relay at period/2, 3*period/2, ... and the forward target at period, 2*period, ...; each comes
    back after `down` seconds. Only kills whose restart falls before `until` are made, so the drain starts with
    both up."""
    plan = []
    k = 0
    while True:
        at_relay, at_target = t0 + period * (k + 0.5), t0 + period * (k + 1)
        if at_relay + down >= until:
            break
        plan.append((at_relay, relay))
        if at_target + down < until:
            plan.append((at_target, target))
        k += 1
    for at, proc in plan:
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        proc.kill9()
        events.append(f"{at - t0:6.1f}s kill {proc.name}")
        await asyncio.sleep(down)
        # Without --from the relay resumes from the cursor the server kept for its --name.
        await start_checked(proc)


async def start_checked(proc: Proc, extra: list[str] | None = None, attempts: int = 20) -> None:
    """Start and make sure it stays up a moment (a target restarted at once may not get its port back)."""
    for _ in range(attempts):
        proc.start(extra)
        await asyncio.sleep(0.5)
        if proc.alive():
            return
    raise RuntimeError(f"{proc.name} does not stay up; see {proc.log}")


async def wait_condition(cond: Callable[[], bool], timeout: float, interval: float) -> bool:
    """Poll until cond() holds or timeout passes; returns whether it held."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval)
    return True


async def wait_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {port}") from None
            await asyncio.sleep(0.05)


# ---------------------------------------------------------------- the run


def print_table(rows: list[list[str]], header: list[str] | None = None) -> None:
    all_rows = [header, *rows] if header else rows
    widths = [max(len(r[i]) for r in all_rows) for i in range(len(all_rows[0]))]
    for j, r in enumerate(all_rows):
        cells = (c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        print("  " + "  ".join(cells))
        if header and j == 0:
            print("  " + "  ".join("-" * w for w in widths))


def slope_per_minute(ts: list[float], values: list[float]) -> float:
    half = len(ts) // 2
    xs, ys = ts[half:], values[half:]
    if len(xs) < 3:
        return float("nan")
    return statistics.linear_regression(xs, ys).slope * 60


def scan_log(path: Path) -> tuple[Counter[str], list[str]]:
    """Counts of warning/error/traceback lines in a process log, and the first few distinct ones."""
    counts: Counter[str] = Counter()
    samples: list[str] = []
    if not path.exists():
        return counts, samples
    with path.open(errors="replace") as f:
        for line in f:
            for word in ("Traceback", "ERROR", "WARNING", "CRITICAL"):
                if word in line:
                    counts[word] += 1
                    text = line.strip()[:200]
                    if len(samples) < 8 and text not in samples:
                        samples.append(text)
    return counts, samples


async def queued_now(api: httpx.AsyncClient, ep: str) -> dict[str, Any]:
    try:
        relays = (await api.get(f"/api/endpoints/{ep}/relays")).json()["relays"]
        targets = (await api.get(f"/api/endpoints/{ep}/forwarding")).json()["targets"]
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        return {"error": repr(exc)}
    relay: dict[str, Any] = next((r for r in relays if r["name"] == RELAY_NAME), {})
    return {"relay_pending": relay.get("pending"), "relay_skipped": relay.get("skipped"),
            "forward_pending": [t.get("pending") for t in targets],
            "forward_skipped": [t.get("skipped") for t in targets]}


async def list_stored(api: httpx.AsyncClient, ep: str, timeout: float) -> set[int]:
    """Every stored capture id of the endpoint, by ?after= paging (oldest first)."""
    ids: set[int] = set()
    after = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        resp = await api.get(f"/api/endpoints/{ep}/requests", params={"after": after, "limit": 500})
        resp.raise_for_status()
        data = resp.json()
        ids.update(r["id"] for r in data["requests"])
        after = data.get("last_id") or after
        if not data.get("has_more") or not data["requests"]:
            return ids
    raise TimeoutError("listing stored captures took too long")


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    port, relay_port, fwd_port = free_port(), free_port(), free_port()
    db = tmp / "soak.db"
    server = Proc("server", [
        sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port), "--db", str(db),
        "--durability", args.durability, "--http", args.http,
        "--retention-count", str(args.retention_count), "--retention-ceiling", str(args.retention_ceiling),
        "--max-body", str(args.max_body), "--max-header-bytes", str(args.max_header_bytes),
        "--header-timeout", f"{args.header_timeout}s", "--body-timeout", f"{args.body_timeout}s",
        "--max-connections", str(args.max_connections), "--allowed-host", "localhost",
        "--forward-retry", "100ms,1s,1h", "--log-level", "warning",
    ], tmp / "server.log")
    relay_target = Proc("relay-target", [sys.executable, str(REPO / "bench" / "soak_target.py"), "--port",
                                         str(relay_port), "--log", str(tmp / "relay-target.txt")],
                        tmp / "relay-target.log")
    fwd_target = Proc("forward-target", [sys.executable, str(REPO / "bench" / "soak_target.py"), "--port",
                                         str(fwd_port), "--log", str(tmp / "forward-target.txt")],
                      tmp / "forward-target.log")
    procs = [server, relay_target, fwd_target]
    tasks: list[asyncio.Task[Any]] = []
    # SIGTERM unwinds like Ctrl-C, through the finally below: the children live in their own sessions and would
    # otherwise outlive the script.
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    api = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", trust_env=False, timeout=30)
    try:
        server.start()
        relay_target.start()
        fwd_target.start()
        deadline = time.monotonic() + 30
        while True:
            if not server.alive():
                raise RuntimeError(f"server exited at start; see {server.log}")
            with contextlib.suppress(httpx.TransportError):
                if (await api.get("/healthz")).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError("server did not start")
            await asyncio.sleep(0.05)
        await wait_port(relay_port, 15)
        await wait_port(fwd_port, 15)
        resp = await api.post("/api/endpoints", json={"name": "soak",
                                                      "forward_targets": [f"http://127.0.0.1:{fwd_port}/forward"]})
        resp.raise_for_status()
        ep = resp.json()["id"]
        resp = await api.post("/api/endpoints", json={"name": "soak-hostile"})
        resp.raise_for_status()
        hostile_ep = resp.json()["id"]

        relay = Proc("relay", [sys.executable, "-m", "app", "forward", f"http://127.0.0.1:{port}/h/{ep}",
                               "--to", f"http://127.0.0.1:{relay_port}/relay", "--name", RELAY_NAME, "--quiet",
                               "--no-color"], tmp / "relay.log")
        procs.append(relay)
        relay.start(["--from", "all"])
        deadline = time.monotonic() + 20
        while not any(r["name"] == RELAY_NAME and r["connected"]
                      for r in (await api.get(f"/api/endpoints/{ep}/relays")).json()["relays"]):
            if time.monotonic() > deadline:
                raise TimeoutError(f"relay did not connect; see {relay.log}")
            await asyncio.sleep(0.05)

        n_max = int(args.rate * args.duration) + 1
        ingest = Ingest(port, ep, n_max, args.connections, args.big_every, args.big_min, args.big_max, args.seed)
        relay_rx = Deliveries("relay", tmp / "relay-target.txt", ingest)
        fwd_rx = Deliveries("forward", tmp / "forward-target.txt", ingest)
        readers = [ReaderStats() for _ in range(args.subscribers - args.non_readers)]
        nonreader = NonReaderStats()
        series = Series()
        backlog = Backlog()
        hostile = Hostile(port, hostile_ep, api, args.max_body, args.header_timeout, args.body_timeout)
        events: list[str] = []

        t0 = time.monotonic()
        until = t0 + args.duration
        tasks.append(asyncio.create_task(sampler(server.pid, db, series, t0, api)))
        tasks.append(asyncio.create_task(backlog_poller(api, ep, backlog)))
        reader_tasks = [asyncio.create_task(live_reader(port, ep, s)) for s in readers]
        tasks.extend(reader_tasks)
        watch = ServerSockets(port)
        watch.refresh()
        tasks.append(asyncio.create_task(watch.run()))
        nonreader_tasks = [asyncio.create_task(non_reader(port, ep, nonreader, until, args.evict_limit, watch))
                           for _ in range(args.non_readers)]
        tasks.extend(nonreader_tasks)
        # Readers connect before the first capture, so each of them should see every one.
        await wait_condition(lambda: all(s.connects for s in readers), 15, 0.1)
        load = asyncio.create_task(ingest.run(args.rate, until))
        chaos_task = asyncio.create_task(chaos(relay, fwd_target, args.kill_every, args.down, t0, until, events))
        hostile_task = asyncio.create_task(hostile.run(args.hostile_rate, until))
        tasks.extend([load, chaos_task, hostile_task])

        next_report = t0 + 10
        while not load.done():
            await asyncio.sleep(0.5)
            relay_rx.poll()
            fwd_rx.poll()
            if not server.alive():
                raise RuntimeError(f"server died during the run; see {server.log}")
            if chaos_task.done() and chaos_task.exception() is not None:
                raise chaos_task.exception()  # type: ignore[misc]
            if time.monotonic() >= next_report:
                next_report += 10
                window, ingest.window = ingest.window, []
                print(f"  t={time.monotonic() - t0:5.0f}s sent {ingest.sent} acked {ingest.acked()} "
                      f"(last 10 s: {len(window) / 10:.0f}/s, p50 {pct(window, 0.5):.0f} ms, "
                      f"p99 {pct(window, 0.99):.0f} ms, skipped {ingest.skipped}) "
                      f"relay {relay_rx.distinct()} forward {fwd_rx.distinct()} "
                      f"rss {series.rss_mib[-1] if series.rss_mib else 0:.0f} MiB "
                      f"fds {series.fds[-1] if series.fds else 0:.0f} "
                      f"db {series.db_mib[-1] if series.db_mib else 0:.0f} MiB "
                      f"backlog relay/forward max {backlog.relay_max}/{backlog.forward_max}", flush=True)
        load.result()
        await ingest.finish(60)
        load_seconds = time.monotonic() - t0
        relay_rx.poll()
        fwd_rx.poll()
        at_load_end = {"acknowledged": ingest.acked(), "relay": relay_rx.distinct(), "forward": fwd_rx.distinct()}
        await chaos_task
        for proc in (relay, fwd_target):
            if not proc.alive():
                await start_checked(proc)

        drain_start = time.monotonic()
        while time.monotonic() - drain_start < args.drain:
            relay_rx.poll()
            fwd_rx.poll()
            if relay_rx.all_acked_delivered() and fwd_rx.all_acked_delivered():
                break
            await asyncio.sleep(0.5)
        drain_seconds = time.monotonic() - drain_start
        drained = relay_rx.all_acked_delivered() and fwd_rx.all_acked_delivered()
        # Tells "late" from "gone" when the drain bound was hit: what the server still has queued for each.
        queued_at_end = await queued_now(api, ep)
        await asyncio.sleep(1)  # a last look for re-deliveries in flight
        relay_rx.poll()
        fwd_rx.poll()

        newest = max(ingest.rid) if n_max else 0
        await wait_condition(lambda: all(s.last >= newest for s in readers), 15, 0.2)
        await asyncio.wait([hostile_task, *nonreader_tasks], timeout=args.header_timeout + args.body_timeout + 20)

        stored = await list_stored(api, ep, 60)
        if not server.alive():
            raise RuntimeError("server died after the run")
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        shutdown_start = time.monotonic()
        for proc in (relay, relay_target, fwd_target):
            proc.stop(signal.SIGTERM, 10)
        server_exit = server.stop(signal.SIGTERM, 30)
        shutdown_seconds = time.monotonic() - shutdown_start

        result = account(args, ingest, relay_rx, fwd_rx, stored, readers, nonreader, hostile, series, backlog,
                         events, relay, fwd_target)
        result["delivered_when_load_stopped"] = at_load_end
        result["queued_after_drain"] = queued_at_end
        acc = result["accounting"]
        # Lost deliveries the server still had queued when the drain ended are late, not gone (the count, not
        # the very ids: the status API gives how many, which is enough to tell a slow target from a dropped one).
        acc["lost_relay_still_queued"] = min(acc["lost_relay"], queued_at_end.get("relay_pending") or 0)
        acc["lost_forward_still_queued"] = min(acc["lost_forward"], sum(queued_at_end.get("forward_pending") or []))
        result["timing"] = {"load_s": round(load_seconds, 1), "drain_s": round(drain_seconds, 1),
                            "drain_bound_s": args.drain, "drained": drained,
                            "shutdown_s": round(shutdown_seconds, 1), "server_exit": server_exit,
                            "total_s": round(time.monotonic() - t0, 1)}
        # uvicorn re-raises the SIGTERM it handled once it has shut down, so -15 is its graceful exit.
        result["checks"]["server_clean_exit"] = server_exit in (0, -signal.SIGTERM)
        for p in (server, relay, relay_target, fwd_target):
            counts, samples = scan_log(p.log)
            result["logs"][p.name] = {"counts": dict(counts), "samples": samples}
        return result
    finally:
        for t in tasks:
            t.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*tasks, return_exceptions=True)
        await api.aclose()
        for proc in procs:
            proc.stop(signal.SIGTERM, 10)
            proc.close()


def account(args: argparse.Namespace, ingest: Ingest, relay_rx: Deliveries, fwd_rx: Deliveries, stored: set[int],
            readers: list[ReaderStats], nonreader: NonReaderStats, hostile: Hostile, series: Series,
            backlog: Backlog, events: list[str], relay: Proc, fwd_target: Proc) -> dict[str, Any]:
    lost_relay = lost_forward = lost_db = pruned_delivered = stored_acked = 0
    lost_samples: list[str] = []
    for seq in range(ingest.n_max):
        if ingest.state[seq] != Ingest.OK:
            continue
        to_relay, to_fwd = relay_rx.count[seq] > 0, fwd_rx.count[seq] > 0
        in_db = ingest.rid[seq] in stored
        stored_acked += in_db
        lost_relay += not to_relay
        lost_forward += not to_fwd
        if not in_db:
            if to_relay and to_fwd:
                pruned_delivered += 1
            else:
                lost_db += 1
        if not (to_relay and to_fwd) and len(lost_samples) < 10:
            lost_samples.append(f"seq {seq} id {ingest.rid[seq]}: relay {to_relay} forward {to_fwd} stored {in_db}")
    lost = sum(1 for seq in range(ingest.n_max) if ingest.state[seq] == Ingest.OK
               and not (relay_rx.count[seq] and fwd_rx.count[seq]))
    acked = ingest.acked()
    violations = sum(r.violations for r in readers)
    seen = [r.seen for r in readers]
    kinds = {name: k for name, (k, _) in hostile.kinds.items()}
    checks = {
        "nothing_lost": lost == 0 and lost_db == 0,
        "live_in_order_once": violations == 0,
        "deliveries_intact": relay_rx.corrupt == 0 and fwd_rx.corrupt == 0,
        "hostile_refused_quickly": all(k.bad == 0 for k in kinds.values()),
        "non_readers_evicted": nonreader.not_evicted == 0 and nonreader.connects > 0,
    }
    elapsed = series.t[-1] - series.t[0] if len(series.t) > 1 else float("nan")
    return {
        "config": {k: v for k, v in vars(args).items() if k != "json"},
        "ingest": {
            "scheduled": ingest.sent + ingest.skipped, "sent": ingest.sent, "skipped_backpressure": ingest.skipped,
            "captured_2xx": acked, "answers": dict(ingest.statuses),
            "max_pacing_lag_ms": round(ingest.max_lag * 1000, 1),
            "latency_small_ms": {"p50": pct(ingest.latency_small, 0.5), "p99": pct(ingest.latency_small, 0.99),
                                 "max": max(ingest.latency_small, default=float("nan"))},
            "latency_big_ms": {"n": len(ingest.latency_big), "p50": pct(ingest.latency_big, 0.5),
                               "p99": pct(ingest.latency_big, 0.99),
                               "max": max(ingest.latency_big, default=float("nan"))},
        },
        "delivery": {
            rx.name: {"distinct": rx.distinct(), "duplicates": rx.duplicates(), "deliveries": rx.lines,
                      "unknown": rx.unknown, "corrupt": rx.corrupt, "corrupt_samples": rx.corrupt_samples}
            for rx in (relay_rx, fwd_rx)
        },
        "accounting": {
            "acknowledged": acked, "stored_now": stored_acked, "stored_ids_listed": len(stored),
            "pruned_after_delivery": pruned_delivered, "lost": lost, "lost_relay": lost_relay,
            "lost_forward": lost_forward, "lost_neither_stored_nor_delivered": lost_db, "lost_samples": lost_samples,
        },
        "retention": {"count": args.retention_count, "ceiling": args.retention_ceiling,
                      "max_relay_backlog": backlog.relay_max, "max_forward_backlog": backlog.forward_max,
                      "skipped_by_server_relay": backlog.relay_skipped,
                      "skipped_by_server_forward": backlog.forward_skipped,
                      "stored_min": backlog.stored_min, "stored_max": backlog.stored_max,
                      "poll_errors": dict(backlog.errors)},
        "chaos": {"relay_kills": relay.kills, "forward_target_kills": fwd_target.kills, "events": events},
        "live": {
            "readers": len(readers), "connects": sum(r.connects for r in readers),
            "evicted_1013": sum(r.evicted for r in readers),
            "other_closes": dict(sum((r.closes for r in readers), Counter())),
            "seen_min": min(seen, default=0), "seen_median": statistics.median(seen) if seen else 0,
            "seen_max": max(seen, default=0), "violations": violations,
            "violation_samples": [s for r in readers for s in r.samples][:10],
            "caught_up": sum(r.last >= max(ingest.rid) for r in readers),
        },
        "non_readers": {
            "count": args.non_readers, "connections": nonreader.connects,
            "closed_by_server": sum(nonreader.close_codes.values()), "close_codes": dict(nonreader.close_codes),
            "not_evicted_within_limit": nonreader.not_evicted,
            "open_at_end": nonreader.open_at_end, "evict_limit_s": args.evict_limit,
            "seconds_to_close": {"min": min(nonreader.evict_seconds, default=float("nan")),
                                 "median": statistics.median(nonreader.evict_seconds) if nonreader.evict_seconds
                                 else float("nan"),
                                 "max": max(nonreader.evict_seconds, default=float("nan"))},
            "errors": dict(nonreader.errors),
        },
        "hostile": {name: {"n": sum(k.answers.values()), "answers": dict(k.answers), "bad": k.bad,
                           "bound_s": k.bound, "p50_s": pct(k.latencies, 0.5),
                           "max_s": max(k.latencies, default=float("nan"))}
                    for name, k in kinds.items()},
        "hostile_stray_endpoints_deleted": hostile.stray_endpoints,
        "server": {
            "rss_mib": series_stats(series.rss_mib), "fds": series_stats(series.fds),
            "db_mib": series_stats(series.db_mib),
            "rss_slope_mib_per_min_second_half": slope_per_minute(series.t, series.rss_mib),
            "fds_slope_per_min_second_half": slope_per_minute(series.t, series.fds),
            "cpu_percent": (series.cpu_s[-1] - series.cpu_s[0]) / elapsed * 100 if elapsed == elapsed else None,
            "healthz_ms": {"p50": pct(series.healthz_ms, 0.5), "p99": pct(series.healthz_ms, 0.99),
                           "max": max(series.healthz_ms, default=float("nan"))},
            "load_average_end": os.getloadavg()[0],
            "samples": len(series.t),
        },
        "script": {"max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                   "cpu_percent": script_cpu_seconds() / elapsed * 100 if elapsed == elapsed else None,
                   "loop_lag_ms_p99": pct(series.loop_lag_ms, 0.99),
                   "loop_lag_ms_max": max(series.loop_lag_ms, default=float("nan"))},
        "checks": checks,
        "logs": {},
    }


def script_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def series_stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {"min": min(values), "median": statistics.median(values), "max": max(values), "last": values[-1]}


def f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None or value != value else f"{value:,.{digits}f}"


def report(r: dict[str, Any]) -> None:
    s = r["server"]
    print("\nserver, sampled every second:")
    print_table([[name, *(f(s[key].get(k), d) for k in ("min", "median", "max", "last"))]
                 for name, key, d in (("RSS (MiB)", "rss_mib", 1), ("open fds", "fds", 0),
                                      ("db+wal+bodies (MiB)", "db_mib", 1))],
                ["series", "min", "median", "max", "last"])
    print(f"  RSS slope over the second half: {f(s['rss_slope_mib_per_min_second_half'], 2)} MiB/min; "
          f"fds slope {f(s['fds_slope_per_min_second_half'], 2)}/min; server CPU {f(s['cpu_percent'])}% of a core")
    h = s["healthz_ms"]
    print(f"  /healthz round trip p50 / p99 / max: {f(h['p50'])} / {f(h['p99'])} / {f(h['max'])} ms; "
          f"load average at the end {s['load_average_end']:.2f}")
    i, a, ret = r["ingest"], r["accounting"], r["retention"]
    print("\ncaptures:")
    rows = [
        ["scheduled / sent / skipped (backpressure)",
         f"{i['scheduled']:,} / {i['sent']:,} / {i['skipped_backpressure']:,}"],
        ["captured (2xx)", f"{i['captured_2xx']:,}"],
        ["answers", ", ".join(f"{k}: {v:,}" for k, v in sorted(i["answers"].items()))],
        ["ingest latency small p50 / p99 / max (ms)", " / ".join(f(i["latency_small_ms"][k]) for k in
                                                               ("p50", "p99", "max"))],
        [f"ingest latency large ({i['latency_big_ms']['n']}) p50 / p99 / max (ms)",
         " / ".join(f(i["latency_big_ms"][k]) for k in ("p50", "p99", "max"))],
    ]
    for name, d in r["delivery"].items():
        rows.append([f"delivered to the {name} target (distinct / duplicates)",
                     f"{d['distinct']:,} / {d['duplicates']:,}"
                     + (f"  corrupt {d['corrupt']}" if d["corrupt"] else "")
                     + (f"  unknown {d['unknown']}" if d["unknown"] else "")])
    rows += [
        ["stored now (of the acknowledged) / pruned after delivery",
         f"{a['stored_now']:,} / {a['pruned_after_delivery']:,}"],
        ["LOST (relay / forward / neither stored nor delivered)",
         f"{a['lost']:,} ({a['lost_relay']:,} / {a['lost_forward']:,} / {a['lost_neither_stored_nor_delivered']:,})"],
        ["retention count / ceiling", f"{ret['count']:,} / {ret['ceiling']:,}"],
        ["stored per endpoint min / max (2 s polls)", f"{ret['stored_min']} / {ret['stored_max']:,}"],
        ["largest backlog owed: relay / forward", f"{ret['max_relay_backlog']:,} / {ret['max_forward_backlog']:,}"],
        ["owed but pruned, as the server reports it: relay / forward",
         f"{ret['skipped_by_server_relay']:,} / {ret['skipped_by_server_forward']:,}"],
        ["kills: relay / forward target", f"{r['chaos']['relay_kills']} / {r['chaos']['forward_target_kills']}"],
    ]
    print_table(rows)
    lv, nr = r["live"], r["non_readers"]
    print("\nlive subscribers:")
    print_table([
        ["readers / connects / evicted 1013 / other closes",
         f"{lv['readers']} / {lv['connects']} / {lv['evicted_1013']} / {lv['other_closes'] or 0}"],
        ["seen per reader min / median / max", f"{lv['seen_min']:,} / {lv['seen_median']:,.0f} / {lv['seen_max']:,}"],
        ["readers caught up at the end", f"{lv['caught_up']} of {lv['readers']}"],
        ["ids seen twice or out of order", f"{lv['violations']}"],
        ["non-readers: connections / closed by the server (close codes)",
         f"{nr['connections']} / {nr['closed_by_server']} ({nr['close_codes'] or '-'})"],
        [f"non-readers: not evicted within {nr['evict_limit_s']:.0f} s / open at the end",
         f"{nr['not_evicted_within_limit']} / {nr['open_at_end']}"],
        ["non-readers: seconds until closed min / median / max",
         " / ".join(f(nr["seconds_to_close"][k]) for k in ("min", "median", "max"))],
    ])
    print("\nhostile requests (answers; bad = accepted, 5xx or slower than the bound):")
    print_table([[name, str(h["n"]), ", ".join(f"{k}: {v}" for k, v in sorted(h["answers"].items())),
                  f(h["p50_s"], 2), f(h["max_s"], 2), f"{h['bound_s']:.0f}", str(h["bad"])]
                 for name, h in r["hostile"].items()],
                ["kind", "n", "answers", "p50 s", "max s", "bound s", "bad"])
    t, end = r["timing"], r["delivered_when_load_stopped"]
    print(f"\nwhen the load stopped: {end['acknowledged']:,} acknowledged, {end['relay']:,} at the relay target, "
          f"{end['forward']:,} at the forward target; "
          + (f"both had everything after {t['drain_s']} s of drain" if t["drained"]
             else f"still missing some after the {t['drain_bound_s']:.0f} s drain bound; queued on the server then: "
             f"{r['queued_after_drain']}"))
    print(f"\nload {t['load_s']} s, drain {t['drain_s']} s, shutdown {t['shutdown_s']} s (exit {t['server_exit']}); "
          f"script: max RSS {r['script']['max_rss_mib']:.0f} MiB, CPU {f(r['script']['cpu_percent'])}% of a core, "
          f"loop lag p99 {f(r['script']['loop_lag_ms_p99'])} ms")
    for name, log in r["logs"].items():
        if log["counts"]:
            print(f"{name} log: {log['counts']}")
            for line in log["samples"]:
                print(f"    {line}")
    if a["lost"]:
        print(f"of the lost, still queued on the server when the drain ended (late rather than gone): relay "
              f"{a['lost_relay_still_queued']:,}, forward {a['lost_forward_still_queued']:,}")
    if a["lost_samples"]:
        print("lost, first few:", *a["lost_samples"], sep="\n    ")
    if lv["violation_samples"]:
        print("live violations, first few:", *lv["violation_samples"], sep="\n    ")
    print("\nchecks:")
    for name, ok in r["checks"].items():
        print(f"  {'ok  ' if ok else 'FAIL'} {name}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=parse_duration, default=600.0, help="load time (e.g. 600, 10m)")
    parser.add_argument("--rate", type=float, default=200, help="ingest requests per second")
    parser.add_argument("--connections", type=int, default=48, help="keep-alive ingest connections")
    parser.add_argument("--big-every", type=int, default=50, help="1 in N ingest bodies is large (0: none)")
    parser.add_argument("--big-min", type=parse_size, default=MiB)
    parser.add_argument("--big-max", type=parse_size, default=5 * MiB)
    parser.add_argument("--subscribers", type=int, default=50, help="live websockets, non-readers included")
    parser.add_argument("--non-readers", type=int, default=10, help="live websockets that never read")
    parser.add_argument("--evict-limit", type=parse_duration, default=60.0,
                        help="a non-reader still open after this long counts as not evicted")
    parser.add_argument("--kill-every", type=parse_duration, default=60.0,
                        help="SIGKILL period of the relay and of the forward target (staggered by half)")
    parser.add_argument("--down", type=parse_duration, default=15.0, help="how long a killed one stays down")
    parser.add_argument("--retention-count", type=int, default=2000)
    parser.add_argument("--retention-ceiling", type=int, default=None,
                        help="default: rate x duration + retention count, so nothing still owed can be pruned "
                        "however far the relay or the forward target falls behind (the largest backlog is reported)")
    parser.add_argument("--max-body", type=parse_size, default=8 * MiB)
    parser.add_argument("--max-header-bytes", type=parse_size, default=64 * 1024)
    parser.add_argument("--header-timeout", type=parse_duration, default=5.0)
    parser.add_argument("--body-timeout", type=parse_duration, default=5.0)
    parser.add_argument("--max-connections", type=int, default=1024)
    parser.add_argument("--hostile-rate", type=float, default=1.0, help="hostile requests per second")
    parser.add_argument("--drain", type=parse_duration, default=90.0,
                        help="longest wait after the load for every capture to reach both targets")
    parser.add_argument("--durability", default="full", choices=["full", "normal"])
    parser.add_argument("--http", default="auto", choices=["auto", "httptools", "h11"])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write the summary here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, database)")
    args = parser.parse_args()
    if not 0 <= args.non_readers <= args.subscribers:
        parser.error("--non-readers must be between 0 and --subscribers")
    if args.retention_ceiling is None:
        args.retention_ceiling = int(args.rate * args.duration) + args.retention_count
    if args.big_every and not 0 < args.big_min <= args.big_max < args.max_body:
        parser.error("need 0 < --big-min <= --big-max < --max-body")

    tmp = Path(tempfile.mkdtemp(prefix="hookscope-soak-"))
    print(f"soak: {args.duration:.0f} s at {args.rate:.0f}/s, {args.subscribers} live subscribers "
          f"({args.non_readers} not reading), kills every {args.kill_every:.0f} s (down {args.down:.0f} s), "
          f"retention {args.retention_count} / ceiling {args.retention_ceiling}; durability {args.durability}; "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; work dir {tmp}", flush=True)
    failed = True
    try:
        try:
            result = asyncio.run(run(args, tmp))
        except (KeyboardInterrupt, asyncio.CancelledError):
            print("interrupted; every process started here was stopped", file=sys.stderr)
            return 130
        report(result)
        if args.json:
            args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
        failed = not all(result["checks"].values())
    finally:
        if failed or args.keep:
            print(f"work dir kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
