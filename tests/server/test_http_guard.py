"""Request-head limits, slow-client timeouts and the connection cap (app/http_guard.py), against real servers.

Every case runs under both HTTP parsers. Process-level properties (memory, the open-file limit, 1,000 stalled
connections) use `hookscope serve` as a subprocess; the rest an in-process uvicorn server. Timeouts in these
tests are short; every wait is on a condition (a response, a close), bounded only as a guard against hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from app.settings import Settings
from tests.support import (
    LOCAL_TLS,
    LiveServer,
    ServerProcess,
    create_endpoint,
    live_server,
    raw_request,
    status_of,
    wait_until,
)
from tests.web.test_live import frame, ws_url

PARSERS = ["httptools", "h11"]
MIB = 1024 * 1024
HANG_GUARD = 15.0


# Helpers ---------------------------------------------------------------------------------------------------


def parse_response(data: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split(" ", 2)[1]), headers, body


def error_code(data: bytes) -> str:
    _, headers, body = parse_response(data)
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    code: str = json.loads(body)["error"]["code"]
    return code


async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    async with asyncio.timeout(HANG_GUARD):
        while chunk := await reader.read(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def blocking_read_all(sock: socket.socket) -> bytes:
    chunks = []
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def stream_head(port: int, start: bytes, filler: int, on_first_mib: Any = None) -> bytes:
    """Send `start` then `filler` bytes of b"a" (never a line end) as fast as the server takes them; return the
    server's answer. A server that refuses closes with our bytes unread, so sending fails: that is expected."""
    piece = b"a" * (64 * 1024)
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=HANG_GUARD) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(start)
            while sent < filler:
                sock.sendall(piece)
                sent += len(piece)
                if on_first_mib is not None and sent == MIB:
                    on_first_mib()
        return blocking_read_all(sock)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@contextlib.contextmanager
def soft_fd_limit(soft: int) -> Iterator[None]:
    """Lower this process's soft open-file limit (a child started inside inherits it), then restore it."""
    old = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, old[1]), old[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, old)


def raise_own_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < needed:
        pytest.skip(f"needs {needed} open files, the hard limit is {hard}")


def capture_request(endpoint_id: str, body: bytes = b"hello", extra: bytes = b"") -> bytes:
    return (
        f"POST /h/{endpoint_id} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n".encode()
        + extra
        + b"\r\n"
        + body
    )


# Fixtures --------------------------------------------------------------------------------------------------


@pytest.fixture(params=PARSERS)
def http(request: pytest.FixtureRequest) -> str:
    parser: str = request.param
    return parser


