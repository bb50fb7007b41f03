"""EndpointStore.find_endpoint (app/store/endpoints.py) on every backend, through the `Store` interface; then, on
PostgreSQL, two store objects on one database (two instances): the second finds an endpoint the first created
before it heard of it, and forgets it when the first deletes it.

The second instance is made deaf (another doorbell channel, a resync far in the future), so "before it heard of
it" holds for the whole test instead of for a few milliseconds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.endpoint_settings import EndpointSettings, PassthroughSettings
from app.events.types import EndpointDeleted
from app.models import ResponseSpec
from app.store.base import Store
from app.store.postgres import PostgresStore
from tests.store.postgres.support import Databases
from tests.store.sink import RecordingSink
from tests.store.test_contract import Opened, StoreFactory, pg_databases, store_factory  # noqa: F401 (fixtures)
from tests.support import wait_until


@pytest.fixture
async def opened(store_factory: StoreFactory) -> Opened:  # noqa: F811 (the imported fixture)
    return await store_factory()


@pytest.fixture
def store(opened: Opened) -> Store:
    return opened.store


async def test_find_endpoint_follows_create_update_and_delete(store: Store) -> None:
    ep = await store.create_endpoint("find", ResponseSpec(), EndpointSettings())
    assert await store.find_endpoint(ep.id) == ep == store.cached_endpoint(ep.id)
    changed = await store.update_endpoint(ep.id, settings=EndpointSettings(passthrough=PassthroughSettings(2.0)))
    assert changed is not None and await store.find_endpoint(ep.id) == changed
    assert await store.delete_endpoint(ep.id)
    assert await store.find_endpoint(ep.id) is None
    assert store.cached_endpoint(ep.id) is None


async def test_find_endpoint_of_an_unknown_id_is_none(store: Store) -> None:
    for unknown in ("AAAAAAAAAAAAAAAAAAAAAA", "", "not/an id", "x" * 500, "\x00"):
        assert await store.find_endpoint(unknown) is None


# --- PostgreSQL: two instances (two store objects) on one database ------------------------------------------------


@pytest.fixture
async def two(pg_databases: Databases) -> AsyncIterator[tuple[PostgresStore, PostgresStore, RecordingSink]]:  # noqa: F811
    dsn = await pg_databases.take()
    first = PostgresStore(dsn, events=RecordingSink(), durability="normal")
    sink = RecordingSink()
    deaf = PostgresStore(dsn, events=sink, durability="normal", channel="elsewhere", resync_interval=3600.0)
    await first.open()
    try:
        await deaf.open()
        try:
            yield first, deaf, sink
        finally:
            await deaf.close()
    finally:
        await first.close()
        await pg_databases.give_back(dsn)


async def test_an_endpoint_created_elsewhere_is_found_once_and_then_followed(
    two: tuple[PostgresStore, PostgresStore, RecordingSink],
) -> None:
    a, b, b_events = two
    ep = await a.create_endpoint("elsewhere", ResponseSpec(status=202), EndpointSettings())
    assert b.cached_endpoint(ep.id) is None  # b has not heard of it (and will not: it listens elsewhere)
    assert await b.find_endpoint(ep.id) == ep
    assert b.cached_endpoint(ep.id) == ep and b.lookup.reads == 1
    assert await b.find_endpoint(ep.id) == ep and b.lookup.reads == 1  # from the cache now
    # The fan-out follows it from here on: b catches it up on its own, and tells of its deletion on a's ring...
    # which b does not hear; a periodic resync would. Ask for one now, as the timer would.
    assert await a.delete_endpoint(ep.id)
    b.fanout.resync("periodic")
    await wait_until(lambda: b.cached_endpoint(ep.id) is None, timeout=20)
    assert any(isinstance(e, EndpointDeleted) and e.endpoint_id == ep.id for e in b_events.events)
    assert await b.find_endpoint(ep.id) is None


async def test_an_unknown_id_is_read_once_while_its_miss_is_remembered(
    two: tuple[PostgresStore, PostgresStore, RecordingSink],
) -> None:
    _, b, _ = two
    for _ in range(20):
        assert await b.find_endpoint("AAAAAAAAAAAAAAAAAAAAAA") is None
    assert b.lookup.reads == 1
    # Ids outside the endpoint alphabet cannot exist: never read.
    assert await b.find_endpoint("not an id") is None and b.lookup.reads == 1
