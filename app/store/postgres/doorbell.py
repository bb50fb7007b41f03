"""The cross-instance doorbell: one short LISTEN/NOTIFY ring per change a batch committed, never the data.

Several instances share one database, and each serves its own subscribers (live pages, smee streams, relays,
forward workers, passthrough waiters) from its in-process event bus. A commit by another instance reaches this one
as a ring naming what changed; the reader then fetches from the database by its cursor (a seq). Rings carry no
data: NOTIFY payloads must stay under 8,000 bytes, and reading by cursor makes a lost, late or coalesced ring
harmless (the next read catches up exactly).

Payload grammar (ASCII, single spaces between fields):

    payload  = "1" SP instance SP change
    change   = "r" SP endpoint SP seq    ; requests of `endpoint` committed, up to and including position `seq`
             / "x" SP endpoint           ; anything else of `endpoint` changed: re-read what you show of it
    instance = 1*32 ( ALPHA / DIGIT / "-" / "_" )
    endpoint = 1*64 ( ALPHA / DIGIT / "-" / "_" )     ; new_endpoint_id()'s alphabet
    seq      = %x31-39 *18DIGIT                         ; 1 .. 2^63-1, a PostgreSQL bigint, no leading zero

"x" covers removals (deleted, cleared, pruned), the endpoint's creation, settings and deletion, delivery records and
verdict changes: each is rare next to captures, so one kind that makes readers re-read is enough. "1" is the
grammar's version. Parsing is total: anything else (a malformed payload, a later version or kind during a rolling
upgrade) is logged and ignored, and the periodic check bounds what that misses. `instance` lets an instance ignore
its own rings: its own commits already reached its bus from its store's after-commit step.

PostgreSQL delivers the notifications of committed transactions in commit order, folding identical payloads within
one transaction, and only to connected listeners: rings sent while the listening connection is down are lost.
`Doorbell` therefore asks its owner to resync after every reconnect and periodically.

Use: the writer queues `ring_changes(conn, instance, rings_for(events))` inside each batch's transaction (one
statement, at most one ring per endpoint and kind, sent at COMMIT); one `Doorbell` per instance, sharing that
instance id, hears the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol, assert_never

import asyncpg

from app.events.types import (
    DeliveryRecorded,
    EndpointChanged,
    EndpointDeleted,
    Event,
    RequestAdded,
    RequestsRemoved,
    VerdictsChanged,
)

log = logging.getLogger("hookscope.doorbell")

DEFAULT_CHANNEL: Final = "hookscope"
VERSION: Final = "1"
MAX_SEQ: Final = 2**63 - 1
# PostgreSQL refuses a payload of 8,000 bytes or more; the grammar's longest is 121 bytes, so this is a backstop.
MAX_PAYLOAD: Final = 7999

_INSTANCE = re.compile(r"[A-Za-z0-9_-]{1,32}")
_ENDPOINT = re.compile(r"[A-Za-z0-9_-]{1,64}")
_SEQ = re.compile(r"[1-9][0-9]{0,18}")


@dataclass(frozen=True, slots=True)
class RequestsCommitted:
    """Requests of `endpoint_id` committed, up to and including position `seq`: a reader whose cursor is at or
    past `seq` has nothing to read."""

    endpoint_id: str
    seq: int


@dataclass(frozen=True, slots=True)
class EndpointTouched:
    """Something of `endpoint_id` other than new requests changed (removals, the endpoint itself, deliveries,
    verdicts): a reader re-reads whatever it shows of the endpoint."""

    endpoint_id: str


Ring = RequestsCommitted | EndpointTouched


@dataclass(frozen=True, slots=True)
class Heard:
    """A parsed payload: which instance rang, and what it says changed."""

    instance: str
    ring: Ring


ResyncReason = Literal["reconnected", "periodic"]


def new_instance_id() -> str:
    """64 random bits in hex: unique among the instances of one database for any practical purpose."""
    return secrets.token_hex(8)


def encode(instance: str, ring: Ring) -> str:
    """The payload for `ring` rung by `instance`. Raises ValueError when a field falls outside the grammar: that
    is a caller's bug, and a payload the other instances could not parse would be lost silently."""
    if not _INSTANCE.fullmatch(instance):
        raise ValueError(f"instance id outside the doorbell grammar: {instance!r}")
    if not _ENDPOINT.fullmatch(ring.endpoint_id):
        raise ValueError(f"endpoint id outside the doorbell grammar: {ring.endpoint_id!r}")
    if isinstance(ring, RequestsCommitted):
        if not 1 <= ring.seq <= MAX_SEQ:
            raise ValueError(f"seq out of range: {ring.seq}")
        return f"{VERSION} {instance} r {ring.endpoint_id} {ring.seq}"
    return f"{VERSION} {instance} x {ring.endpoint_id}"


