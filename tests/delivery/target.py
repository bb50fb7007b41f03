"""A recording HTTP/1.1 server standing in for the developer's local server (raw asyncio: it keeps header
order, duplicates and bytes exactly, and is cheap enough for benchmarks)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Received:
    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    at: float = field(default_factory=time.perf_counter)
    wall: float = field(default_factory=time.time)

    def header(self, name: bytes) -> bytes | None:
        for n, v in self.headers:
            if n.lower() == name:
                return v
        return None


Responder = Callable[[Received], tuple[int, list[tuple[bytes, bytes]], bytes]]


def ok(_: Received) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    return 200, [(b"content-type", b"text/plain")], b"ok"


class RecordingTarget:
    def __init__(self, responder: Responder = ok, port: int = 0, keep: bool = True) -> None:
        self.responder = responder
        self.port = port
        self.keep = keep
        self.received: list[Received] = []
        self.count = 0
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.StreamWriter] = set()
        self.event = asyncio.Event()
        self.delay = 0.0  # seconds before answering (a slow dev server)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> RecordingTarget:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for w in list(self._conns):
                w.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> RecordingTarget:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._conns.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head[:-4].split(b"\r\n")
                method, target, _ = lines[0].split(b" ", 2)
                headers = []
                for line in lines[1:]:
                    n, _, v = line.partition(b":")
                    headers.append((n, v.strip()))
                length = next((int(v) for n, v in headers if n.lower() == b"content-length"), 0)
                body = await reader.readexactly(length) if length else b""
                rec = Received(method, target, headers, body)
                if self.keep:
                    self.received.append(rec)
                self.count += 1
                self.event.set()
                if self.delay:
                    await asyncio.sleep(self.delay)
                status, rheaders, rbody = self.responder(rec)
                out = [f"HTTP/1.1 {status} X".encode(), *(n + b": " + v for n, v in rheaders),
                       b"content-length: " + str(len(rbody)).encode()]
                writer.write(b"\r\n".join(out) + b"\r\n\r\n" + rbody)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        except asyncio.CancelledError:
            # Cancelled at interpreter or loop shutdown: swallowed so asyncio's stream callback does not log a
            # traceback for a connection the test no longer cares about.
            return
        finally:
            self._conns.discard(writer)
            writer.close()
