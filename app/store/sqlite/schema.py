"""SQLite schema, versioned by PRAGMA user_version. Append migrations; never edit a released one."""

from __future__ import annotations

import sqlite3

MIGRATIONS: list[str] = [
    # 1: endpoints and captured requests
    """
    CREATE TABLE endpoints (
        id          TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        created_at  REAL NOT NULL,
        response    TEXT NOT NULL,
        options     TEXT NOT NULL DEFAULT '{}'
    );
    -- AUTOINCREMENT: ids are never reused, even after the newest rows are deleted, so a client's
    -- "last seen id" cursor stays meaningful forever.
    CREATE TABLE requests (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        endpoint_id  TEXT NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
        received_at  REAL NOT NULL,
        method       TEXT NOT NULL,
        path         TEXT NOT NULL,
        query        TEXT NOT NULL,
        headers      TEXT NOT NULL,
        content_type TEXT NOT NULL,
        body         BLOB,
        body_file    TEXT,
        body_size    INTEGER NOT NULL,
        client       TEXT,
        http_version TEXT NOT NULL,
        rejected     TEXT
    );
    CREATE INDEX requests_endpoint_id ON requests(endpoint_id, id);
    """,
    # 2: provider awareness (detected provider and event, stored signature verdict, duplicates)
    """
    ALTER TABLE requests ADD COLUMN provider TEXT;
    ALTER TABLE requests ADD COLUMN event_type TEXT;
    ALTER TABLE requests ADD COLUMN event_id TEXT;
    ALTER TABLE requests ADD COLUMN verify_status TEXT NOT NULL DEFAULT 'unconfigured';
    ALTER TABLE requests ADD COLUMN verify_reason TEXT NOT NULL DEFAULT '';
    ALTER TABLE requests ADD COLUMN duplicate_of INTEGER;
    CREATE INDEX requests_event_id ON requests(endpoint_id, event_id) WHERE event_id IS NOT NULL;
    """,
    # 3: deliveries (forward, relay, replay outcomes) and durable cursors (relays, forward targets)
    """
    CREATE TABLE deliveries (
        id               INTEGER PRIMARY KEY AUTOINCREMENT,
        request_id       INTEGER NOT NULL REFERENCES requests(id) ON DELETE CASCADE,
        endpoint_id      TEXT NOT NULL,
        kind             TEXT NOT NULL,
        target           TEXT NOT NULL,
        relay            TEXT NOT NULL DEFAULT '',
        state            TEXT NOT NULL,
        attempts         INTEGER NOT NULL,
        created_at       REAL NOT NULL,
        updated_at       REAL NOT NULL,
        next_attempt_at  REAL,
        status           INTEGER,
        latency_ms       REAL,
        error            TEXT,
        response_headers TEXT NOT NULL DEFAULT '[]',
        response_body    BLOB NOT NULL DEFAULT x'',
        response_size    INTEGER NOT NULL DEFAULT 0,
        history          TEXT NOT NULL DEFAULT '[]',
        sent             TEXT
    );
    CREATE INDEX deliveries_request ON deliveries(request_id);
    -- One row per (request, forward target) and per (request, relay): redeliveries update it.
    CREATE UNIQUE INDEX deliveries_once ON deliveries(request_id, kind, target, relay) WHERE kind != 'replay';
    -- The acknowledged position of each relay (kind 'relay', name = relay name) and forward target
    -- (kind 'forward', name = target URL): everything with a larger request id is still to deliver.
    CREATE TABLE cursors (
        kind         TEXT NOT NULL,
        endpoint_id  TEXT NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
        name         TEXT NOT NULL,
        acked_id     INTEGER NOT NULL,
        updated_at   REAL NOT NULL,
        PRIMARY KEY (kind, endpoint_id, name)
    );
    """,
    # 4: how many captures retention pruned before each relay / forward target acknowledged them (past the
    # retention ceiling), so the loss is shown instead of silent
    """
    ALTER TABLE cursors ADD COLUMN skipped INTEGER NOT NULL DEFAULT 0;
    """,
    # 5: the largest request id (the seq, on SQLite) each endpoint has lost to a delete, so that its last_seq
    # never goes down when its newest requests are deleted, cleared or pruned. A trigger, so that no delete path
    # can forget it; nothing is added to the capture path.
    """
    ALTER TABLE endpoints ADD COLUMN removed_seq INTEGER NOT NULL DEFAULT 0;
    -- Which ids an existing endpoint lost before now is not known: the largest id ever assigned bounds them all,
    -- and every later id of the endpoint is above it, so it is a correct cursor position to start from.
    UPDATE endpoints SET removed_seq = COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'requests'), 0);
    CREATE TRIGGER requests_removed_seq AFTER DELETE ON requests BEGIN
        UPDATE endpoints SET removed_seq = MAX(removed_seq, OLD.id) WHERE id = OLD.endpoint_id;
    END;
    """,
]


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database to the newest schema; returns the version. Runs on the write connection."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > len(MIGRATIONS):
        raise RuntimeError(
            f"database schema version {version} is newer than this hookscope understands ({len(MIGRATIONS)})"
        )
    for number in range(version + 1, len(MIGRATIONS) + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _split(MIGRATIONS[number - 1]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return len(MIGRATIONS)


def _split(script: str) -> list[str]:
    """Split a migration into statements (executescript would COMMIT behind our back)."""
    statements: list[str] = []
    current: list[str] = []
    for line in script.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("--"):
            continue
        current.append(line)
        if sqlite3.complete_statement("\n".join(current)):
            statements.append("\n".join(current))
            current = []
    if current:
        statements.append("\n".join(current))
    return statements
