"""A small HTTP/1.1 client that writes exactly the request it is given and parses the answer with h11.

Why not httpx: forwarding must send the captured header list byte for byte (order, duplicates, case as
stored), never add headers, never follow redirects, never decompress, and connect to the address the SSRF
guard checked; and sequential delivery to a local dev server is latency bound, where httpx costs ~1 ms per
request on a 2-core machine (measured ~700 requests/s against ~5,000/s for this client).

So the request head is written by us (`Outgoing.head_bytes()`), and only the RESPONSE goes through h11, a
well-kept sans-I/O parser: a client-role `h11.Connection` is told about a stand-in request that carries what
matters for reading the answer (HEAD or not, whether we asked to close, an upgrade proposal so that a 101 is
reported as an event rather than a state error), and the bytes h11 would have written are thrown away.

Every way a target can misbehave ends in an exception for this one attempt, never in a hang or a crash:
a malformed or oversized answer is a ProtocolError with a readable reason, a target that trickles for ever
runs into the per-attempt deadline (TimeoutError), a dead socket is an OSError. Nothing is ever sent twice
here: a keep-alive connection is checked before a byte is written (peer closed, idle too long), and once a
byte of a request is on the wire, any failure is the caller's failed attempt to record and retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import h11

from app.delivery.outgoing import Outgoing, RawHeaders

KEEP_BODY = 64 * 1024
MAX_HEAD = 64 * 1024  # all response heads of one exchange together (interim ones included)
MAX_DRAIN = 8 * 1024 * 1024  # a body larger than this is not an answer to a webhook: the attempt fails
MAX_INTERIM = 8  # 1xx answers tolerated before the final one
IDLE_PER_ORIGIN = 4
# Node's http server closes idle keep-alive sockets after 5 s (keepAliveTimeout); reusing a connection near
# that edge races the server's close with our write, so idle connections are dropped well before it.
MAX_IDLE = 2.0
READ_SIZE = 65536
SMALL_BODY = 65536  # written together with the head: two writes would meet Nagle and delayed ACKs

# (host, port) -> addresses to try, in order; raises (e.g. TargetRefused) to refuse the target.
AddressLookup = Callable[[str, int], Awaitable[list[str]]]
Phase = Literal["connecting", "sending the request", "waiting for the answer", "reading the body"]


class ProtocolError(Exception):
    """The target's answer is not one we accept (malformed, oversized, endless, or switching protocols).
    The message is written for the user and needs no class name in front of it."""


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    reason: str
    headers: RawHeaders  # names lowercased, values as sent
    body: bytes  # at most `keep` bytes
    body_size: int  # bytes the target sent (may exceed len(body))
    latency_ms: float

    @property
    def truncated(self) -> bool:
        return self.body_size > len(self.body)


def describe_error(exc: BaseException) -> str:
    """A short, user-facing description of what made an attempt fail."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the target running?)"
    if isinstance(exc, TimeoutError):
        return str(exc) or "timed out waiting for the target"
    if isinstance(exc, ProtocolError):
        return str(exc)
    text = str(exc) or type(exc).__name__
    return text if text.startswith(type(exc).__name__) else f"{type(exc).__name__}: {text}"


