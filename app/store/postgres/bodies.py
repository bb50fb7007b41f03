"""Large bodies in the database, in chunks, streamed in and out without holding a whole body in memory.

A body up to INLINE_MAX is a `bytea` in its request row. A larger one arrives through a spool: `PgSpool.write`
buffers at most one CHUNK and commits each full chunk at once as a `body_chunks` row of its spool (so an upload
holds at most ~CHUNK bytes in memory, however large), `finish` writes the tail, and the capture's row then names
the spool, which the writer links to the request in the same transaction (`spools.request_id`, ON DELETE
CASCADE: deleting, clearing or pruning a request deletes its chunks).

Durability: chunks are committed with `synchronous_commit` off (the read pool's setting); they become durable
with the request's own commit, whose WAL flush covers every record written before it, so under durability
"full" a 2xx still means the whole body is on disk.

A spool that never becomes a request (the upload failed, the instance died mid-upload) is unlinked: `discard`
asks the writer to delete it, and retention sweeps any left unlinked for SPOOL_ORPHAN_SECONDS, a bound far above
the time an upload may take, so another instance's upload in flight is never swept.
"""

from __future__ import annotations

import errno
import time
from collections.abc import AsyncIterator, Callable

import asyncpg

from app.store.errors import BodyMissing
from app.store.requests import BodySpool

INLINE_MAX = 256 * 1024
CHUNK = 256 * 1024
SPOOL_ORPHAN_SECONDS = 3600.0


def _storage_error(exc: Exception) -> OSError:
    """The OSError the BodySpool contract raises, for the capture path's "storage takes no more" handling."""
    if isinstance(exc, OSError):
        return exc
    return OSError(errno.EIO, f"database: {exc}")


class PgSpool(BodySpool):
    def __init__(self, owner: object, pool: asyncpg.Pool, forget: Callable[[int], None]) -> None:
        self.owner = owner  # the store that may reference it
        self._pool = pool
        self._forget = forget
        self._buf = bytearray()
        self._chunks = 0
        self.spool_id: int | None = None
        self.finished = False

    async def write(self, chunk: bytes) -> None:
        self._buf += chunk
        while len(self._buf) >= CHUNK:
            data = bytes(self._buf[:CHUNK])
            del self._buf[:CHUNK]
            await self._flush(data)

    async def _flush(self, data: bytes) -> None:
        try:
            if self.spool_id is None:
                # The spool row is created with its first chunk: one round trip.
                self.spool_id = int(await self._pool.fetchval(
                    "WITH s AS (INSERT INTO spools (created_at) VALUES ($1) RETURNING id)"
                    " INSERT INTO body_chunks (spool_id, n, data) SELECT id, 0, $2 FROM s RETURNING spool_id",
                    time.time(), data,
                ))
            else:
                await self._pool.execute(
                    "INSERT INTO body_chunks (spool_id, n, data) VALUES ($1, $2, $3)", self.spool_id, self._chunks, data
                )
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            raise _storage_error(exc) from exc
        self._chunks += 1

    async def finish(self) -> None:
        try:
            if self._buf or self.spool_id is None:
                data = bytes(self._buf)
                self._buf = bytearray()
                if data:
                    await self._flush(data)
                else:
                    self.spool_id = int(await self._pool.fetchval(
                        "INSERT INTO spools (created_at) VALUES ($1) RETURNING id", time.time()
                    ))
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise _storage_error(exc) from exc
        self.finished = True

    async def read(self) -> bytes:
        assert self.spool_id is not None and self.finished
        rows = await self._pool.fetch(
            "SELECT data FROM body_chunks WHERE spool_id = $1 ORDER BY n", self.spool_id
        )
        return b"".join(bytes(r["data"]) for r in rows)

    def discard(self) -> None:
        """Forget the buffer and hand the spool to the owner for deletion; never raises."""
        self._buf = bytearray()
        self.finished = False
        spool_id, self.spool_id = self.spool_id, None
        if spool_id is not None:
            self._forget(spool_id)


async def open_chunks(pool: asyncpg.Pool, request_id: int, spool_id: int, size: int) -> int:
    """Check that the spool's chunks are all there and hold `size` bytes; returns how many there are. Raises
    BodyMissing otherwise. Sizes come from octet_length, which reads no chunk data."""
    row = await pool.fetchrow(
        "SELECT count(*) AS n, coalesce(max(n), -1) AS last, coalesce(sum(octet_length(data)), 0) AS size"
        " FROM body_chunks WHERE spool_id = $1",
        spool_id,
    )
    assert row is not None
    if row["n"] != row["last"] + 1:
        raise BodyMissing(request_id, "some of its stored chunks are missing")
    if row["size"] != size:
        raise BodyMissing(request_id, f"its stored chunks hold {row['size']} bytes, expected {size}")
    return int(row["n"])


async def iter_chunks(pool: asyncpg.Pool, request_id: int, spool_id: int, count: int) -> AsyncIterator[bytes]:
    """The chunks one at a time, each read on its own (no connection is held while the consumer is slow).

    The request deleted while it streams makes the next chunk missing: BodyMissing mid-stream, and the reader sees
    a body shorter than its Content-Length.
    """
    for n in range(count):
        data = await pool.fetchval("SELECT data FROM body_chunks WHERE spool_id = $1 AND n = $2", spool_id, n)
        if data is None:
            raise BodyMissing(request_id, "it was deleted while being read")
        yield bytes(data)


async def read_chunks(pool: asyncpg.Pool, request_id: int, spool_id: int, size: int) -> bytes:
    """The whole body (load_body); BodyMissing when chunks are missing or the size differs."""
    rows = await pool.fetch("SELECT n, data FROM body_chunks WHERE spool_id = $1 ORDER BY n", spool_id)
    if [r["n"] for r in rows] != list(range(len(rows))):
        raise BodyMissing(request_id, "some of its stored chunks are missing")
    data = b"".join(bytes(r["data"]) for r in rows)
    if len(data) != size:
        raise BodyMissing(request_id, f"its stored chunks hold {len(data)} bytes, expected {size}")
    return data
