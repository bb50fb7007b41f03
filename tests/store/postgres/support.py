"""Databases for the PostgreSQL store tests: copies of a migrated template, recycled between tests.

CREATE DATABASE ... TEMPLATE copies the migrated schema without running the migrations again, but creating and
dropping a database each cost a checkpoint (measured: 0.2-1.4 s each on the 2-core machine, against ~0.05 s for
a test). So a test's database is handed back, emptied (no rows, identities restarted: it reads as a new copy),
and the next test takes it; the databases are dropped when the test process ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

from app.store.postgres import PostgresStore
from tests import pg
from tests.store.sink import RecordingSink


async def migrated_template(admin: str) -> str:
    """A new database at the newest schema, every connection to it closed (a template must have none)."""
    dsn = await pg.create_database_async(admin)
    store = PostgresStore(dsn, events=RecordingSink(), durability="normal")
    await store.open()
    await store.close()
    return dsn


async def copy_of(admin: str, template: str) -> str:
    """The DSN of a new database holding what `template` (a DSN) holds."""
    return await pg.create_database_async(admin, template=pg.database_of(template))


async def empty(dsn: str) -> None:
    """Delete every row but the schema version, and restart every identity: the database reads as a new copy of
    the template. Raises when anything is still connected to it (a store a test left open)."""
    conn = await asyncpg.connect(dsn)
    try:
        others = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        if others:
            raise RuntimeError(f"{others} connection(s) still open")
        tables = await conn.fetch(
            "SELECT quote_ident(tablename) AS t FROM pg_tables"
            " WHERE schemaname = current_schema() AND tablename <> 'schema_migrations'"
        )
        identities = await conn.fetch(
            "SELECT pg_get_serial_sequence(quote_ident(table_name), column_name) AS s FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND is_identity = 'YES'"
        )
        # DELETE, not TRUNCATE: a test leaves a few rows, and TRUNCATE's new files cost an fsync each.
        async with conn.transaction():
            await conn.execute("SET LOCAL synchronous_commit = off")
            for row in tables:
                await conn.execute(f"DELETE FROM {row['t']}")
            for row in identities:
                await conn.execute("SELECT setval($1, 1, false)", row["s"])
    finally:
        await conn.close()


@dataclass
class Databases:
    """Migrated databases of one test process: `take` one, `give_back` it after the test."""

    admin: str
    template: str | None = None
    spare: list[str] = field(default_factory=list)
    made: list[str] = field(default_factory=list)

    async def take(self) -> str:
        if self.spare:
            return self.spare.pop()
        if self.template is None:
            self.template = await migrated_template(self.admin)
            self.made.append(self.template)
        dsn = await copy_of(self.admin, self.template)
        self.made.append(dsn)
        return dsn

    async def give_back(self, dsn: str) -> None:
        """Empty it for the next test; a database that cannot be emptied is dropped instead."""
        try:
            await empty(dsn)
        except Exception:
            await pg.drop_database_async(dsn)
            self.made.remove(dsn)
            return
        self.spare.append(dsn)

    async def drop_all(self) -> None:
        for dsn in self.made:
            await pg.drop_database_async(dsn)
        self.made.clear()
        self.spare.clear()