@pytest.fixture(scope="module", params=PARSERS)
def proc(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """`hookscope serve` with default limits, started with a low soft open-file limit it should raise."""
    server = ServerProcess(tmp_path_factory.mktemp("guard") / "hookscope.db", ["--http", request.param])
    with soft_fd_limit(512):
        server.start()
    try:
        yield server
    finally:
        server.stop()
        if server.proc is not None and server.proc.stderr is not None:
            server.proc.stderr.close()


@pytest.fixture
def proc_endpoint(proc: ServerProcess) -> str:
    resp = httpx.post(proc.url + "/api/endpoints", json={}, trust_env=False, verify=LOCAL_TLS, timeout=HANG_GUARD)
    assert resp.status_code == 201
    endpoint_id: str = resp.json()["id"]
    return endpoint_id


def stored_count(base_url: str, endpoint_id: str) -> int:
    resp = httpx.get(f"{base_url}/api/endpoints/{endpoint_id}/requests",
        trust_env=False, verify=LOCAL_TLS, timeout=HANG_GUARD)
    return len(resp.json()["requests"])


@pytest.fixture
def guard_settings(tmp_path: Path, http: str) -> Settings:
    return Settings(db=tmp_path / "hookscope.db", janitor_interval=3600, http=http, header_timeout=0.5,
                    body_timeout=1.0)


@pytest.fixture
async def srv(guard_settings: Settings) -> AsyncIterator[LiveServer]:
    async with live_server(guard_settings) as server:
        yield server


@pytest.fixture
async def endpoint(srv: LiveServer) -> str:
    async with srv.client() as client:
        endpoint_id: str = (await create_endpoint(client))["id"]
        return endpoint_id


# Process-level: memory, the URL, the open-file limit, 1,000 stalled connections ----------------------------


def test_open_file_limit_raised_to_hard_limit(proc: ServerProcess) -> None:
    limits = Path(f"/proc/{proc.pid}/limits").read_text()
    line = next(x for x in limits.splitlines() if x.startswith("Max open files"))
    soft, hard = line.split()[3:5]
    assert soft == hard, line
    assert int(soft) > 512


def test_huge_header_block_refused_431_memory_flat(proc: ServerProcess, proc_endpoint: str) -> None:
    before = rss_kib(proc.pid)
    health: list[int] = []

    def check_health() -> None:
        # While the attacker's connection is open (or just refused), the server answers others.
        health.append(httpx.get(proc.url + "/healthz",
            trust_env=False, verify=LOCAL_TLS, timeout=HANG_GUARD).status_code)

    start = f"POST /h/{proc_endpoint} HTTP/1.1\r\nHost: x\r\nX-Big: ".encode()
    assert status_of(stream_head(proc.port, start, MIB)) == 431
    answer = stream_head(proc.port, start, 64 * MIB, check_health)
    assert status_of(answer) == 431
    assert error_code(answer) == "headers_too_large"
    check_health()
    assert health in ([200], [200, 200])  # the 64 MiB stream may be refused before its first MiB went out
    growth = rss_kib(proc.pid) - before
    assert growth < 30 * 1024, f"RSS grew by {growth} KiB"
    assert stored_count(proc.url, proc_endpoint) == 0


def test_huge_url_refused_414(proc: ServerProcess, proc_endpoint: str) -> None:
    before = rss_kib(proc.pid)
    answer = stream_head(proc.port, f"GET /h/{proc_endpoint}/".encode(), 64 * MIB)
    assert status_of(answer) == 414
    assert error_code(answer) == "uri_too_long"
    assert rss_kib(proc.pid) - before < 30 * 1024
    assert stored_count(proc.url, proc_endpoint) == 0


def test_thousand_stalled_connections_do_not_block_a_capture(proc: ServerProcess, proc_endpoint: str) -> None:
    stalled = 1000
    raise_own_fd_limit(stalled + 200)
    base = open_fds(proc.pid)
    socks: list[socket.socket] = []
    try:
        for _ in range(stalled):
            sock = socket.create_connection(("127.0.0.1", proc.port), timeout=HANG_GUARD)
            sock.sendall(f"POST /h/{proc_endpoint} HTTP/1.1\r\nHost: x\r\nX-Slow: ".encode())
            socks.append(sock)
        # Wait until the server really holds them (accepted, each an open descriptor).
        deadline = time.monotonic() + HANG_GUARD
        while open_fds(proc.pid) < base + stalled:
            assert time.monotonic() < deadline, "server did not accept the connections"
            time.sleep(0.02)
        resp = httpx.post(f"{proc.url}/h/{proc_endpoint}", content=b"fresh",
            trust_env=False, verify=LOCAL_TLS, timeout=5)
        assert resp.status_code == 200
    finally:
        for sock in socks:
            sock.close()


# Exact limits ----------------------------------------------------------------------------------------------


def padded_head(endpoint_id: str, total: int) -> tuple[bytes, str]:
    """A capture request whose head (up to and including its blank line) is exactly `total` bytes."""
    prefix = f"POST /h/{endpoint_id} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nX-Pad: ".encode()
    value = "p" * (total - len(prefix) - 4)
    return prefix + value.encode() + b"\r\n\r\n", value


async def test_head_at_the_limit_is_stored_byte_exact_one_more_byte_is_431(srv: LiveServer, endpoint: str) -> None:
    limit = srv.settings.max_header_bytes
    head, value = padded_head(endpoint, limit)
    assert len(head) == limit
    answer = await raw_request(srv.port, head + b"hello")
    assert status_of(answer) == 200, answer[:300]
    rid = json.loads(parse_response(answer)[2])["request_id"]
    async with srv.client() as client:
        stored = (await client.get(f"/api/requests/{rid}")).json()
        assert ["x-pad", value] in stored["headers"]
        assert (await client.get(f"/api/requests/{rid}/raw")).content == b"hello"

    over, _ = padded_head(endpoint, limit + 1)
    answer = await raw_request(srv.port, over + b"hello")
    assert status_of(answer) == 431
    assert error_code(answer) == "headers_too_large"
    async with srv.client() as client:
        listed = (await client.get(f"/api/endpoints/{endpoint}/requests")).json()["requests"]
        assert [r["id"] for r in listed] == [rid]


async def test_request_line_at_the_limit_is_served_one_more_byte_is_414(srv: LiveServer, endpoint: str) -> None:
    limit = srv.settings.max_request_line
    fixed = len(f"GET /h/{endpoint}/ HTTP/1.1\r\n")
    line = f"GET /h/{endpoint}/{'s' * (limit - fixed)} HTTP/1.1\r\n".encode()
    assert len(line) == limit
    answer = await raw_request(srv.port, line + b"Host: x\r\n\r\n")
    assert status_of(answer) == 200
    line = f"GET /h/{endpoint}/{'s' * (limit - fixed + 1)} HTTP/1.1\r\n".encode()
    answer = await raw_request(srv.port, line + b"Host: x\r\n\r\n")
    assert status_of(answer) == 414
    assert error_code(answer) == "uri_too_long"


# Slow senders ----------------------------------------------------------------------------------------------


async def test_trickled_head_gets_408_then_close(srv: LiveServer, endpoint: str) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)

    async def trickle() -> None:
        # One byte at a time, steadily: a steady trickle must not extend the deadline of the whole head.
        with contextlib.suppress(OSError):
            for byte in f"POST /h/{endpoint} HTTP/1.1\r\nHost: x\r\nX-Slow: {'z' * 10_000}".encode():
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.02)

    sender = asyncio.create_task(trickle())
    try:
        answer = await read_until_closed(reader)
    finally:
        sender.cancel()
        writer.close()
    assert status_of(answer) == 408
    assert error_code(answer) == "request_timeout"