def decode(payload: object) -> Heard | None:
    """The ring a payload names, or None when it is not one this version understands. Never raises."""
    if not isinstance(payload, str):
        return None
    fields = payload.split(" ")
    if len(fields) < 4 or fields[0] != VERSION or not _INSTANCE.fullmatch(fields[1]):
        return None
    instance, kind, endpoint_id = fields[1], fields[2], fields[3]
    if not _ENDPOINT.fullmatch(endpoint_id):
        return None
    if kind == "r" and len(fields) == 5 and _SEQ.fullmatch(fields[4]):
        seq = int(fields[4])
        return Heard(instance, RequestsCommitted(endpoint_id, seq)) if seq <= MAX_SEQ else None
    if kind == "x" and len(fields) == 4:
        return Heard(instance, EndpointTouched(endpoint_id))
    return None


def coalesce(rings: Iterable[Ring]) -> list[Ring]:
    """At most one ring per endpoint and kind: the largest seq of each endpoint's RequestsCommitted, one
    EndpointTouched. Sorted by endpoint id (requests before the rest), so equal batches ring identically."""
    seqs: dict[str, int] = {}
    touched: set[str] = set()
    for ring in rings:
        if isinstance(ring, RequestsCommitted):
            seqs[ring.endpoint_id] = max(ring.seq, seqs.get(ring.endpoint_id, 0))
        else:
            touched.add(ring.endpoint_id)
    out: list[Ring] = []
    for endpoint_id in sorted(seqs.keys() | touched):
        if endpoint_id in seqs:
            out.append(RequestsCommitted(endpoint_id, seqs[endpoint_id]))
        if endpoint_id in touched:
            out.append(EndpointTouched(endpoint_id))
    return out


def rings_for(events: Iterable[Event]) -> list[Ring]:
    """The coalesced rings announcing a batch's store events to the other instances: a RequestAdded is a
    RequestsCommitted up to its seq, anything else an EndpointTouched of its endpoint."""

    def ring_of(event: Event) -> Ring:
        match event:
            case RequestAdded(request=request):
                return RequestsCommitted(request.endpoint_id, request.seq)
            case RequestsRemoved() | EndpointChanged() | EndpointDeleted() | DeliveryRecorded() | VerdictsChanged():
                return EndpointTouched(event.endpoint_id)
            case _:
                assert_never(event)

    return coalesce(ring_of(e) for e in events)


class Executor(Protocol):
    """What ringing needs of a connection: an asyncpg Connection, or a pool's connection proxy."""

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str: ...


async def ring(conn: Executor, payload: str, *, channel: str = DEFAULT_CHANNEL) -> None:
    """Queue one ring in `conn`'s current transaction: it goes out at COMMIT, and never if the transaction rolls
    back (outside a transaction, at once)."""
    if len(payload.encode()) > MAX_PAYLOAD:
        raise ValueError(f"doorbell payload of {len(payload.encode())} bytes")
    await conn.execute("SELECT pg_notify($1, $2)", channel, payload)


async def ring_changes(
    conn: Executor, instance: str, rings: Iterable[Ring], *, channel: str = DEFAULT_CHANNEL
) -> int:
    """Coalesce a batch's changes and queue their rings in `conn`'s current transaction in one round trip;
    returns how many rings were queued (0 sends nothing). Like `ring`, they go out at COMMIT."""
    payloads = [encode(instance, r) for r in coalesce(rings)]
    if payloads:
        # WITH ORDINALITY ... ORDER BY: the rings leave in the order coalesce() gave them.
        await conn.execute(
            "SELECT pg_notify($1, p) FROM unnest($2::text[]) WITH ORDINALITY AS t(p, n) ORDER BY n",
            channel,
            payloads,
        )
    return len(payloads)