class _Conn:
    __slots__ = ("idle_since", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = time.monotonic()

    def reusable(self, now: float, max_idle: float) -> bool:
        """Safe to write a request on: the peer has not closed it and it has not idled near a server's
        keep-alive timeout. Checked BEFORE writing, since after a write we can no longer retry silently."""
        return (
            now - self.idle_since <= max_idle
            and not self.reader.at_eof()
            and self.reader.exception() is None
            and not self.writer.is_closing()
        )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class _Progress:
    """How far an attempt got, for the message of a timeout."""

    __slots__ = ("body_size", "phase", "status")

    def __init__(self) -> None:
        self.phase: Phase = "connecting"
        self.status: int | None = None
        self.body_size = 0

    def describe(self) -> str:
        if self.phase == "reading the body":
            return f"reading the body of its {self.status} answer ({self.body_size} bytes so far)"
        return self.phase


class HttpClient:
    def __init__(
        self, lookup: AddressLookup | None = None, connect_timeout: float = 10.0, max_idle: float = MAX_IDLE
    ) -> None:
        self.lookup = lookup
        self.connect_timeout = connect_timeout
        self.max_idle = max_idle
        self._idle: dict[tuple[str, str, int], list[_Conn]] = {}
        self._ssl: ssl.SSLContext | None = None
        # Built once: validating a stand-in request costs about as much as parsing a small answer.
        self._stand_ins = {(head, close): _stand_in(head, close) for head in (False, True) for close in (False, True)}

    async def aclose(self) -> None:
        conns = [c for idle in self._idle.values() for c in idle]
        self._idle.clear()
        for conn in conns:
            conn.close()
        for conn in conns:
            with contextlib.suppress(Exception):
                await conn.writer.wait_closed()

    async def send(self, out: Outgoing, deadline: float = 30.0, keep: int = KEEP_BODY) -> HttpResponse:
        """Send one request, once, and read the answer within `deadline` seconds (connecting included).

        Raises OSError, TimeoutError, ProtocolError, or whatever the address lookup raises to refuse a target.
        """
        started = time.perf_counter()
        key = (out.target.scheme, out.target.host, out.target.port)
        progress = _Progress()
        conn: _Conn | None = None
        timer = asyncio.timeout(deadline)
        try:
            async with timer:
                conn = await self._checkout(key)
                response, reusable = await self._exchange(conn, out, keep, started, progress)
        except TimeoutError:
            if conn is not None:
                conn.close()
            if timer.expired():
                raise TimeoutError(f"timed out after {deadline:g} s {progress.describe()}") from None
            raise
        except BaseException:
            if conn is not None:
                conn.close()
            raise
        self._checkin(key, conn, reusable)
        return response

    def _checkin(self, key: tuple[str, str, int], conn: _Conn, reusable: bool) -> None:
        idle = self._idle.setdefault(key, [])
        if reusable and len(idle) < IDLE_PER_ORIGIN:
            conn.idle_since = time.monotonic()
            idle.append(conn)
        else:
            conn.close()

    async def _checkout(self, key: tuple[str, str, int]) -> _Conn:
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle:
            conn = idle.pop()  # the most recently used: the least likely to have been closed by the peer
            if conn.reusable(now, self.max_idle):
                return conn
            conn.close()
        scheme, host, port = key
        # The lookup is the SSRF guard: we connect to exactly the addresses it vetted, never to `host` again.
        addrs = await self.lookup(host, port) if self.lookup is not None else [host]
        ctx = self._ssl_context() if scheme == "https" else None
        last: Exception | None = None
        for addr in addrs:
            try:
                async with asyncio.timeout(self.connect_timeout):
                    reader, writer = await asyncio.open_connection(
                        addr, port, ssl=ctx, server_hostname=host if ctx else None, limit=MAX_HEAD
                    )
                return _Conn(reader, writer)
            except TimeoutError:
                last = TimeoutError(f"timed out after {self.connect_timeout:g} s connecting to {addr} port {port}")
            except OSError as exc:
                last = exc
        raise last if last is not None else OSError(f"no address for {host}")

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    async def _exchange(
        self, conn: _Conn, out: Outgoing, keep: int, started: float, progress: _Progress
    ) -> tuple[HttpResponse, bool]:
        # h11 only reads the answer: it is told about a stand-in of our request (see _stand_in), and the
        # bytes it would write for it are dropped; the request on the wire is exactly out.head_bytes().
        parser = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
        parser.send(self._stand_ins[out.method.upper() == "HEAD", _has_token(out.headers, b"connection", b"close")])
        parser.send(h11.EndOfMessage())
        head = out.head_bytes()
        progress.phase = "sending the request"
        if len(out.body) < SMALL_BODY:
            conn.writer.write(head + out.body)
        else:
            conn.writer.write(head)
            conn.writer.write(out.body)
        await conn.writer.drain()
        progress.phase = "waiting for the answer"

        reader = conn.reader
        received = 0  # bytes fed to the parser: bounds the heads before the final answer's head is complete
        eof = False
        interim = 0
        final: h11.Response | None = None
        latency = 0.0
        kept = bytearray()
        size = 0
        while True:
            try:
                event = parser.next_event()
            except h11.RemoteProtocolError as exc:
                raise _malformed(exc, received, eof, final) from None
            if event is h11.NEED_DATA:
                data = await reader.read(READ_SIZE)
                eof = not data
                received += len(data)
                if final is None and received > MAX_HEAD:
                    raise ProtocolError(f"the target's response head is larger than {MAX_HEAD // 1024} KiB")
                parser.receive_data(data)  # b"" tells h11 the target closed the connection
            elif isinstance(event, h11.Data):
                size += len(event.data)
                progress.body_size = size
                if len(kept) < keep:
                    kept += event.data[: keep - len(kept)]
                if size > MAX_DRAIN:
                    raise ProtocolError(
                        f"the target's {progress.status} answer has a body larger than {MAX_DRAIN // 2**20} MiB; "
                        "stopped reading it"
                    )
            elif isinstance(event, h11.Response):
                latency = (time.perf_counter() - started) * 1000.0
                final = event
                if received - len(parser.trailing_data[0]) > MAX_HEAD:
                    raise ProtocolError(f"the target's response head is larger than {MAX_HEAD // 1024} KiB")
                names = {n for n, _ in event.headers}
                if b"transfer-encoding" in names and b"content-length" in names:
                    # RFC 9112 6.3: a sign of response splitting or smuggling; ought to be handled as an error.
                    raise ProtocolError("the target's answer has both Transfer-Encoding and Content-Length")
                progress.phase = "reading the body"
                progress.status = event.status_code
            elif isinstance(event, h11.InformationalResponse):
                if event.status_code == 101:
                    raise ProtocolError("the target answered 101 Switching Protocols; a webhook cannot switch")
                interim += 1  # 100 Continue, 103 Early Hints: the final answer follows
                if interim > MAX_INTERIM:
                    raise ProtocolError(f"the target sent more than {MAX_INTERIM} interim (1xx) answers")
            elif isinstance(event, h11.EndOfMessage):
                break
            else:  # ConnectionClosed or PAUSED cannot come before EndOfMessage; never loop on them
                raise ProtocolError(f"unexpected response event {type(event).__name__}")
        assert final is not None  # EndOfMessage comes only after a Response
        rest, closed = parser.trailing_data
        # Reuse needs a clean end: keep-alive on both sides and not a byte beyond the answer (an extra byte
        # would be read as the start of the next answer).
        reusable = parser.our_state is h11.DONE and parser.their_state is h11.DONE and not rest and not closed
        headers: RawHeaders = [(n, v) for n, v in final.headers]
        reason = final.reason.decode("latin-1")
        return HttpResponse(final.status_code, reason, headers, bytes(kept), size, latency), reusable


def _has_token(headers: RawHeaders, name: bytes, token: bytes) -> bool:
    return any(n.lower() == name and token in v.lower() for n, v in headers)


def _stand_in(head: bool, close: bool) -> h11.Request:
    """The request h11 is told we sent: only what changes how the answer is read. HEAD: no body follows.
    Connection: close: no reuse. The upgrade proposal makes a 101 arrive as an event we can refuse by name
    instead of as a state error; without a 101, h11 treats the proposal as declined and reads the answer as
    usual."""
    return h11.Request(
        method=b"HEAD" if head else b"POST",
        target=b"/",
        headers=[
            (b"host", b"target"),
            (b"connection", b"close, upgrade" if close else b"upgrade"),
            (b"upgrade", b"unexpected"),
        ],
    )


def _malformed(exc: h11.RemoteProtocolError, received: int, eof: bool, final: h11.Response | None) -> ProtocolError:
    if eof and final is None:
        if received == 0:
            return ProtocolError("the target closed the connection without answering")
        return ProtocolError("the target closed the connection in the middle of its response head")
    if eof and final is not None:
        status = final.status_code
        return ProtocolError(f"the target closed the connection before the end of its {status} answer: {exc}")
    where = "response head" if final is None else f"{final.status_code} answer"
    return ProtocolError(f"the target sent a malformed {where}: {exc}")
