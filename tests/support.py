"""Test helpers: a real uvicorn server on 127.0.0.1 in the test's event loop, and a subprocess server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from app.main import HookscopeApp, create_app
from app.server.http_guard import uvicorn_config
from app.settings import Settings

REPO = Path(__file__).resolve().parent.parent
# One TLS context for every test client: httpx builds a new one per client (about 50 ms of CPU loading the CA
# bundle), which adds up over hundreds of calls; tests only talk plain http to loopback anyway.
LOCAL_TLS = ssl.create_default_context()


@dataclass
class LiveServer:
    url: str
    app: HookscopeApp
    settings: Settings
    port: int

    def client(self, **kw: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, trust_env=False, verify=LOCAL_TLS, timeout=30, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def live_server(settings: Settings) -> AsyncIterator[LiveServer]:
    """Run create_app(settings) under uvicorn in this event loop, on a socket bound to 127.0.0.1:0."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # A socket handed to uvicorn loses asyncio's default TCP_NODELAY: without it every response written in two
    # parts waits ~40 ms for a delayed ACK (measured: 22 requests/s on keep-alive). Accepted sockets inherit it.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    settings = replace(settings, port=port)
    app = create_app(settings)
    # The same protocol and limits as `hookscope serve` (app/http_guard.py).
    config = uvicorn_config(app, settings, log_level="warning", lifespan="on", ws_ping_interval=None)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await wait_until(lambda: server.started or task.done(), timeout=15)
        if task.done():
            task.result()
        yield LiveServer(f"http://127.0.0.1:{port}", app, settings, port)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
        sock.close()


async def wait_until(cond: Callable[[], bool], timeout: float = 10.0, interval: float = 0.01) -> None:
    """Poll a condition until it holds; raise TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(interval)


async def create_endpoint(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    resp = await client.post("/api/endpoints", json=fields)
    assert resp.status_code == 201, resp.text
    data: dict[str, Any] = resp.json()
    return data


class ServerProcess:
    """`hookscope serve` as a real subprocess (for kill -9 and memory tests)."""

    def __init__(self, db: Path | str, args: Sequence[str] = (), env: dict[str, str] | None = None) -> None:
        self.db = db
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = list(args)
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> None:
        cmd = [sys.executable, "-m", "app", "serve", "--port", str(self.port), "--db", str(self.db), *self.args]
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout
        # One client for the whole wait: each top-level httpx.get builds a new client and SSL context (~50 ms of CPU),
        # which the starting server would otherwise compete with on every poll.
        with httpx.Client(trust_env=False, verify=LOCAL_TLS, timeout=1) as client:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"server exited: {self.proc.stderr.read().decode() if self.proc.stderr else ''}"
                    )
                try:
                    if client.get(self.url + "/healthz").status_code in (200, 401):
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError("server did not start")
                time.sleep(0.02)  # polling interval: a refused connect costs next to nothing

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stop()
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()


async def raw_request(port: int, data: bytes, *, close_after_send: bool = False, timeout: float = 10.0) -> bytes:
    """Send raw bytes on a fresh connection and return everything the server answers until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        if close_after_send:
            return b""
        chunks = []
        async with asyncio.timeout(timeout):
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                joined = b"".join(chunks)
                head, sep, rest = joined.partition(b"\r\n\r\n")
                if sep:
                    length = next(
                        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                         if line.lower().startswith(b"content-length:")),
                        None,
                    )
                    if length is not None and len(rest) >= length:
                        return joined
        return b"".join(chunks)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


# uvicorn closes a keep-alive connection after 5 s idle; a client that keeps one as long may send on it just as the
# server closes it ("Server disconnected without sending a response"). Ours let theirs go first.
CLIENT_KEEPALIVE_SECONDS = 2.0


def server_client(srv: ServerProcess, timeout: float = 60.0) -> httpx.AsyncClient:
    """An HTTP client for a server process (its API and capture URL)."""
    return httpx.AsyncClient(
        base_url=srv.url, trust_env=False, verify=LOCAL_TLS, timeout=timeout,
        limits=httpx.Limits(keepalive_expiry=CLIENT_KEEPALIVE_SECONDS),
    )
