"""tests/pg.py: the PostgreSQL server and databases the PostgreSQL tests run on."""

from __future__ import annotations

import asyncpg
import pytest

from tests import pg


async def test_pg_dsn_is_a_fresh_empty_database_that_takes_writes(pg_dsn: str, pg_server: str) -> None:
    name = pg.database_of(pg_dsn)
    assert name.startswith(pg.DB_PREFIX) and name != pg.database_of(pg_server)
    conn = await asyncpg.connect(pg_dsn)
    try:
        assert await conn.fetchval("SELECT current_database()") == name
        tables = await conn.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', "
            "'information_schema')")
        assert tables == 0
        await conn.execute("CREATE TABLE t (b bytea)")
        await conn.execute("INSERT INTO t VALUES ($1)", b"\x00\xff")
        assert await conn.fetchval("SELECT b FROM t") == b"\x00\xff"
    finally:
        await conn.close()


async def test_a_database_is_dropped_even_while_connected(pg_server: str) -> None:
    dsn = await pg.create_database_async(pg_server)
    held = await asyncpg.connect(dsn)  # what a server a test forgot to stop would leave behind
    try:
        await pg.drop_database_async(dsn)
    finally:
        await held.close()
    admin = await asyncpg.connect(pg_server)
    try:
        assert await admin.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", pg.database_of(dsn)) == 0
    finally:
        await admin.close()


def test_a_private_server_starts_serves_and_stops_without_a_trace() -> None:
    if pg.find_binaries() is None:
        if pg.required():
            pytest.fail("initdb/pg_ctl are required (HOOKSCOPE_REQUIRE_POSTGRES=1) but were not found")
        pytest.skip("no initdb/pg_ctl on this machine")
    server = pg.start_private_server()
    try:
        dsn = pg.create_database(server.dsn)
        version = pg.run_sync(_server_version(dsn))
        assert version >= 140000  # what docs/deploy.md asks for
    finally:
        server.stop()
    assert not server.directory.exists()
    assert not pg._port_open("127.0.0.1", server.port)
    server.stop()  # idempotent: atexit may call it again


async def _server_version(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SHOW server_version_num"))
    finally:
        await conn.close()