class Doorbell:
    """One instance's ear: a dedicated connection (never a pooled one: a pool, or PgBouncer in transaction mode,
    would hand the LISTEN session to someone else) listening on `channel`.

    `on_ring(ring)` is called for every ring of another instance, in the order the database delivered them.
    `on_resync(reason)` says that rings may have been missed and every local subscriber should re-read from its
    cursor: "reconnected" after the listening connection was lost and is listening again (rings during the gap are
    lost), "periodic" every `check_interval` seconds while connected (bounding what a ring lost any other way
    delays: the callback decides what is worth reading, e.g. only endpoints with subscribers). Both callbacks run
    on the event loop, must not block or await, and exceptions they raise are logged, not propagated.

    A connection is lost when it closes under us (server restart, `pg_terminate_backend`, reset) or when a ping,
    sent each `check_interval`, goes unanswered for `ping_timeout` seconds (a silent network). Reconnect attempts
    start at once and then back off exponentially from `backoff_min` to at most `backoff_max` seconds, with jitter
    so instances do not return in lockstep after a server restart. No periodic resync is due while disconnected:
    the "reconnected" one covers the gap.
    """

    def __init__(
        self,
        dsn: str,
        channel: str,
        on_ring: Callable[[Ring], None],
        on_resync: Callable[[ResyncReason], None],
        *,
        instance: str | None = None,
        check_interval: float = 5.0,
        ping_timeout: float = 10.0,
        connect_timeout: float = 10.0,
        backoff_min: float = 0.05,
        backoff_max: float = 5.0,
    ) -> None:
        self.instance: Final = instance if instance is not None else new_instance_id()
        if not _INSTANCE.fullmatch(self.instance):
            raise ValueError(f"instance id outside the doorbell grammar: {self.instance!r}")
        # Shown in pg_stat_activity, so an operator (or a test) can find this instance's listening connection.
        self.application_name: Final = f"hookscope doorbell {self.instance}"
        self._dsn = dsn
        self._channel = channel
        self._on_ring = on_ring
        self._on_resync = on_resync
        self._check_interval = check_interval
        self._ping_timeout = ping_timeout
        self._connect_timeout = connect_timeout
        self._backoff_min = backoff_min
        self._backoff_max = backoff_max
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._reconnects = 0

    @property
    def connected(self) -> bool:
        """Listening right now (as far as we know: a silent network shows only when a ping goes unanswered)."""
        return self._conn is not None and not self._conn.is_closed()

    @property
    def reconnects(self) -> int:
        """How many times the listening connection was lost and listening resumed since start()."""
        return self._reconnects

    async def start(self) -> None:
        """Connect and LISTEN; returns once every ring committed from now on will be heard. Anything committed
        before is the caller's to read (start the doorbell before loading state). Raises what asyncpg raises when
        the database cannot be reached: the caller refuses to start rather than run deaf."""
        if self._task is not None or self._stopping:
            raise RuntimeError("a Doorbell starts once")
        conn, lost = await self._listen()
        self._task = asyncio.create_task(self._run(conn, lost), name=f"doorbell {self.instance}")

    async def stop(self) -> None:
        """Cancel and await the listening task, then close the connection; returns when neither is left and no
        callback will be called any more. Idempotent."""
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
            if not task.cancelled() and task.exception() is not None:
                log.error("doorbell task had failed", exc_info=task.exception())
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            # When the goodbye fails (unreachable server, broken socket), close() aborts the connection itself.
            with contextlib.suppress(Exception):
                await conn.close(timeout=self._connect_timeout)

    async def _listen(self) -> tuple[asyncpg.Connection, asyncio.Event]:
        """A new connection listening on the channel, and the event its closing sets."""
        conn = await asyncpg.connect(
            self._dsn, timeout=self._connect_timeout, server_settings={"application_name": self.application_name}
        )
        lost = asyncio.Event()
        try:
            conn.add_termination_listener(lambda _conn: lost.set())
            await conn.add_listener(self._channel, self._heard)
        except BaseException:
            conn.terminate()
            raise
        self._conn = conn
        return conn, lost

    async def _run(self, conn: asyncpg.Connection, lost: asyncio.Event) -> None:
        while True:
            await self._watch(conn, lost)
            self._conn = None
            conn.terminate()
            log.warning("doorbell: listening connection lost; reconnecting")
            conn, lost = await self._reconnect()
            self._reconnects += 1
            log.info("doorbell: listening again (reconnect %d); resyncing subscribers", self._reconnects)
            self._resync("reconnected")

    async def _watch(self, conn: asyncpg.Connection, lost: asyncio.Event) -> None:
        """Returns when `conn` is lost; meanwhile pings it and asks for the periodic resync."""
        while True:
            try:
                await asyncio.wait_for(lost.wait(), self._check_interval)
            except TimeoutError:
                pass
            if lost.is_set():
                return
            try:
                await conn.execute("SELECT 1", timeout=self._ping_timeout)
            except Exception as exc:  # whatever the failure, this connection cannot be trusted to deliver
                log.warning("doorbell: ping failed: %r", exc)
                return
            self._resync("periodic")

    async def _reconnect(self) -> tuple[asyncpg.Connection, asyncio.Event]:
        delay = 0.0
        while True:
            if delay:
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            try:
                return await self._listen()
            except Exception as exc:  # refused, timed out, shutting down, too many connections: all transient
                log.warning("doorbell: reconnect failed: %r", exc)
            delay = min(max(2 * delay, self._backoff_min), self._backoff_max)

    def _heard(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        if self._stopping:
            return
        heard = decode(payload)
        if heard is None:
            log.warning("doorbell: ignoring a payload this version does not understand: %.200r", payload)
            return
        if heard.instance == self.instance:
            return
        try:
            self._on_ring(heard.ring)
        except Exception:
            log.exception("doorbell: on_ring failed for %r", heard.ring)

    def _resync(self, reason: ResyncReason) -> None:
        if self._stopping:
            return
        try:
            self._on_resync(reason)
        except Exception:
            log.exception("doorbell: on_resync(%s) failed", reason)
