"""The lease contract (app/store/leases.py) on every backend, through the `Store` interface only; then, on
PostgreSQL, two store objects on one database (two instances): one owner at a time, expiry, take-over, release.

Expiry is tested by renewing with a short ttl and polling until another owner gets the lease: never by sleeping
for a duration, never by asserting one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from app.endpoint_settings import EndpointSettings
from app.models import Endpoint, ResponseSpec
from app.store.base import Store
from app.store.postgres import PostgresStore
from tests.store.postgres.support import Databases
from tests.store.sink import RecordingSink
from tests.store.test_contract import Opened, StoreFactory, pg_databases, store_factory  # noqa: F401 (fixtures)

LONG = 600.0  # a ttl no test outlives: the lease cannot expire while the test looks at it
TARGET = "http://127.0.0.1:3000/in"


async def _until(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    """wait_until for an async condition: poll it until it holds; TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.01)


@pytest.fixture
async def opened(store_factory: StoreFactory) -> Opened:  # noqa: F811 (the imported fixture)
    return await store_factory()


@pytest.fixture
def store(opened: Opened) -> Store:
    return opened.store


@pytest.fixture
async def ep(store: Store) -> Endpoint:
    return await store.create_endpoint("leases", ResponseSpec(), EndpointSettings())


async def test_one_owner_at_a_time_and_renewal_keeps_it(store: Store, ep: Endpoint) -> None:
    assert await store.lease_owner("forward", ep.id, TARGET) is None
    assert await store.acquire_lease("forward", ep.id, TARGET, "a", LONG)
    assert not await store.acquire_lease("forward", ep.id, TARGET, "b", LONG)
    assert await store.acquire_lease("forward", ep.id, TARGET, "a", LONG)  # a renewal
    assert await store.lease_owner("forward", ep.id, TARGET) == "a"
    # Kind and name are part of the key: the same name as a relay, or another target, is another lease.
    assert await store.acquire_lease("relay", ep.id, TARGET, "b", LONG)
    assert await store.acquire_lease("forward", ep.id, TARGET + "/other", "b", LONG)
    assert await store.lease_owners(ep.id, "forward") == {TARGET: "a", TARGET + "/other": "b"}
    assert await store.lease_owners(ep.id, "relay") == {TARGET: "b"}


async def test_release_frees_it_at_once_and_only_for_its_owner(store: Store, ep: Endpoint) -> None:
    assert await store.acquire_lease("relay", ep.id, "laptop", "a", LONG)
    assert not await store.release_lease("relay", ep.id, "laptop", "b")
    assert await store.lease_owner("relay", ep.id, "laptop") == "a"
    assert await store.release_lease("relay", ep.id, "laptop", "a")
    assert not await store.release_lease("relay", ep.id, "laptop", "a")
    assert await store.lease_owner("relay", ep.id, "laptop") is None
    assert await store.lease_owners(ep.id, "relay") == {}
    assert await store.acquire_lease("relay", ep.id, "laptop", "b", LONG)


async def test_an_expired_lease_is_free(store: Store, ep: Endpoint) -> None:
    assert await store.acquire_lease("forward", ep.id, TARGET, "a", LONG)
    assert not await store.acquire_lease("forward", ep.id, TARGET, "b", LONG)
    # a renews with a short ttl and then stalls: once it ran out, b gets it, and a's next renewal fails.
    assert await store.acquire_lease("forward", ep.id, TARGET, "a", 0.2)
    await _until(lambda: store.acquire_lease("forward", ep.id, TARGET, "b", LONG))
    assert await store.lease_owner("forward", ep.id, TARGET) == "b"
    assert not await store.acquire_lease("forward", ep.id, TARGET, "a", LONG)
    assert not await store.release_lease("forward", ep.id, TARGET, "a")


