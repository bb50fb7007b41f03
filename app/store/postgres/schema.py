"""PostgreSQL schema: versioned, append-only migrations recorded in `schema_migrations`.

Append migrations; never edit a released one. Every instance runs `migrate` at start-up, in ONE transaction that
first takes a transaction-level advisory lock: when several instances start at once on an empty database, one
migrates and the others wait on the lock, then find the version committed and apply nothing. DDL is
transactional in PostgreSQL, so a migration that fails leaves the database at the previous version.

Why the columns are what they are:
- raw path, query, header block and body are `bytea`: `text` cannot hold NUL and must be valid in the database
  encoding, and a capture is stored byte-exact.
- times are `double precision` epoch seconds, the value the application holds, so a row reads back equal to
  what was written (timestamptz keeps microseconds only).
- `endpoints.next_seq` is the last seq handed out in the endpoint; the writer takes a block of seqs with
  `UPDATE ... RETURNING` inside the writing transaction, whose row lock makes seq order the commit order.
- `endpoints.next_change` numbers the endpoint's rows in `changes` (the outbox other instances read; changes.py)
  the same way, under the same row lock, so change order is commit order too.
- bodies over the inline size live in `body_chunks`, grouped by a spool (`spools`) that exists before its request
  does; the request links it (`spools.request_id`, cascading), and unlinked spools are swept by retention.
"""

from __future__ import annotations

import asyncpg

# pg_advisory_xact_lock key of migrations (any constant of ours; "hookscope" in ASCII, truncated to 63 bits).
MIGRATION_LOCK = 0x686F6F6B73636F70 & 0x7FFF_FFFF_FFFF_FFFF
# Tables whose presence without `schema_migrations` says the database belongs to something else.
FOREIGN_MARKERS = ("endpoints", "requests")

MIGRATIONS: list[str] = [
    # 1: endpoints, captured requests with their per-endpoint seq, body chunks, deliveries, cursors
    """
    CREATE TABLE endpoints (
        id          text PRIMARY KEY,
        name        text NOT NULL,
        created_at  double precision NOT NULL,
        response    text NOT NULL,
        options     text NOT NULL DEFAULT '{}',
        next_seq    bigint NOT NULL DEFAULT 0
    );
    CREATE TABLE requests (
        id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        endpoint_id   text NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
        seq           bigint NOT NULL,
        received_at   double precision NOT NULL,
        method        text NOT NULL,
        path          bytea NOT NULL,
        query         bytea NOT NULL,
        headers       bytea NOT NULL,
        body          bytea,
        body_spool    bigint,
        body_size     bigint NOT NULL,
        client        text,
        http_version  text NOT NULL,
        rejected      text,
        provider      text,
        event_type    text,
        event_id      text,
        verify_status text NOT NULL DEFAULT 'unconfigured',
        verify_reason text NOT NULL DEFAULT '',
        duplicate_of  bigint,
        UNIQUE (endpoint_id, seq)
    );
    CREATE INDEX requests_event_id ON requests (endpoint_id, event_id) WHERE event_id IS NOT NULL;
    CREATE INDEX requests_provider ON requests (endpoint_id, provider, seq);
    CREATE INDEX requests_received_at ON requests USING brin (received_at);
    CREATE TABLE spools (
        id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        created_at  double precision NOT NULL,
        request_id  bigint REFERENCES requests(id) ON DELETE CASCADE
    );
    CREATE INDEX spools_request ON spools (request_id);
    CREATE INDEX spools_unlinked ON spools (created_at) WHERE request_id IS NULL;
    CREATE TABLE body_chunks (
        spool_id  bigint NOT NULL REFERENCES spools(id) ON DELETE CASCADE,
        n         integer NOT NULL,
        data      bytea NOT NULL,
        PRIMARY KEY (spool_id, n)
    );
    CREATE TABLE deliveries (
        id                     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        request_id             bigint NOT NULL REFERENCES requests(id) ON DELETE CASCADE,
        endpoint_id            text NOT NULL,
        kind                   text NOT NULL,
        target                 text NOT NULL,
        relay                  text NOT NULL DEFAULT '',
        state                  text NOT NULL,
        attempts               integer NOT NULL,
        created_at             double precision NOT NULL,
        updated_at             double precision NOT NULL,
        next_attempt_at        double precision,
        status                 integer,
        latency_ms             double precision,
        error                  text,
        response_header_names  bytea[] NOT NULL DEFAULT '{}',
        response_header_values bytea[] NOT NULL DEFAULT '{}',
        response_body          bytea NOT NULL DEFAULT '',
        response_size          bigint NOT NULL DEFAULT 0,
        -- json, not jsonb: an error text may hold U+0000, which jsonb refuses
        history                json NOT NULL DEFAULT '[]',
        sent                   json
    );
    CREATE INDEX deliveries_request ON deliveries (request_id);
    CREATE UNIQUE INDEX deliveries_once ON deliveries (request_id, kind, target, relay) WHERE kind <> 'replay';
    CREATE TABLE cursors (
        kind         text NOT NULL,
        endpoint_id  text NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
        name         text NOT NULL,
        acked_seq    bigint NOT NULL,
        updated_at   double precision NOT NULL,
        skipped      bigint NOT NULL DEFAULT 0,
        PRIMARY KEY (kind, endpoint_id, name)
    );
    """,
    # 2: the outbox of every change but new requests, for the other instances (changes.py, fanout.py)
    """
    ALTER TABLE endpoints ADD COLUMN next_change bigint NOT NULL DEFAULT 0;
    -- No foreign key: an endpoint's deletion is itself a change the other instances must read.
    CREATE TABLE changes (
        endpoint_id  text NOT NULL,
        n            bigint NOT NULL,
        seq          bigint NOT NULL,
        kind         text NOT NULL,
        payload      text NOT NULL,
        created_at   double precision NOT NULL,
        PRIMARY KEY (endpoint_id, n)
    );
    CREATE INDEX changes_created_at ON changes (created_at);
    """,
    # 3: leases: which instance delivers each forward target and serves each named relay (leases.py)
    """
    CREATE TABLE leases (
        kind         text NOT NULL,
        endpoint_id  text NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
        name         text NOT NULL,
        owner        text NOT NULL,
        lease_until  timestamptz NOT NULL,
        PRIMARY KEY (kind, endpoint_id, name)
    );
    """,
    # 4: the first capture of a provider event, found by one index probe however often the provider retried it
    """
    CREATE INDEX requests_event_first ON requests (endpoint_id, event_id, seq) WHERE event_id IS NOT NULL;
    DROP INDEX requests_event_id;
    """,
]


