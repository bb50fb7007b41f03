"""EndpointLookup (app/store/postgres/lookup.py) alone: its bounds, with a read we control and a virtual clock (so
no bound depends on how fast the machine is, and nothing sleeps)."""

from __future__ import annotations

import asyncio

from app.endpoint_settings import EndpointSettings
from app.models import Endpoint, ResponseSpec
from app.store.postgres.lookup import BURST, MAX_MISSES, MISS_SECONDS, RATE, EndpointLookup

ID = "AAAAAAAAAAAAAAAAAAAAAA"


class Fixture:
    def __init__(self, rows: dict[str, Endpoint] | None = None) -> None:
        self.rows = rows or {}
        self.cache: dict[str, Endpoint] = {}
        self.now = 0.0
        self.gate: asyncio.Event | None = None  # when set, reads wait for it
        self.lookup = EndpointLookup(self.read, self.cache.get, self.remember, clock=lambda: self.now)

    async def read(self, endpoint_id: str) -> Endpoint | None:
        if self.gate is not None:
            await self.gate.wait()
        return self.rows.get(endpoint_id)

    def remember(self, ep: Endpoint) -> None:
        self.cache[ep.id] = ep


def _ep(endpoint_id: str = ID, name: str = "ep") -> Endpoint:
    return Endpoint(endpoint_id, name, 0.0, ResponseSpec(), EndpointSettings())


async def test_a_found_endpoint_is_cached_and_not_read_again() -> None:
    f = Fixture({ID: _ep()})
    assert await f.lookup.find(ID) == _ep()
    assert f.cache == {ID: _ep()}
    assert await f.lookup.find(ID) == _ep() and f.lookup.reads == 1


async def test_a_miss_is_remembered_for_a_while_then_read_again() -> None:
    f = Fixture()
    for _ in range(10):
        assert await f.lookup.find(ID) is None
    assert f.lookup.reads == 1
    f.rows[ID] = _ep()
    f.now += MISS_SECONDS + 0.1
    assert await f.lookup.find(ID) == _ep() and f.lookup.reads == 2


async def test_ids_outside_the_endpoint_alphabet_are_never_read() -> None:
    f = Fixture()
    for bad in ("", "a b", "a/b", "\x00", "é", "x" * 65):
        assert await f.lookup.find(bad) is None
    assert f.lookup.reads == 0


async def test_concurrent_misses_of_one_id_share_one_read() -> None:
    f = Fixture({ID: _ep()})
    f.gate = asyncio.Event()
    finds = [asyncio.create_task(f.lookup.find(ID)) for _ in range(10)]
    await asyncio.sleep(0)  # let every find reach the read (or the shared one); no time passes
    f.gate.set()
    assert await asyncio.gather(*finds) == [_ep()] * 10
    assert f.lookup.reads == 1


async def test_reads_are_rate_limited_and_the_bucket_refills_with_time() -> None:
    f = Fixture()
    for i in range(300):
        assert await f.lookup.find(f"unknown{i:04d}") is None
    assert f.lookup.reads == BURST
    f.rows["fresh"] = _ep("fresh")
    assert await f.lookup.find("fresh") is None and f.lookup.reads == BURST  # empty bucket: no query at all
    f.now += 1.0 / RATE
    assert await f.lookup.find("fresh") == _ep("fresh") and f.lookup.reads == BURST + 1


async def test_remembered_misses_are_bounded() -> None:
    f = Fixture()
    for i in range(MAX_MISSES + 100):
        f.now += 1.0 / RATE  # keep the bucket from limiting this test
        await f.lookup.find(f"u{i}")
    assert len(f.lookup._misses) <= MAX_MISSES
    assert "u0" not in f.lookup._misses and f"u{MAX_MISSES + 99}" in f.lookup._misses


async def test_a_deletion_during_the_read_keeps_the_old_row_out_of_the_cache() -> None:
    f = Fixture({ID: _ep()})
    f.gate = asyncio.Event()
    find = asyncio.create_task(f.lookup.find(ID))
    await asyncio.sleep(0)  # the read is in flight, with the row as it was
    f.lookup.deleted(ID)  # the store published EndpointDeleted meanwhile
    f.gate.set()
    assert await find is None and f.cache == {}


async def test_what_the_fan_out_cached_during_the_read_wins() -> None:
    f = Fixture({ID: _ep(name="old")})
    f.gate = asyncio.Event()
    find = asyncio.create_task(f.lookup.find(ID))
    await asyncio.sleep(0)
    f.cache[ID] = _ep(name="new")  # an EndpointChanged reached the store's cache first
    f.gate.set()
    assert await find == _ep(name="new") and f.cache[ID] == _ep(name="new")


async def test_a_failed_read_fails_every_sharer_and_is_not_remembered() -> None:
    f = Fixture()
    f.gate = asyncio.Event()

    async def broken(_: str) -> Endpoint | None:
        assert f.gate is not None
        await f.gate.wait()
        raise OSError("database away")

    f.lookup = EndpointLookup(broken, f.cache.get, f.remember, clock=lambda: f.now)
    finds = [asyncio.create_task(f.lookup.find(ID)) for _ in range(3)]
    await asyncio.sleep(0)
    f.gate.set()
    results = await asyncio.gather(*finds, return_exceptions=True)
    assert all(isinstance(r, OSError) for r in results)
    assert f.lookup.reads == 1 and ID not in f.lookup._misses