async def test_silent_connection_closed_after_header_timeout(srv: LiveServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    try:
        assert await read_until_closed(reader) == b""
    finally:
        writer.close()


async def test_stalled_body_gets_408_and_nothing_is_stored(srv: LiveServer, endpoint: str) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    try:
        writer.write(capture_request(endpoint, b"0123456789" * 10)[:-90])
        answer = await read_until_closed(reader)
    finally:
        writer.close()
    assert status_of(answer) == 408
    assert error_code(answer) == "request_timeout"
    async with srv.client() as client:
        assert (await client.get(f"/api/endpoints/{endpoint}/requests")).json()["requests"] == []


async def test_slow_but_steady_body_is_not_cut(srv: LiveServer, endpoint: str) -> None:
    body = bytes(range(20))  # 20 pieces, 0.1 s apart: twice the body timeout in all, a tenth of it per gap
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    try:
        writer.write(capture_request(endpoint, body)[: -len(body)])
        for i in range(len(body)):
            await asyncio.sleep(0.1)
            writer.write(body[i : i + 1])
        async with asyncio.timeout(HANG_GUARD):
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(parse_response(head)[1]["content-length"])
            answer = head + await reader.readexactly(length)
    finally:
        writer.close()
    assert status_of(answer) == 200
    rid = json.loads(parse_response(answer)[2])["request_id"]
    async with srv.client() as client:
        assert (await client.get(f"/api/requests/{rid}/raw")).content == body


async def read_response(reader: asyncio.StreamReader) -> bytes:
    async with asyncio.timeout(HANG_GUARD):
        head = await reader.readuntil(b"\r\n\r\n")
        return head + await reader.readexactly(int(parse_response(head)[1]["content-length"]))


async def test_keep_alive_and_pipelining_still_work(srv: LiveServer, endpoint: str) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    try:
        # Three requests in one write, the last with its body split off into a later write.
        third = capture_request(endpoint, b"third")
        writer.write(capture_request(endpoint, b"first") + capture_request(endpoint, b"second") + third[:-5])
        answers = [await read_response(reader) for _ in range(2)]
        writer.write(third[-5:])
        answers.append(await read_response(reader))
        # Idle on the keep-alive connection longer than the header timeout: that clock starts at a request's
        # first byte, so the connection is still good.
        await asyncio.sleep(2 * srv.settings.header_timeout)
        writer.write(capture_request(endpoint, b"fourth"))
        answers.append(await read_response(reader))
    finally:
        writer.close()
    assert [status_of(a) for a in answers] == [200] * 4
    ids = [json.loads(parse_response(a)[2])["request_id"] for a in answers]
    async with srv.client() as client:
        bodies = [(await client.get(f"/api/requests/{rid}/raw")).content for rid in ids]
    assert bodies == [b"first", b"second", b"third", b"fourth"]


async def test_websocket_outlives_header_and_body_timeouts(srv: LiveServer, endpoint: str) -> None:
    async with websockets.connect(ws_url(srv, endpoint), proxy=None) as ws:
        assert (await frame(ws))["type"] == "hello"
        # Longer than both timeouts: the upgraded connection has no HTTP timers left.
        await asyncio.sleep(srv.settings.header_timeout + srv.settings.body_timeout + 0.5)
        async with srv.client() as client:
            rid = (await client.post(f"/h/{endpoint}", content=b"x")).json()["request_id"]
        seen: list[int] = []
        async with asyncio.timeout(HANG_GUARD):
            while rid not in seen:
                f = await frame(ws)
                if f["type"] == "requests":
                    seen.extend(r["id"] for r in f["requests"])


def _server_socket_inode(server_port: int, client_port: int) -> str | None:
    """The inode of the server's end of a loopback TCP connection, from /proc/net/tcp (None once it is gone)."""
    want_local, want_remote = f":{server_port:04X}", f":{client_port:04X}"
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1].endswith(want_local) and fields[2].endswith(want_remote):
                return fields[9]
    return None