async def test_take_over_wins_and_the_previous_owner_notices_at_renewal(store: Store, ep: Endpoint) -> None:
    assert await store.acquire_lease("relay", ep.id, "laptop", "a", LONG)
    assert await store.take_over_lease("relay", ep.id, "laptop", "b", LONG)
    assert await store.lease_owner("relay", ep.id, "laptop") == "b"
    assert not await store.acquire_lease("relay", ep.id, "laptop", "a", LONG)
    assert not await store.release_lease("relay", ep.id, "laptop", "a")  # a's cleanup must not free b's lease
    assert await store.lease_owner("relay", ep.id, "laptop") == "b"
    assert await store.take_over_lease("relay", ep.id, "laptop", "b", LONG)  # taking over one's own: a renewal
    assert await store.take_over_lease("relay", ep.id, "fresh", "c", LONG)  # nothing to take over: taken
    assert await store.lease_owners(ep.id, "relay") == {"laptop": "b", "fresh": "c"}


async def test_no_lease_on_a_missing_or_deleted_endpoint(store: Store, ep: Endpoint) -> None:
    assert not await store.acquire_lease("forward", "nope", TARGET, "a", LONG)
    assert not await store.take_over_lease("relay", "nope", "laptop", "a", LONG)
    assert await store.lease_owner("forward", "nope", TARGET) is None
    assert await store.acquire_lease("forward", ep.id, TARGET, "a", LONG)
    assert await store.delete_endpoint(ep.id)
    # Its leases went with it: nobody holds anything on it, and nothing can be taken.
    assert await store.lease_owners(ep.id, "forward") == {}
    assert await store.lease_owner("forward", ep.id, TARGET) is None
    assert not await store.acquire_lease("forward", ep.id, TARGET, "b", LONG)


# --- PostgreSQL: two instances (two store objects) on one database ------------------------------------------------


@pytest.fixture
async def two(pg_databases: Databases) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:  # noqa: F811
    dsn = await pg_databases.take()
    first = PostgresStore(dsn, events=RecordingSink(), durability="normal")
    second = PostgresStore(dsn, events=RecordingSink(), durability="normal")
    await first.open()
    try:
        await second.open()
        try:
            yield first, second
        finally:
            await second.close()
    finally:
        await first.close()
        await pg_databases.give_back(dsn)


async def test_two_instances_share_leases(two: tuple[PostgresStore, PostgresStore]) -> None:
    a, b = two
    ep = await a.create_endpoint("shared", ResponseSpec(), EndpointSettings())
    # Exclusive across instances.
    assert await a.acquire_lease("forward", ep.id, TARGET, "A", LONG)
    assert not await b.acquire_lease("forward", ep.id, TARGET, "B", LONG)
    assert await b.lease_owner("forward", ep.id, TARGET) == "A"
    # Both instances race for a free lease many times: exactly one wins each time.
    for i in range(20):
        name = f"{TARGET}/{i}"
        won = await asyncio.gather(
            a.acquire_lease("forward", ep.id, name, "A", LONG), b.acquire_lease("forward", ep.id, name, "B", LONG)
        )
        assert sorted(won) == [False, True]
        assert await a.lease_owner("forward", ep.id, name) == ("A" if won[0] else "B")
    # A stalls (its last renewal was short): B takes over once it expired; A's renewal then fails.
    assert await a.acquire_lease("forward", ep.id, TARGET, "A", 0.2)
    await _until(lambda: b.acquire_lease("forward", ep.id, TARGET, "B", LONG))
    assert not await a.acquire_lease("forward", ep.id, TARGET, "A", LONG)
    # Release: B shuts down, A gets it at once.
    assert await b.release_lease("forward", ep.id, TARGET, "B")
    assert await a.acquire_lease("forward", ep.id, TARGET, "A", LONG)
    # Take-over: a relay reconnecting through B takes its session from A.
    assert await a.acquire_lease("relay", ep.id, "laptop", "A", LONG)
    assert await b.take_over_lease("relay", ep.id, "laptop", "B", LONG)
    assert not await a.acquire_lease("relay", ep.id, "laptop", "A", LONG)
    assert not await a.release_lease("relay", ep.id, "laptop", "A")
    assert await a.lease_owners(ep.id, "relay") == {"laptop": "B"}
    # An endpoint deleted on one instance takes its leases with it on both.
    assert await b.delete_endpoint(ep.id)
    assert await a.lease_owners(ep.id, "forward") == {}
    assert not await a.acquire_lease("forward", ep.id, TARGET, "A", LONG)
