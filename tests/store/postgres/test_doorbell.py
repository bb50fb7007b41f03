"""The cross-instance doorbell (app/store/postgres/doorbell.py): the payload grammar, coalescing, and a real
listening connection on a database of its own: rings arrive in commit order, own and malformed rings are ignored,
a killed or refused connection comes back with exactly one resync, the periodic check fires, stop() leaves
nothing behind."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.delivery.records import Delivery
from app.events.types import (
    DeliveryRecorded,
    EndpointChanged,
    EndpointDeleted,
    Event,
    RequestAdded,
    RequestsRemoved,
    Verdict,
    VerdictsChanged,
)
from app.models import CapturedRequest, Endpoint
from app.store.postgres.doorbell import (
    MAX_SEQ,
    Doorbell,
    EndpointTouched,
    Heard,
    RequestsCommitted,
    ResyncReason,
    Ring,
    coalesce,
    decode,
    encode,
    new_instance_id,
    ring,
    ring_changes,
    rings_for,
)
from tests import pg
from tests.support import wait_until

CHANNEL = "hookscope"
ME = "me"
OTHER = "other"
EP = "Ab-_09xyzXYZ0123456789"  # the shape of new_endpoint_id()

# --- the payload grammar -------------------------------------------------------------------------------------------

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
ids = st.text(ALPHABET, min_size=1, max_size=32)
endpoints = st.text(ALPHABET, min_size=1, max_size=64)
rings = st.one_of(
    st.builds(RequestsCommitted, endpoints, st.integers(1, MAX_SEQ)), st.builds(EndpointTouched, endpoints)
)


@given(ids, rings)
def test_every_ring_round_trips_and_fits_in_a_notify(instance: str, r: Ring) -> None:
    payload = encode(instance, r)
    assert decode(payload) == Heard(instance, r)
    assert len(payload.encode()) < 200


def test_the_documented_payloads() -> None:
    assert encode("i1", RequestsCommitted(EP, 42)) == f"1 i1 r {EP} 42"
    assert encode("i1", EndpointTouched(EP)) == f"1 i1 x {EP}"
    assert decode(f"1 i1 r {EP} {MAX_SEQ}") == Heard("i1", RequestsCommitted(EP, MAX_SEQ))


@pytest.mark.parametrize(
    "payload",
    [
        "", "1", "garbage", f"1 i1 r {EP}", f"1 i1 r {EP} 0", f"1 i1 r {EP} 007", f"1 i1 r {EP} -1",
        f"1 i1 r {EP} 1.5", f"1 i1 r {EP} 1_0", f"1 i1 r {EP} \u0661", f"1 i1 r {EP} {MAX_SEQ + 1}",
        f"1 i1 r {EP} 99999999999999999999", f"1 i1 r {EP} 1 2", f"1 i1 r {EP} 1 ", f"1  i1 r {EP} 1",
        f"1 i1 x {EP} 5", f"1 i1 x {EP} ", f"1 i1 q {EP}", f"2 i1 x {EP}", "1 i1 x ep\u00e9", "1 i1 x " + "e" * 65,
        f"1 {'i' * 33} x {EP}", f"1 i.1 x {EP}", f"1\ti1 x {EP}", f"1 i1 x {EP}\n", None, b"1 i1 x ep", 7,
    ],
)
def test_anything_outside_the_grammar_is_ignored(payload: object) -> None:
    assert decode(payload) is None


@given(st.text())
def test_decode_is_total(payload: str) -> None:
    decoded = decode(payload)
    assert decoded is None or encode(decoded.instance, decoded.ring) == payload


@pytest.mark.parametrize(
    ("instance", "r"),
    [
        ("", EndpointTouched(EP)), ("a b", EndpointTouched(EP)), (ME, EndpointTouched("a b")),
        (ME, EndpointTouched("")), (ME, RequestsCommitted(EP, 0)), (ME, RequestsCommitted(EP, MAX_SEQ + 1)),
    ],
)
def test_encode_refuses_what_no_instance_could_parse(instance: str, r: Ring) -> None:
    with pytest.raises(ValueError):
        encode(instance, r)


def test_instance_ids_fit_the_grammar_and_differ() -> None:
    a, b = new_instance_id(), new_instance_id()
    assert a != b
    assert decode(encode(a, EndpointTouched(EP))) == Heard(a, EndpointTouched(EP))


def test_coalesce_keeps_one_ring_per_endpoint_and_kind() -> None:
    batch: list[Ring] = [
        RequestsCommitted("b", 3), EndpointTouched("b"), RequestsCommitted("a", 7), RequestsCommitted("b", 9),
        RequestsCommitted("b", 5), EndpointTouched("c"), EndpointTouched("b"),
    ]
    assert coalesce(batch) == [
        RequestsCommitted("a", 7), RequestsCommitted("b", 9), EndpointTouched("b"), EndpointTouched("c"),
    ]
    assert coalesce([]) == []


def captured(endpoint_id: str, rid: int, seq: int) -> CapturedRequest:
    return CapturedRequest(
        id=rid, seq=seq, endpoint_id=endpoint_id, received_at=0.0, method="POST", path="/", query="", headers=(),
        body_size=0, content_type="", client=None, http_version="1.1", rejected=None,
    )


def test_rings_for_a_batch_of_store_events() -> None:
    delivery = Delivery(
        id=1, request_id=9, endpoint_id="d", kind="forward", target="http://t", relay="", state="delivered",
        attempts=1, created_at=0.0, updated_at=0.0, next_attempt_at=None, status=200, latency_ms=1.0, error=None,
        response_headers=[], response_body=b"", response_size=0, history=[], sent=None,
    )
    events: list[Event] = [
        # Ids and seqs differ on purpose: the ring names the position (seq), never the global id.
        RequestAdded(captured("a", rid=40, seq=3)),
        RequestAdded(captured("a", rid=12, seq=2)),
        RequestAdded(captured("b", rid=41, seq=1)),
        RequestsRemoved("b", (41,), "deleted"),
        EndpointChanged(Endpoint("c", "named", 0.0)),
        EndpointDeleted("e"),
        DeliveryRecorded(delivery),
        VerdictsChanged("f", (Verdict(7, "valid", ""),)),
    ]
    assert rings_for(events) == [
        RequestsCommitted("a", 3), RequestsCommitted("b", 1), EndpointTouched("b"), EndpointTouched("c"),
        EndpointTouched("d"), EndpointTouched("e"), EndpointTouched("f"),
    ]
    assert rings_for([]) == []


# --- a real listening connection -----------------------------------------------------------------------------------


@dataclass
class Ear:
    """What a Doorbell told its owner."""

    rings: list[Ring] = field(default_factory=list)
    resyncs: list[ResyncReason] = field(default_factory=list)


BellFactory = Callable[..., AbstractAsyncContextManager[tuple[Doorbell, Ear]]]


@pytest.fixture
def open_bell(pg_dsn: str) -> BellFactory:
    @asynccontextmanager
    async def factory(**kw: Any) -> AsyncIterator[tuple[Doorbell, Ear]]:
        ear = Ear()
        kw.setdefault("check_interval", 3600)  # no periodic resync unless a test asks for one
        bell = Doorbell(pg_dsn, CHANNEL, ear.rings.append, ear.resyncs.append, instance=ME, **kw)
        await bell.start()
        try:
            yield bell, ear
        finally:
            await bell.stop()

    return factory


@pytest.fixture
async def other(pg_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """Another instance's connection to the same database."""
    conn = await asyncpg.connect(pg_dsn)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def admin(pg_server: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(pg_server)
    try:
        yield conn
    finally:
        await conn.close()


async def listener_pids(conn: asyncpg.Connection, bell: Doorbell) -> list[int]:
    """The server processes of `bell`'s listening connection to the database `conn` is on (other tests, in other
    databases of the same server, run doorbells of the same name)."""
    rows = await conn.fetch(
        "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()",
        bell.application_name,
    )
    return [row["pid"] for row in rows]


async def until_no_listener(conn: asyncpg.Connection, bell: Doorbell, timeout: float = 10.0) -> None:
    """wait_until for the server side: polls pg_stat_activity until `bell` has no backend left."""
    async with asyncio.timeout(timeout):
        while True:
            if not await listener_pids(conn, bell):
                return
            await asyncio.sleep(0.01)  # the polling interval, as in wait_until


async def heard(ear: Ear, expected: list[Ring]) -> None:
    """Wait until `ear` heard as many rings as expected, then check they are exactly those, in order."""
    await wait_until(lambda: len(ear.rings) >= len(expected))
    assert ear.rings == expected


async def test_rings_of_another_instance_arrive_in_commit_order(
    open_bell: BellFactory, other: asyncpg.Connection
) -> None:
    async with open_bell() as (bell, ear):
        assert bell.connected
        expected: list[Ring] = []
        for seq in range(1, 101):
            r: Ring = RequestsCommitted(EP, seq) if seq % 10 else EndpointTouched(EP)
            await ring(other, encode(OTHER, r))
            expected.append(r)
        await heard(ear, expected)
        assert ear.resyncs == []
        assert bell.reconnects == 0


async def test_a_ring_leaves_at_commit_and_never_after_a_rollback(
    open_bell: BellFactory, other: asyncpg.Connection, pg_dsn: str
) -> None:
    second = await asyncpg.connect(pg_dsn)
    try:
        async with open_bell() as (_bell, ear):
            tx = other.transaction()
            await tx.start()
            await ring(other, encode(OTHER, RequestsCommitted(EP, 1)))
            # Another transaction commits while that one is open: its ring is heard, the open one's is not.
            await ring(second, encode(OTHER, EndpointTouched("second")))
            await heard(ear, [EndpointTouched("second")])
            await tx.rollback()
            async with other.transaction():
                await ring(other, encode(OTHER, EndpointTouched("after")))
            # Delivery is in commit order: a ring that escaped the rollback would have come before this one.
            await heard(ear, [EndpointTouched("second"), EndpointTouched("after")])
    finally:
        await second.close()


async def test_ring_changes_coalesces_a_batch_into_one_transaction(
    open_bell: BellFactory, other: asyncpg.Connection
) -> None:
    async with open_bell() as (_bell, ear):
        async with other.transaction():
            sent = await ring_changes(
                other,
                OTHER,
                [RequestsCommitted("b", 3), EndpointTouched("b"), RequestsCommitted("a", 1), RequestsCommitted("b", 4)],
            )
            assert await ring_changes(other, OTHER, []) == 0
        assert sent == 3
        await heard(ear, [RequestsCommitted("a", 1), RequestsCommitted("b", 4), EndpointTouched("b")])


async def test_own_rings_are_ignored(open_bell: BellFactory, other: asyncpg.Connection) -> None:
    async with open_bell() as (_bell, ear):
        await ring(other, encode(ME, RequestsCommitted(EP, 1)))
        await ring(other, encode(ME, EndpointTouched(EP)))
        await ring(other, encode(OTHER, RequestsCommitted(EP, 2)))
        await heard(ear, [RequestsCommitted(EP, 2)])


async def test_a_malformed_payload_is_logged_and_ignored(
    open_bell: BellFactory, other: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="hookscope.doorbell")
    async with open_bell() as (bell, ear):
        await ring(other, "garbage from somewhere")
        await ring(other, f"1 {OTHER} r {EP} 0")
        await ring(other, f"9 {OTHER} x {EP}")
        await ring(other, encode(OTHER, EndpointTouched(EP)))
        await heard(ear, [EndpointTouched(EP)])
        assert "garbage from somewhere" in caplog.text
        assert bell.connected
        assert bell.reconnects == 0


async def test_a_failing_callback_does_not_silence_the_doorbell(
    pg_dsn: str, other: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    got: list[Ring] = []

    def on_ring(r: Ring) -> None:
        got.append(r)
        if len(got) == 1:
            raise RuntimeError("subscriber bug")

    bell = Doorbell(pg_dsn, CHANNEL, on_ring, lambda _reason: None, instance=ME, check_interval=3600)
    await bell.start()
    try:
        await ring(other, encode(OTHER, EndpointTouched("one")))
        await ring(other, encode(OTHER, EndpointTouched("two")))
        await wait_until(lambda: len(got) >= 2)
        assert got == [EndpointTouched("one"), EndpointTouched("two")]
        assert "subscriber bug" in caplog.text
    finally:
        await bell.stop()


async def test_a_terminated_listener_reconnects_resyncs_once_and_hears_again(
    open_bell: BellFactory, other: asyncpg.Connection
) -> None:
    async with open_bell() as (bell, ear):
        [pid] = await listener_pids(other, bell)
        assert await other.fetchval("SELECT pg_terminate_backend($1)", pid)
        await wait_until(lambda: bell.reconnects == 1 and bell.connected)
        await ring(other, encode(OTHER, RequestsCommitted(EP, 5)))
        await heard(ear, [RequestsCommitted(EP, 5)])
        assert ear.resyncs == ["reconnected"]
        [new_pid] = await listener_pids(other, bell)
        assert new_pid != pid


def local_backend(pid: int, client_port: int) -> bool:
    """Whether `pid` is, on this machine, the server process serving our connection from `client_port` (never
    signal a process we are not sure of: a server in a container or elsewhere has pids of another namespace)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return cmdline.startswith(b"postgres: ") and f"({client_port})".encode() in cmdline


async def test_an_unanswered_ping_counts_as_a_lost_connection(
    open_bell: BellFactory, other: asyncpg.Connection
) -> None:
    async with open_bell(check_interval=0.05, ping_timeout=0.3) as (bell, ear):
        row = await other.fetchrow(
            "SELECT pid, client_port FROM pg_stat_activity"
            " WHERE application_name = $1 AND datname = current_database()",
            bell.application_name,
        )
        assert row is not None
        if not local_backend(row["pid"], row["client_port"]):
            message = "the server's processes are not ours to signal (another machine or container)"
            if pg.required():
                pytest.fail(message)
            pytest.skip(message)
        # A stopped backend keeps its socket open and answers nothing: a silent network, as seen from here.
        os.kill(row["pid"], signal.SIGSTOP)
        try:
            await wait_until(lambda: bell.reconnects == 1 and bell.connected)
        finally:
            os.kill(row["pid"], signal.SIGCONT)
        await ring(other, encode(OTHER, EndpointTouched(EP)))
        await heard(ear, [EndpointTouched(EP)])
        assert ear.resyncs.count("reconnected") == 1


async def test_refused_reconnects_back_off_and_end_in_one_resync(
    open_bell: BellFactory,
    other: asyncpg.Connection,
    admin: asyncpg.Connection,
    pg_dsn: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="hookscope.doorbell")
    database = pg.database_of(pg_dsn)
    async with open_bell(backoff_max=0.2) as (bell, ear):
        [pid] = await listener_pids(other, bell)
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        try:
            await other.fetchval("SELECT pg_terminate_backend($1)", pid)
            await wait_until(lambda: caplog.text.count("reconnect failed") >= 3)
            assert not bell.connected
            assert ear.resyncs == []
        finally:
            await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        await wait_until(lambda: bell.reconnects == 1 and bell.connected)
        await ring(other, encode(OTHER, EndpointTouched(EP)))
        await heard(ear, [EndpointTouched(EP)])
        assert ear.resyncs == ["reconnected"]


async def test_the_periodic_check_fires_while_connected(open_bell: BellFactory) -> None:
    async with open_bell(check_interval=0.02) as (bell, ear):
        await wait_until(lambda: len(ear.resyncs) >= 3)
        assert set(ear.resyncs) == {"periodic"}
        assert bell.reconnects == 0


def doorbell_tasks(bell: Doorbell) -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name() == f"doorbell {bell.instance}" and not t.done()]


async def test_stop_leaves_no_task_and_no_connection(open_bell: BellFactory, other: asyncpg.Connection) -> None:
    async with open_bell(check_interval=0.02) as (bell, ear):
        assert len(doorbell_tasks(bell)) == 1
        assert len(await listener_pids(other, bell)) == 1
        await wait_until(lambda: len(ear.resyncs) >= 1)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            await bell.stop()
            gc.collect()
        # A connection dropped without close() would also vanish, through asyncpg's finaliser, which warns.
        assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
        assert doorbell_tasks(bell) == []
        assert not bell.connected
        # The server ends the backend a moment after the client's goodbye.
        await until_no_listener(other, bell)
        await bell.stop()  # idempotent


async def test_stop_while_reconnecting_leaves_nothing(
    open_bell: BellFactory,
    other: asyncpg.Connection,
    admin: asyncpg.Connection,
    pg_dsn: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="hookscope.doorbell")
    database = pg.database_of(pg_dsn)
    async with open_bell(backoff_max=0.05) as (bell, ear):
        [pid] = await listener_pids(other, bell)
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        try:
            await other.fetchval("SELECT pg_terminate_backend($1)", pid)
            await wait_until(lambda: "reconnect failed" in caplog.text)
            await bell.stop()
        finally:
            await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
    assert doorbell_tasks(bell) == []
    await until_no_listener(other, bell)
    assert ear.resyncs == []
    assert bell.reconnects == 0


async def test_start_fails_when_the_database_cannot_be_reached(pg_server: str) -> None:
    bell = Doorbell(
        pg.with_database(pg_server, "hookscope_no_such_database"), CHANNEL, lambda _r: None, lambda _r: None
    )
    with pytest.raises(asyncpg.InvalidCatalogNameError):
        await bell.start()
    assert doorbell_tasks(bell) == []
    assert not bell.connected
