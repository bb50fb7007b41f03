"""Limits that make uvicorn safe to face the open internet: request-head size, slow senders, connection count.

uvicorn reads a request head for as long as the sender keeps sending (a 64 MiB header block was accepted and
stored) and waits for a half-sent request for ever (1,000 of them used up the file descriptors). The guard
subclasses uvicorn's two HTTP/1.1 protocols (httptools and h11) and checks every chunk *before* the parser sees
it, so a head is refused while it arrives and memory stays bounded by the limit plus one read:

* the whole head (request line and headers, up to its blank line) may be at most `max_header_bytes`
  (431 `headers_too_large`), the request line alone at most `max_request_line` (414 `uri_too_long`);
* a sender has `header_timeout` seconds from the first byte of a request (or from connecting, for a
  connection that sends nothing) to finish the head, and a body may stall for at most `body_timeout`
  seconds; time during which uvicorn stopped reading because the application is slow (flow control,
  100-continue) does not count (408 `request_timeout`, or a plain close when no response is possible);
* at most `max_connections` connections are served at once; one more is answered 503
  `too_many_connections` right at accept and closed, so a flood costs refusals, not a hang.

Every refusal is our JSON error shape with `connection: close`, written straight to the transport. Nothing is
stored for a refused head: it is incomplete and sized by the sender.

`uvicorn_config()` builds the one uvicorn.Config used by `hookscope serve` and by the tests' live servers.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import resource
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, ClassVar, Literal, Protocol, cast

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState

from app.json_errors import error_body
from app.settings import Settings

log = logging.getLogger("hookscope.http")

Parser = Literal["httptools", "h11"]

# File descriptors kept free for everything that is not an incoming connection: the database and its WAL,
# spilled body files, outgoing forward and relay connections, log files.
RESERVED_FDS = 256
# Upper bound of the default connection cap. A stalled connection may hold a head of up to max_header_bytes
# (64 KiB), so 4,096 of them bound that memory to 256 MiB; raise --max-connections on a bigger machine.
DEFAULT_MAX_CONNECTIONS = 4096
# asyncio and uvloop hand a protocol at most this much per read. The guard may undercount a pipelined head by one
# read (see _Guarded._head_data), so h11's own last-resort limit sits that far above ours and never answers first.
READ_SIZE = 256 * 1024
REFUSAL_LOG_INTERVAL = 60.0
# How long a refused sender may go on sending (discarded) after our answer, so that it can read the answer.
LINGER = 2.0


def _cancel(timer: asyncio.TimerHandle | None) -> asyncio.TimerHandle | None:
    """Cancel a timer if there is one; always None, for `self._x_timer = _cancel(self._x_timer)`."""
    if timer is not None:
        timer.cancel()
    return None


def _response(status: int, code: str, message: str, extra: bytes = b"") -> bytes:
    body = error_body(code, message)
    return (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n".encode()
        + b"content-type: application/json\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\nconnection: close\r\n"
        + extra
        + b"\r\n"
        + body
    )


@dataclass(frozen=True, slots=True)
class Limits:
    """One server's limits and the complete responses it answers with (built once, written as they are)."""

    max_header_bytes: int
    max_request_line: int
    header_timeout: float
    body_timeout: float
    max_connections: int
    headers_too_large: bytes
    uri_too_long: bytes
    header_timed_out: bytes
    body_timed_out: bytes
    refused: bytes

    @classmethod
    def build(cls, settings: Settings, max_connections: int) -> Limits:
        return cls(
            max_header_bytes=settings.max_header_bytes,
            max_request_line=settings.max_request_line,
            header_timeout=settings.header_timeout,
            body_timeout=settings.body_timeout,
            max_connections=max_connections,
            headers_too_large=_response(
                431, "headers_too_large", f"the request head is over {settings.max_header_bytes} bytes"
            ),
            uri_too_long=_response(414, "uri_too_long", f"the request line is over {settings.max_request_line} bytes"),
            header_timed_out=_response(
                408, "request_timeout", f"the request head did not arrive within {settings.header_timeout:g} s"
            ),
            body_timed_out=_response(
                408, "request_timeout", f"no body data arrived for {settings.body_timeout:g} s"
            ),
            refused=_response(
                503, "too_many_connections", f"this server serves at most {max_connections} connections at once",
                b"retry-after: 1\r\n",
            ),
        )


class RefusalLog:
    """Per-server count of refused connections, logged at most once a minute (a flood must not flood the log)."""

    def __init__(self) -> None:
        self.refused = 0
        self.logged_at = 0.0

    def note(self, limit: int) -> None:
        self.refused += 1
        now = time.monotonic()
        if now - self.logged_at >= REFUSAL_LOG_INTERVAL:
            log.warning("refused %d connection(s) with 503: %d connections are open (--max-connections)",
                        self.refused, limit)
            self.refused = 0
            self.logged_at = now


