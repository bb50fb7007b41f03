#!/usr/bin/env python3
"""A small round-robin TCP proxy for the multi-instance benchmarks: loopback only, connection-level round robin,
bounded buffers.

    python bench/rr_proxy.py --listen 127.0.0.1:0 --backend 127.0.0.1:8081 --backend 127.0.0.1:8082

Each accepted connection goes to the next backend in turn and stays there for its whole life, so an HTTP
keep-alive connection or a websocket is never split between instances (what a layer-4 load balancer does). A
backend that refuses the connection is skipped for that connection; when every backend refuses, the client's
connection is closed.

Contract:
- Prints one line on stdout once it accepts connections: `listening on 127.0.0.1:PORT` (the real port, also for
  port 0), then nothing until it stops; on SIGTERM or SIGINT it stops accepting, closes every connection and prints
  `connections per backend: N1 N2 ...` before exiting with status 0.
- Memory per connection is bounded: a side reads only while the other side's outgoing buffer is below HIGH_WATER
  (asyncio's pause_writing/resume_writing drive pause_reading/resume_reading on the peer), and what a client sends
  before its backend connection is up is held up to HIGH_WATER, with reading paused beyond it.
- Half-close is passed through (EOF one way, data may still flow the other); a reset or close on one side closes
  the other after what was already buffered for it has been written.
- Listens and connects on loopback addresses only: a benchmark helper, not a load balancer to expose.

Uses uvloop when it is installed (the proxy's own CPU time competes with the instances it measures).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import ipaddress
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024
CONNECT_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class Backend:
    host: str
    port: int


def loopback_address(text: str) -> tuple[str, int]:
    """HOST:PORT with a loopback HOST (127.0.0.0/8, ::1 as [::1], or localhost); raises ValueError otherwise."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        raise ValueError(f"{text!r}: expected HOST:PORT")
    host = host.strip("[]")
    if host == "localhost":
        host = "127.0.0.1"
    try:
        is_loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        is_loopback = False
    if not is_loopback:
        raise ValueError(f"{text!r}: only loopback addresses are allowed")
    port = int(port_text)
    if not 0 <= port < 65536:
        raise ValueError(f"{text!r}: bad port")
    return host, port


class _Side(asyncio.Protocol):
    """One side of a proxied connection: what it reads is written to its peer's transport.

    Back-pressure: when this side's transport buffers more than HIGH_WATER for writing, asyncio calls
    pause_writing here and the peer stops reading until the buffer drains below LOW_WATER.
    """

    def __init__(self, conn: _Connection) -> None:
        self.conn = conn
        self.transport: asyncio.Transport | None = None
        self.peer: _Side | None = None
        self.eof = False
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(high=HIGH_WATER, low=LOW_WATER)

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is None or peer.transport is None:
            self.conn.hold(self, data)
            return
        peer.transport.write(data)

    def eof_received(self) -> bool:
        self.eof = True
        peer = self.peer
        if peer is not None and peer.transport is not None and not peer.lost:
            if peer.eof:
                # Both directions are finished: nothing more can flow.
                self.conn.close()
                return False
            if peer.transport.can_write_eof():
                peer.transport.write_eof()
        elif peer is None:
            self.conn.pending_eof = True
        # Keep our own transport open: the peer may still answer (half-close).
        return True

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None and not self.peer.lost:
            self.peer.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.conn.close()


class _Connection:
    """A client connection and its backend connection; owned by the Proxy, which closes what is left on stop."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.client = _Side(self)
        self.backend: _Side | None = None
        self.held = bytearray()
        self.held_paused = False
        self.pending_eof = False
        self.closed = False

    def hold(self, side: _Side, data: bytes) -> None:
        """Data from the client before the backend is connected: kept, bounded by HIGH_WATER."""
        self.held += data
        if len(self.held) > HIGH_WATER and side.transport is not None and not self.held_paused:
            self.held_paused = True
            side.transport.pause_reading()

    def attach(self, backend: _Side) -> None:
        assert self.client.transport is not None and backend.transport is not None
        self.backend = backend
        backend.peer = self.client
        self.client.peer = backend
        if self.held:
            backend.transport.write(bytes(self.held))
            self.held.clear()
        if self.pending_eof and backend.transport.can_write_eof():
            backend.transport.write_eof()
        if self.held_paused and not self.client.lost:
            self.held_paused = False
            self.client.transport.resume_reading()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.proxy.forget(self)
        # close() (not abort) writes out what is already buffered before closing.
        for side in (self.client, self.backend):
            if side is not None and side.transport is not None:
                side.transport.close()


def _same(side: _Side) -> _Side:
    return side


class Proxy:
    """Accepts on one loopback address and spreads connections over the backends in turn."""

    def __init__(self, backends: list[Backend]) -> None:
        self.backends = backends
        self.counts = [0] * len(backends)
        self._next = 0
        self._connections: set[_Connection] = set()
        self._connecting: set[asyncio.Task[None]] = set()

    def accept(self) -> _Side:
        conn = _Connection(self)
        self._connections.add(conn)
        task = asyncio.get_running_loop().create_task(self._connect(conn))
        # Owned here: stop() cancels whatever is still connecting.
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)
        return conn.client

    def forget(self, conn: _Connection) -> None:
        self._connections.discard(conn)

    async def _connect(self, conn: _Connection) -> None:
        loop = asyncio.get_running_loop()
        start = self._next
        self._next = (self._next + 1) % len(self.backends)
        for i in range(len(self.backends)):
            index = (start + i) % len(self.backends)
            backend = self.backends[index]
            side = _Side(conn)
            try:
                await asyncio.wait_for(
                    loop.create_connection(functools.partial(_same, side), backend.host, backend.port),
                    CONNECT_TIMEOUT,
                )
            except (OSError, TimeoutError):
                continue
            if conn.closed:
                assert side.transport is not None
                side.transport.close()
                return
            self.counts[index] += 1
            conn.attach(side)
            return
        conn.close()

    async def stop(self) -> None:
        for task in list(self._connecting):
            task.cancel()
        await asyncio.gather(*self._connecting, return_exceptions=True)
        for conn in list(self._connections):
            conn.close()


async def serve(listen: tuple[str, int], backends: list[Backend]) -> list[int]:
    """Run until SIGTERM or SIGINT; returns the number of connections each backend got."""
    proxy = Proxy(backends)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(proxy.accept, listen[0], listen[1], backlog=1024)
    port = server.sockets[0].getsockname()[1]
    print(f"listening on {listen[0]}:{port}", flush=True)
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    try:
        await stopping.wait()
    finally:
        server.close()
        await proxy.stop()
        await server.wait_closed()
    return proxy.counts


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", default="127.0.0.1:0", help="loopback HOST:PORT (port 0: any free port)")
    parser.add_argument("--backend", action="append", required=True, help="loopback HOST:PORT (repeat)")
    args = parser.parse_args()
    try:
        listen = loopback_address(args.listen)
        backends = [Backend(*loopback_address(b)) for b in args.backend]
    except ValueError as exc:
        raise SystemExit(f"rr_proxy: {exc}") from None
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        counts = runner.run(serve(listen, backends))
    print("connections per backend: " + " ".join(str(c) for c in counts), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