def _inode_open_here(inode: str) -> bool:
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{fd}") == f"socket:[{inode}]":
                return True
    return False


async def test_websocket_peer_that_stops_reading_is_dropped(srv: LiveServer, endpoint: str) -> None:
    """A relay socket whose peer reads nothing: once the server's sends have waited --body-timeout, the
    connection is aborted and its socket closed (a close frame could never get through the full buffers)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", srv.port))
    try:
        await loop.sock_sendall(sock, (
            f"GET /api/endpoints/{endpoint}/relay?name=stalled&from=all HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        ).encode())
        inode: str | None = None
        async with asyncio.timeout(HANG_GUARD):
            while inode is None:
                inode = _server_socket_inode(srv.port, sock.getsockname()[1])
                await asyncio.sleep(0.02)
        async with srv.client() as client:
            for i in range(12):  # ~16 MiB of base64 frames: far more than the socket buffers hold
                assert (await client.post(f"/h/{endpoint}", content=bytes([i]) * MIB)).status_code == 200
        await wait_until(lambda: not _inode_open_here(inode), timeout=HANG_GUARD + srv.settings.body_timeout)
        async with srv.client() as client:
            assert (await client.get("/healthz")).status_code == 200
    finally:
        sock.close()


# The connection cap ----------------------------------------------------------------------------------------


async def test_connection_cap_refuses_with_503_then_recovers(guard_settings: Settings) -> None:
    settings = replace(guard_settings, max_connections=50, header_timeout=30.0)
    async with live_server(settings) as server:
        async with server.client() as client:
            endpoint = (await create_endpoint(client))["id"]
        held: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        try:
            while len(held) < 50:
                reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
                # A served request proves the server counts this connection; the partial head keeps it open.
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                assert status_of(await read_response(reader)) == 200
                writer.write(b"GET /healthz HTTP/1.1\r\n")
                held.append((reader, writer))
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            answer = await read_until_closed(reader)
            writer.close()
            assert status_of(answer) == 503
            assert error_code(answer) == "too_many_connections"
            assert parse_response(answer)[1]["retry-after"] == "1"

            for _, writer in held[:10]:
                writer.close()
            del held[:10]
            # The server notices the closes on its own schedule: retry on refusal until a capture is taken.
            async with asyncio.timeout(HANG_GUARD):
                while True:
                    with contextlib.suppress(OSError):
                        answer = await raw_request(server.port, capture_request(endpoint, b"after"))
                        if answer and status_of(answer) == 200:
                            break
                    await asyncio.sleep(0.02)
        finally:
            for _, writer in held:
                writer.close()