class _Cycle(Protocol):
    """What the guard reads and sets on the request cycle of either uvicorn protocol."""

    response_started: bool
    response_complete: bool
    disconnected: bool
    waiting_for_100_continue: bool
    message_event: asyncio.Event


class _Guarded(asyncio.Protocol):
    """The parser-independent half: head accounting, timers, the connection cap.

    A subclass provides `_feed` (the parser's data_received), `_cycle`, `_reading_body`, and routes each chunk
    to `_head_data` while its parser is between messages or inside a head. Per-connection state lives in
    class-level defaults that the first assignment shadows, so a connection that never needs it costs nothing.
    """

    limits: ClassVar[Limits]
    refusals: ClassVar[RefusalLog]

    # Provided by uvicorn's protocol classes.
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    flow: FlowControl
    server_state: ServerState

    _refused = False
    _lingering = False  # answered and half-closed: whatever still arrives is discarded
    _upgraded = False
    _head_seen = 0  # bytes of the current head counted so far (0: no byte of a head yet)
    _line_done = False  # the current head's request line ended within the limit
    _header_timer: asyncio.TimerHandle | None = None
    _body_timer: asyncio.TimerHandle | None = None
    _body_at = 0.0  # loop time of the last body byte (or of the end of a pause)

    # Hooks for the parser-specific subclass.
    def _feed(self, data: bytes) -> bool:
        """Hand data to uvicorn's parser; True when a request head completed during it."""
        raise NotImplementedError

    def _cycle(self) -> _Cycle | None:
        raise NotImplementedError

    def _reading_body(self) -> bool:
        raise NotImplementedError

    # Connection lifetime.
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        limits = self.limits
        if len(self.server_state.connections) >= limits.max_connections:
            # Answer and close at once, before uvicorn allocates anything: the descriptor is freed right away.
            self._refused = True
            writer = cast(asyncio.WriteTransport, transport)
            writer.write(limits.refused)
            writer.close()
            self.refusals.note(limits.max_connections)
            return
        super().connection_made(transport)
        # Covers a connection that never sends a byte; the first byte of a head restarts it.
        self._header_timer = self.loop.call_later(limits.header_timeout, self._header_expired)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refused:
            return
        self._cancel_timers()
        super().connection_lost(exc)

    def _cancel_timers(self) -> None:
        self._header_timer = _cancel(self._header_timer)
        self._body_timer = _cancel(self._body_timer)

    def _upgrading(self) -> None:
        """The connection becomes a websocket: its timers stop here (the websocket protocol keeps its own)."""
        self._upgraded = True
        self._cancel_timers()

    # Request heads.
    def _head_data(self, data: bytes) -> None:
        """A chunk that starts inside a head (or between messages): count it, refuse it, or feed it.

        The head's start is known exactly when the chunk starts between messages. When a head starts in the
        middle of a chunk (pipelining), its bytes in that chunk are not counted, so a head may exceed the limit
        by at most one read before it is refused.
        """
        limits = self.limits
        seen = self._head_seen
        if not self._line_done:
            window = limits.max_request_line - seen
            if data.find(b"\n", 0, window) >= 0:
                self._line_done = True
            elif len(data) >= window:
                self._reject(limits.uri_too_long)
                return
        size = len(data)
        if seen + size <= limits.max_header_bytes:
            completed = self._feed(data)
        else:
            # The parser decides where the head ends: it gets only what the limit allows, and the rest only when
            # the head ended within it. No scanning for the blank line, no buffering of our own.
            window = limits.max_header_bytes - seen
            completed = self._feed(data[:window])
            if not completed:
                if not self.transport.is_closing():
                    self._reject(limits.headers_too_large)
                return
            if not self._upgraded and not self.transport.is_closing():
                self._feed(data[window:])
        if completed:
            self._head_seen = 0
            self._line_done = False
            self._header_timer = _cancel(self._header_timer)
            if self._reading_body() and not self._upgraded:
                self._arm_body_timer()
        else:
            self._head_seen = seen + size
            if seen == 0 or self._header_timer is None:
                # The first byte of this request's head: the sender has header_timeout from now.
                _cancel(self._header_timer)
                self._header_timer = self.loop.call_later(limits.header_timeout, self._header_expired)

    def _header_expired(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        cycle = self._cycle()
        if cycle is not None and not cycle.response_complete:
            # A pipelined head waits while we answer the request before it: that time is ours, not the sender's.
            self._header_timer = self.loop.call_later(self.limits.header_timeout, self._header_expired)
            return
        # A connection that sent nothing is closed without an answer: an unasked-for response could be read as
        # the answer to the request its client is about to send.
        self._close(self.limits.header_timed_out if self._head_seen else None)

    # Request bodies.
    def _arm_body_timer(self) -> None:
        self._body_at = self.loop.time()
        if self._body_timer is None:
            self._body_timer = self.loop.call_later(self.limits.body_timeout, self._body_expired)

    def _body_expired(self) -> None:
        self._body_timer = None
        if self.transport.is_closing() or not self._reading_body():
            return
        now = self.loop.time()
        cycle = self._cycle()
        if self.flow.read_paused or (cycle is not None and cycle.waiting_for_100_continue):
            # uvicorn stopped reading because the application is behind, or the sender waits for our
            # 100 Continue: the silence is ours, so the sender's clock starts again.
            self._body_at = now
        due = self._body_at + self.limits.body_timeout
        if due > now:
            self._body_timer = self.loop.call_at(due, self._body_expired)
            return
        self._close(self.limits.body_timed_out if cycle is not None and not cycle.response_started else None)

    # Refusing.
    def _reject(self, response: bytes) -> None:
        cycle = self._cycle()
        self._close(response if cycle is None or cycle.response_complete else None)

    def _close(self, response: bytes | None) -> None:
        """Answer (when a response is still possible) and close. The application's request, if one is running,
        sees a disconnect and whatever it sends is dropped instead of following our answer on the wire."""
        self._cancel_timers()
        cycle = self._cycle()
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True
            cycle.message_event.set()
        if response is None or not self.transport.can_write_eof():
            if response is not None:
                self.transport.write(response)
            self.transport.close()
            return
        # Lingering close: a sender still writing when we close gets a TCP reset, and a reset can destroy our
        # answer before its client reads it. So: answer, end our side, discard what still arrives (see
        # data_received) for at most LINGER seconds, then close.
        self._lingering = True
        self.transport.write(response)
        self.transport.write_eof()
        self._header_timer = self.loop.call_later(LINGER, self.transport.close)


class GuardedH11(_Guarded, H11Protocol):
    """uvicorn's h11 protocol with the guard; the per-server Limits come from protocol_class()."""

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            self._body_at = self.loop.time()
            H11Protocol.data_received(self, data)
            if self._body_timer is not None and self.conn.their_state is not h11.SEND_BODY:
                self._body_timer = _cancel(self._body_timer)
            elif self._body_timer is None and self.conn.their_state is h11.SEND_BODY:
                self._arm_body_timer()
        elif state is h11.IDLE:
            self._head_data(data)
        else:
            H11Protocol.data_received(self, data)

    def _feed(self, data: bytes) -> bool:
        H11Protocol.data_received(self, data)
        # Called only while their_state was IDLE; within one call it cannot come back to IDLE (that needs our
        # response, which the application has not had the chance to send yet).
        return self._upgraded or self.conn.their_state is not h11.IDLE

    def _cycle(self) -> _Cycle | None:
        return self.cycle

    def _reading_body(self) -> bool:
        return self.conn.their_state is h11.SEND_BODY

    def on_response_complete(self) -> None:
        H11Protocol.on_response_complete(self)
        # uvicorn now parses a pipelined request from what h11 buffered, without a data_received to arm our timer.
        if self._body_timer is None and self.conn.their_state is h11.SEND_BODY:
            self._arm_body_timer()

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self._upgrading()
        H11Protocol.handle_websocket_upgrade(self, event)


class GuardedWebSockets(WebSocketsSansIOProtocol):
    """uvicorn's websocket protocol, aborting a peer that stops reading.

    The kernel and asyncio buffer what a peer does not read; once the transport's buffer passes its high-water
    mark every send waits. A close frame or a keep-alive timeout cannot help then: `transport.close()` waits for
    that buffer to drain, which a peer that never reads never lets happen, so the socket and its buffers would
    stay for as long as the peer keeps the connection. After `send_stall` seconds paused, the transport is
    aborted: the handler sees a disconnect and the buffers are freed at once.
    """

    send_stall: ClassVar[float]
    _stall_timer: asyncio.TimerHandle | None = None
    _close_watch: asyncio.TimerHandle | None = None
    _close_stuck = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        WebSocketsSansIOProtocol.connection_made(self, transport)
        self._close_watch = self.loop.call_later(self.send_stall, self._watch_close)

    def _watch_close(self) -> None:
        """A close (ours, or uvicorn's keep-alive timeout) that cannot flush: the transport stays open until its
        buffer drains, and below the high-water mark pause_writing never fired. Stuck for two looks: abort."""
        self._close_watch = None
        stuck = self.transport.is_closing() and self.transport.get_write_buffer_size() > 0
        if stuck and self._close_stuck:
            self._stalled()
            return
        self._close_stuck = stuck
        self._close_watch = self.loop.call_later(self.send_stall, self._watch_close)

    def pause_writing(self) -> None:
        WebSocketsSansIOProtocol.pause_writing(self)
        if self._stall_timer is None:
            self._stall_timer = self.loop.call_later(self.send_stall, self._stalled)

    def resume_writing(self) -> None:
        WebSocketsSansIOProtocol.resume_writing(self)
        self._cancel_stall()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_stall()
        self._cancel_watch()
        WebSocketsSansIOProtocol.connection_lost(self, exc)

    def _cancel_stall(self) -> None:
        self._stall_timer = _cancel(self._stall_timer)

    def _cancel_watch(self) -> None:
        self._close_watch = _cancel(self._close_watch)

    def _stalled(self) -> None:
        self._stall_timer = None
        self._cancel_watch()
        log.info("websocket peer %s read nothing for %g s; dropping the connection", self.client, self.send_stall)
        self.transport.abort()


def websocket_class(settings: Settings) -> type[asyncio.Protocol]:
    """A websocket protocol class for one server, with its own stall limit."""
    return type("GuardedWebSockets", (GuardedWebSockets,), {"send_stall": settings.body_timeout})


def _httptools_class() -> type[_Guarded]:
    # Imported here: httptools is optional for uvicorn, and --http h11 must work without it.
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class GuardedHttpTools(_Guarded, HttpToolsProtocol):
        """uvicorn's httptools protocol with the guard; its parser callbacks mark where heads and bodies end."""

        _in_body = False
        _heads = 0

        def data_received(self, data: bytes) -> None:
            if self._lingering:
                return
            if self._in_body:
                self._body_at = self.loop.time()
                HttpToolsProtocol.data_received(self, data)
                if self._body_timer is None and self._in_body:
                    self._arm_body_timer()
            else:
                self._head_data(data)

        def _feed(self, data: bytes) -> bool:
            heads = self._heads
            HttpToolsProtocol.data_received(self, data)
            return self._heads != heads

        def _cycle(self) -> _Cycle | None:
            return self.cycle

        def _reading_body(self) -> bool:
            return self._in_body

        def on_headers_complete(self) -> None:
            self._in_body = True
            self._heads += 1
            HttpToolsProtocol.on_headers_complete(self)

        def on_message_complete(self) -> None:
            self._in_body = False
            self._body_timer = _cancel(self._body_timer)
            HttpToolsProtocol.on_message_complete(self)

        def handle_websocket_upgrade(self) -> None:
            self._in_body = False
            self._upgrading()
            HttpToolsProtocol.handle_websocket_upgrade(self)

    return GuardedHttpTools


def resolve_parser(choice: str) -> Parser:
    """`--http auto` means httptools when it is installed (as uvicorn decides), else h11."""
    if choice == "h11" or (choice == "auto" and importlib.util.find_spec("httptools") is None):
        return "h11"
    return "httptools"


def protocol_class(settings: Settings, max_connections: int) -> type[asyncio.Protocol]:
    """A protocol class for one server: its own limits and refusal counter, nothing shared between servers."""
    base: type[_Guarded] = GuardedH11 if resolve_parser(settings.http) == "h11" else _httptools_class()
    attrs: dict[str, Any] = {"limits": Limits.build(settings, max_connections), "refusals": RefusalLog()}
    return type(base.__name__, (base,), attrs)


def raise_open_file_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            # macOS refuses RLIM_INFINITY for files; keep what we have rather than fail to start.
            log.warning("could not raise the open-file limit from %d to %d", soft, hard)
    return soft


def default_max_connections(fd_limit: int) -> int:
    """Connections served at once when --max-connections is not given: the open-file limit less a reserve for
    the database, body files and outgoing connections, at most DEFAULT_MAX_CONNECTIONS, at least 16."""
    if fd_limit == resource.RLIM_INFINITY:
        return DEFAULT_MAX_CONNECTIONS
    return max(16, min(DEFAULT_MAX_CONNECTIONS, fd_limit - RESERVED_FDS))


def max_connections(settings: Settings) -> int:
    if settings.max_connections is not None:
        return settings.max_connections
    return default_max_connections(resource.getrlimit(resource.RLIMIT_NOFILE)[0])


def uvicorn_config(app: ASGIApp, settings: Settings, **overrides: Any) -> uvicorn.Config:
    """The uvicorn.Config for `hookscope serve` (and the tests' servers): the guarded protocol and our defaults;
    `overrides` are passed to uvicorn.Config as they are."""
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "access_log": settings.access_log,
        "log_level": settings.log_level,
        "http": protocol_class(settings, max_connections(settings)),
        "ws": websocket_class(settings),
        # h11 refuses a head past this with its own plain-text 400; ours answers first with 431.
        "h11_max_incomplete_event_size": settings.max_header_bytes + READ_SIZE,
        # We read X-Forwarded-For ourselves, only from --trusted-proxy peers.
        "proxy_headers": False,
        "server_header": False,
        "timeout_graceful_shutdown": 10,
    }
    options.update(overrides)
    return uvicorn.Config(app, **options)