class SchemaTooNew(Exception):
    def __init__(self, version: int) -> None:
        super().__init__(
            f"database schema version {version} is newer than this hookscope understands ({len(MIGRATIONS)})"
        )
        self.version = version


class NotOurs(Exception):
    """The database holds tables of another application (no `schema_migrations`, but an `endpoints` or
    `requests` table): refusing beats migrating into it."""


async def stored_version(conn: asyncpg.Connection) -> int | None:
    """The applied schema version; None for a database hookscope never migrated. Raises NotOurs.

    Which tables exist is read in ONE statement, so from one snapshot: read in two, an instance migrating the
    database at that moment could commit between them, and its `endpoints` without its `schema_migrations`
    would look like another application's tables."""
    present = set(
        await conn.fetchval(
            "SELECT coalesce(array_agg(tablename::text), '{}') FROM pg_tables"
            " WHERE schemaname = current_schema() AND tablename = ANY($1::text[])",
            ["schema_migrations", *FOREIGN_MARKERS],
        )
    )
    if "schema_migrations" not in present:
        if present:
            raise NotOurs("the database has tables named like hookscope's but no schema_migrations")
        return None
    version = await conn.fetchval("SELECT max(version) FROM schema_migrations")
    return int(version) if version is not None else 0


async def migrate(conn: asyncpg.Connection) -> int:
    """Bring the database to the newest schema; returns the version. Safe when several instances call it at
    once (the advisory lock serialises them; the later ones apply nothing). Raises SchemaTooNew, NotOurs."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        version = await stored_version(conn)
        if version is None:
            await conn.execute(
                "CREATE TABLE schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL"
                " DEFAULT now())"
            )
            version = 0
        if version > len(MIGRATIONS):
            raise SchemaTooNew(version)
        for number in range(version + 1, len(MIGRATIONS) + 1):
            await conn.execute(MIGRATIONS[number - 1])
            await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", number)
    return len(MIGRATIONS)
