"""A raw-socket HTTP "target" that misbehaves on purpose, chosen by the last segment of the request path.

    /ok                  200 with a body, keep-alive
    /negative-length     Content-Length: -1
    /negative-chunk      chunked, chunk size -5
    /bad-chunk           chunked, chunk size "zz"
    /huge-head           a 70 KiB response head
    /endless-body        a close-delimited body that never ends
    /endless-continue    "100 Continue" for ever
    /switching           101 Switching Protocols
    /garbage             bytes that are not HTTP
    /close               closes right after reading the request
    /silent              never answers (keeps the connection open)
    /trickle             a head, then one body byte every 50 ms for ever
    /short-body          Content-Length: 100, sends 9 bytes, closes
    /conflicting-length  Content-Length: 2 and Content-Length: 3
    /te-and-cl           Transfer-Encoding: chunked and Content-Length together

Well-formed answers for the client's own tests: /head-length (Content-Length without a body, for HEAD), /204,
/304, /chunked-trailers, /close-delimited, /big (100 KiB), /interim (100 and 103 first), /http10,
/conn-close, /extra-bytes (a byte after the answer), /ok-then-close (answers keep-alive, then closes).

Every request is recorded with the raw bytes of its head, its connection's number and its index on that
connection, so tests count what arrived (per path) and compare it with the attempts hookscope recorded.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

MAX_WAIT = 60.0  # a held-open connection gives up by itself, so no handler outlives a failed test by long


@dataclass(frozen=True, slots=True)
class Hit:
    method: bytes
    path: bytes  # the request-target
    raw_head: bytes  # the request head exactly as received, blank line included
    body: bytes
    conn: int  # the connection's number (1-based, in accept order)
    index: int  # the request's position on its connection (1-based)

    @property
    def case(self) -> str:
        return self.path.split(b"?", 1)[0].rsplit(b"/", 1)[-1].decode("latin-1")


Answer = Callable[[Hit, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bool]]  # -> keep the connection


class HostileTarget:
    def __init__(self) -> None:
        self.port = 0
        self.hits: list[Hit] = []
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._answers: dict[str, Answer] = {
            "ok": self._ok,
            "negative-length": self._fixed(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"),
            "negative-chunk": self._fixed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                          b"-5\r\nhello\r\n0\r\n\r\n"),
            "bad-chunk": self._fixed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"),
            "huge-head": self._fixed(
                b"HTTP/1.1 200 OK\r\n" + b"".join(b"x-filler-%d: %s\r\n" % (i, b"a" * 1000) for i in range(70))
                + b"content-length: 0\r\n\r\n"
            ),
            "endless-body": self._endless(b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n\r\n",
                                          b"\x00" * 65536),
            "endless-continue": self._endless(b"", b"HTTP/1.1 100 Continue\r\n\r\n"),
            "switching": self._fixed(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                     b"Connection: Upgrade\r\n\r\n"),
            "garbage": self._fixed(b"SSH-2.0-OpenSSH_9.6\r\n\x00\xff\xfe not http at all\r\n\r\n"),
            "close": self._close,
            "silent": self._fixed(b""),
            "trickle": self._trickle,
            "short-body": self._fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly some", hold=False),
            "conflicting-length": self._fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc"),
            "te-and-cl": self._fixed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
                                     b"3\r\nabc\r\n0\r\n\r\n"),
            # well-formed
            "head-length": self._reply(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"),
            "204": self._reply(b"HTTP/1.1 204 No Content\r\n\r\n"),
            "304": self._reply(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\nETag: \"x\"\r\n\r\n"),
            "chunked-trailers": self._reply(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"
                b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 11\r\n\r\n"
            ),
            "close-delimited": self._fixed(b"HTTP/1.1 200 OK\r\n\r\nbody until close", hold=False),
            "big": self._reply(b"HTTP/1.1 200 OK\r\nContent-Length: 102400\r\n\r\n" + b"b" * 102400),
            "interim": self._reply(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                                   b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
            "http10": self._fixed(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"),
            "conn-close": self._fixed(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"),
            "extra-bytes": self._fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokX"),
            "ok-then-close": self._fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", hold=False),
        }

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def count(self, case: str) -> int:
        return sum(1 for h in self.hits if h.case == case)

    async def start(self) -> HostileTarget:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, limit=1 << 20)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        for task in handlers:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def __aenter__(self) -> HostileTarget:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)  # owned: stop() cancels and awaits every handler
        self.connections += 1
        conn = self.connections
        try:
            for index in range(1, 1_000_000):
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head[:-4].split(b"\r\n")
                method, path, _ = lines[0].split(b" ", 2)
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length) if length else b""
                hit = Hit(method, path, head, body, conn, index)
                self.hits.append(hit)
                answer = self._answers.get(hit.case, self._unknown)
                if not await answer(hit, reader, writer):
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        except asyncio.CancelledError:
            return  # stop(): the test is over
        finally:
            self._handlers.discard(task)
            writer.close()

    # answers ---------------------------------------------------------------------------------------------------
    async def _ok(self, hit: Hit, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        body = b"ok " + hit.body[:32]
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        return True

    async def _unknown(self, hit: Hit, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
        return True

    async def _close(self, hit: Hit, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        return False

    def _reply(self, data: bytes) -> Answer:
        """A well-formed answer on a connection that stays open for the next request."""

        async def answer(hit: Hit, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
            writer.write(data)
            await writer.drain()
            return True

        return answer

    def _fixed(self, data: bytes, hold: bool = True) -> Answer:
        """Write `data`; then hold the connection until the client closes it (so what the client reports comes
        from the bytes, not from our close), or close at once when `hold` is false."""

        async def answer(hit: Hit, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
            if data:
                writer.write(data)
                await writer.drain()
            if hold:
                await _until_closed(reader)
            return False

        return answer

    def _endless(self, head: bytes, unit: bytes) -> Answer:
        async def answer(hit: Hit, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
            writer.write(head)
            async with asyncio.timeout(MAX_WAIT):
                while not writer.is_closing():
                    writer.write(unit)
                    await writer.drain()  # raises once the client has closed
                    # drain() does not yield while the socket takes everything; the client may share our loop
                    await asyncio.sleep(0)
            return False

        return answer

    async def _trickle(self, hit: Hit, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n")
        async with asyncio.timeout(MAX_WAIT):
            while True:
                writer.write(b".")
                await writer.drain()
                try:
                    await asyncio.wait_for(reader.read(1), 0.05)  # paces the trickle; b"" once the client is gone
                    return False
                except TimeoutError:
                    continue


async def _until_closed(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(TimeoutError, ConnectionError):
        async with asyncio.timeout(MAX_WAIT):
            while await reader.read(65536):
                pass


def by_case(hits: list[Hit]) -> collections.Counter[str]:
    return collections.Counter(h.case for h in hits)
