"""The one write task of an instance: one PostgreSQL connection, a bounded queue, opportunistic group commit.

The task takes the first queued job, drains whatever else is already queued (no timer, so an idle request
commits alone) and runs the batch in ONE transaction. A job is either an `op` (a function of the connection) or
an item of a `batch` function: consecutive items of the same batch function run as one call (the capture insert
turns N captures into a few statements, not N round trips). Jobs run in queue order, so a clear queued after a
capture removes it and one queued before does not.

A failing job must not fail the others: when anything raises, the transaction is rolled back and the batch runs
again job by job, each in its own SAVEPOINT, so only the bad one fails. A connection-level failure (the server
went away) fails the whole batch; the next batch reconnects.

Before COMMIT, the rings announcing the batch to the other instances (doorbell.py) are queued in the same
transaction, one statement for the whole batch: each job may name its rings (`rings`, from its result), and the
writer's `ring` sends them, coalesced, so they go out at COMMIT and never for a rollback.

Two instances lock endpoint rows in the order their jobs run, which can be opposite orders: PostgreSQL then
breaks one transaction off as a deadlock, and nothing of it committed, so the writer runs that batch again
(DEADLOCK_RETRIES times) before failing it.

After COMMIT each job's `after_commit` runs on the event loop, in job order (this is where the store emits its
events), then the futures complete. `fault` says why writes are failing until a batch commits cleanly again;
/healthz reports it.

Several instances may write to one database at once: nothing here assumes this is the only writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import asyncpg

from app.store.completion import complete_jobs
from app.store.errors import StoreBusy, StoreClosed
from app.store.postgres.doorbell import Ring

log = logging.getLogger("hookscope.writer")

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741 - the item type of a batch function

Op = Callable[[asyncpg.Connection], Awaitable[T]]
# Runs items in order inside the open transaction; returns one result per item: a value, or the exception that
# item failed with (without breaking the transaction). Raising instead rolls the whole batch back for the
# job-by-job retry.
BatchFn = Callable[[asyncpg.Connection, Sequence[Any]], Awaitable[list[Any]]]

# What announces a batch's rings inside its transaction (the store's doorbell.ring_changes with its instance).
RingFn = Callable[[asyncpg.Connection, list[Ring]], Awaitable[object]]

MAX_BATCH = 512
DEADLOCK_RETRIES = 3
# Stop draining once the queued jobs carry this many bytes (inline bodies): one transaction's parameters stay
# bounded however large the queue is.
MAX_BATCH_BYTES = 16 * 1024 * 1024

# SQLSTATE classes that say the database is not taking writes, not that one job was wrong: connection exception,
# insufficient resources (disk full), operator intervention (shutdown), and 25006 read-only transaction.
_FAULT_CLASSES = ("08", "53", "57")
_FAULT_STATES = ("25006",)


@dataclass(slots=True)
class _Job(Generic[T]):
    future: asyncio.Future[T]
    op: Op[T] | None = None
    batch: BatchFn | None = None
    item: Any = None
    size: int = 0
    # Runs on the event loop after COMMIT, in job order, before the future completes.
    after_commit: Callable[[T], None] | None = None
    # The rings a successful result announces to the other instances (sent at COMMIT).
    rings: Callable[[T], list[Ring]] | None = None


_STOP: Any = object()


def is_fault(exc: BaseException) -> bool:
    """Whether exc says the database takes no writes (rather than that one job was wrong)."""
    if isinstance(exc, asyncpg.PostgresError):
        state = getattr(exc, "sqlstate", "") or ""
        return state[:2] in _FAULT_CLASSES or state in _FAULT_STATES
    return isinstance(exc, OSError | asyncpg.InterfaceError | asyncpg.InternalClientError | asyncio.TimeoutError)


def _broken(exc: BaseException) -> bool:
    """Whether the connection cannot be used again (the next batch must reconnect)."""
    if isinstance(exc, asyncpg.PostgresError):
        return (getattr(exc, "sqlstate", "") or "")[:2] in ("08", "57")
    # InternalClientError: the driver's protocol state is off (e.g. the server ended the connection in the middle
    # of an operation); that connection would fail every batch from here on, so it is replaced.
    return isinstance(exc, OSError | asyncpg.InterfaceError | asyncpg.InternalClientError | asyncio.TimeoutError)


@dataclass
class Writer:
    connect: Callable[[], Awaitable[asyncpg.Connection]]
    queue_size: int = 10_000
    ring: RingFn | None = None
    _queue: asyncio.Queue[Any] = field(init=False)
    _task: asyncio.Task[None] | None = field(init=False, default=None)
    _conn: asyncpg.Connection | None = field(init=False, default=None)
    _closing: bool = field(init=False, default=False)
    fault: str | None = field(init=False, default=None)
    batches: int = field(init=False, default=0)
    jobs: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._queue = asyncio.Queue(maxsize=self.queue_size)

    async def start(self) -> None:
        """Connect (raising what connecting raises), then start the task."""
        self._conn = await self.connect()
        self._task = asyncio.create_task(self._run(), name="hookscope-pg-writer")

    async def stop(self) -> None:
        """Commit everything already queued, then close the connection."""
        if self._task is None:
            return
        self._closing = True
        await self._queue.put(_STOP)
        await self._task
        self._task = None
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    def _enqueue_nowait(self, job: _Job[Any]) -> None:
        if self._closing or self._task is None:
            raise StoreClosed("writer is not running")
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            raise StoreBusy("write queue is full") from None

    async def _enqueue(self, job: _Job[Any]) -> None:
        if self._closing or self._task is None:
            raise StoreClosed("writer is not running")
        await self._queue.put(job)

    def submit_nowait(
        self,
        op: Op[T],
        after_commit: Callable[[T], None] | None = None,
        rings: Callable[[T], list[Ring]] | None = None,
    ) -> asyncio.Future[T]:
        """Queue an op without waiting for room; raises StoreBusy when the queue is full, StoreClosed when the
        writer is not running. The future gives op's result after COMMIT."""
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._enqueue_nowait(_Job(fut, op=op, after_commit=after_commit, rings=rings))
        return fut

    async def submit(
        self,
        op: Op[T],
        after_commit: Callable[[T], None] | None = None,
        rings: Callable[[T], list[Ring]] | None = None,
    ) -> T:
        """Run op in a transaction; returns after COMMIT (waits for room in the queue). Raises StoreClosed when
        the writer is not running."""
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        await self._enqueue(_Job(fut, op=op, after_commit=after_commit, rings=rings))
        return await fut

    def submit_item(
        self,
        batch: BatchFn,
        item: object,
        *,
        size: int = 0,
        after_commit: Callable[[Any], None] | None = None,
        rings: Callable[[Any], list[Ring]] | None = None,
    ) -> asyncio.Future[Any]:
        """Queue one item of a batch function (StoreBusy / StoreClosed at once, as submit_nowait)."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._enqueue_nowait(_Job(fut, batch=batch, item=item, size=size, after_commit=after_commit, rings=rings))
        return fut

    async def probe(self) -> None:
        """Commit a real write (the newest migration row, rewritten unchanged); updates `fault` either way.
        Returns after COMMIT; raises what the write raised."""

        async def op(conn: asyncpg.Connection) -> None:
            await conn.execute(
                "UPDATE schema_migrations SET applied_at = applied_at"
                " WHERE version = (SELECT max(version) FROM schema_migrations)"
            )

        await self.submit(op)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is _STOP:
                break
            batch: list[_Job[Any]] = [first]
            size = first.size
            while len(batch) < MAX_BATCH and size < MAX_BATCH_BYTES:
                try:
                    nxt = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if nxt is _STOP:
                    stopping = True
                    break
                batch.append(nxt)
                size += nxt.size
            await self._commit(batch)

    async def _commit(self, batch: list[_Job[Any]]) -> None:
        try:
            results = await self._transaction(batch)
        except asyncio.CancelledError:
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(StoreClosed("writer cancelled"))
            raise
        except Exception as exc:  # the whole transaction failed (connection lost, COMMIT refused)
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(exc)
            self.fault = f"database writes: {exc}"
            if _broken(exc):
                await self._drop_connection()
            return
        self.batches += 1
        self.jobs += len(batch)
        failed = next((v for ok, v in results if not ok and is_fault(v)), None)
        self.fault = f"database writes: {failed}" if failed is not None else None
        complete_jobs(batch, results, log)

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            self._conn = await self.connect()
        return self._conn

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()

    async def _begin(self) -> tuple[asyncpg.Connection, Any]:
        """A started transaction. A connection found dead at BEGIN (the server restarted, or ended it while
        idle) is replaced once: nothing of the batch was sent yet, so retrying cannot apply anything twice."""
        conn = await self._connection()
        tx = conn.transaction()
        try:
            await tx.start()
        except Exception as exc:
            if not _broken(exc):
                raise
            await self._drop_connection()
            conn = await self._connection()
            tx = conn.transaction()
            await tx.start()
        return conn, tx

    async def _transaction(self, batch: list[_Job[Any]]) -> list[tuple[bool, Any]]:
        """Run the batch, again when it was broken off as a deadlock. Raises when it still failed."""
        for attempt in range(DEADLOCK_RETRIES + 1):
            try:
                return await self._attempt(batch)
            except asyncpg.DeadlockDetectedError:
                if attempt == DEADLOCK_RETRIES:
                    raise
                log.info("write batch broken off as a deadlock; running it again")
        raise AssertionError("unreachable")

    async def _attempt(self, batch: list[_Job[Any]]) -> list[tuple[bool, Any]]:
        """Run the batch: fast (grouped, no savepoints), else again job by job. Raises when even that failed."""
        conn, tx = await self._begin()
        try:
            results = await _grouped(conn, batch)
            await self._ring_batch(conn, batch, results)
        except BaseException as exc:
            with contextlib.suppress(Exception):  # a dead connection cannot roll back; the server did
                await tx.rollback()
            if not isinstance(exc, Exception) or _broken(exc) or isinstance(exc, asyncpg.DeadlockDetectedError):
                raise
        else:
            await tx.commit()
            return results
        conn, tx = await self._begin()
        try:
            results = await _isolated(conn, batch)
            await self._ring_batch(conn, batch, results)
        except BaseException:
            with contextlib.suppress(Exception):
                await tx.rollback()
            raise
        await tx.commit()
        return results

    async def _ring_batch(
        self, conn: asyncpg.Connection, batch: list[_Job[Any]], results: list[tuple[bool, Any]]
    ) -> None:
        if self.ring is None:
            return
        rings = [
            r
            for job, (ok, value) in zip(batch, results, strict=True)
            if ok and job.rings is not None
            for r in job.rings(value)
        ]
        if rings:
            await self.ring(conn, rings)


async def _grouped(conn: asyncpg.Connection, batch: list[_Job[Any]]) -> list[tuple[bool, Any]]:
    """Consecutive items of one batch function in one call, ops one by one; anything raised aborts the batch."""
    results: list[tuple[bool, Any]] = []
    i = 0
    while i < len(batch):
        job = batch[i]
        if job.batch is None:
            assert job.op is not None
            results.append((True, await job.op(conn)))
            i += 1
            continue
        j = i
        while j < len(batch) and batch[j].batch is job.batch:
            j += 1
        values = await job.batch(conn, [b.item for b in batch[i:j]])
        results.extend((not isinstance(v, Exception), v) for v in values)
        i = j
    return results


async def _isolated(conn: asyncpg.Connection, batch: list[_Job[Any]]) -> list[tuple[bool, Any]]:
    """Each job in its own savepoint: a failing job rolls back alone. A broken connection still raises."""
    results: list[tuple[bool, Any]] = []
    for job in batch:
        try:
            async with conn.transaction():  # nested: a SAVEPOINT
                if job.batch is None:
                    assert job.op is not None
                    value = await job.op(conn)
                else:
                    (value,) = await job.batch(conn, [job.item])
                    if isinstance(value, Exception):
                        raise value
        except Exception as exc:
            # A deadlock victim's locks taken before this job are still held: the whole batch runs again.
            if _broken(exc) or isinstance(exc, asyncpg.DeadlockDetectedError):
                raise
            results.append((False, exc))
        else:
            results.append((True, value))
    return results
