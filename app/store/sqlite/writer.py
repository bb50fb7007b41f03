"""The single write task: one SQLite connection, a bounded queue, opportunistic group commit.

Each job is a function run against the write connection inside a transaction. The task takes the first queued
job, drains whatever else is already queued (no timer, so an idle request commits alone), runs the whole batch
in ONE hop to the database thread, commits, then completes each job's future.

A job is either an `op` (a function of the connection) or an item of a `batch` function: consecutive items of
the same batch function run as one call, so N captures become one multi-row INSERT (captures.py), not N
statements. A batch function marked `self_committing` commits its items alone and atomically when called outside
a transaction: a batch of nothing but its items (captures under load) is one such call, without BEGIN and COMMIT
statements of its own.
The batch runs first as it is, without savepoints; when anything in it raises, the transaction is rolled back
and the batch runs again job by job, each in its own SAVEPOINT, so only the bad job fails and the rest still
commit. Ops must therefore be safe to run twice in a transaction that was rolled back in between (they touch
nothing but the connection; files are removed after COMMIT). This is the shape of the PostgreSQL writer too.

Why so few statements per batch: the database thread gives up the GIL for every statement SQLite executes and
must win it back from the event loop afterwards. One statement per job made the writer queue behind the loop
dozens of times per batch; a batch now takes a handful of statements whatever its size.

`fault` says why writes are failing (the last batch's COMMIT raised, or a job hit an operational error such as
a full disk or a read-only file) until a batch commits cleanly again; /healthz reports it.

We use a plain sqlite3 connection on a dedicated thread here rather than aiosqlite: aiosqlite costs one thread
hop per statement, and the batch-in-one-hop shape doubled throughput in measurements (see README).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from app.store.completion import complete_jobs
from app.store.errors import StoreBusy, StoreClosed

log = logging.getLogger("hookscope.writer")

T = TypeVar("T")

Op = Callable[[sqlite3.Connection], T]
# Runs items in order inside the open transaction; returns one result per item: a value, or the exception that
# item failed with (without breaking the transaction). Raising instead rolls the whole batch back for the
# job-by-job retry, where it is called with one item at a time.
BatchFn = Callable[[sqlite3.Connection, Sequence[Any]], list[Any]]

MAX_BATCH = 512


@dataclass(slots=True)
class _Job(Generic[T]):
    future: asyncio.Future[T]
    op: Op[T] | None = None
    batch: BatchFn | None = None
    item: Any = None
    # Runs on the event loop after COMMIT, in commit order, before the future completes: this is where
    # committed rows are published, so subscribers see them in id order and never before a reader can.
    after_commit: Callable[[T], None] | None = None


_STOP: Any = object()


@dataclass
class Writer:
    connect: Callable[[], sqlite3.Connection]
    queue_size: int = 10_000
    _queue: asyncio.Queue[Any] = field(init=False)
    _task: asyncio.Task[None] | None = field(init=False, default=None)
    _executor: ThreadPoolExecutor = field(init=False)
    _conn: sqlite3.Connection | None = field(init=False, default=None)
    _closing: bool = field(init=False, default=False)
    fault: str | None = field(init=False, default=None)
    batches: int = field(init=False, default=0)
    jobs: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._queue = asyncio.Queue(maxsize=self.queue_size)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hookscope-writer")

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._conn = await loop.run_in_executor(self._executor, self.connect)
        self._task = asyncio.create_task(self._run(), name="hookscope-writer")

    async def stop(self) -> None:
        """Commit everything already queued, then close the connection."""
        if self._task is None:
            return
        self._closing = True
        await self._queue.put(_STOP)
        await self._task
        self._task = None
        conn = self._conn
        if conn is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
        self._executor.shutdown(wait=True)

    def _enqueue_nowait(self, job: _Job[Any]) -> None:
        if self._closing or self._task is None:
            raise StoreClosed("writer is not running")
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            raise StoreBusy("write queue is full") from None

    def submit_nowait(self, op: Op[T], after_commit: Callable[[T], None] | None = None) -> asyncio.Future[T]:
        """Queue a job without waiting for room; raises StoreBusy when the queue is full, StoreClosed when the
        writer is not running."""
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._enqueue_nowait(_Job(fut, op, None, None, after_commit))
        return fut

    def submit_item(
        self, batch: BatchFn, item: object, after_commit: Callable[[Any], None] | None = None
    ) -> asyncio.Future[Any]:
        """Queue one item of a batch function (StoreBusy / StoreClosed at once, as submit_nowait). The future
        gives the item's result after COMMIT."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._enqueue_nowait(_Job(fut, None, batch, item, after_commit))
        return fut

    async def submit(self, op: Op[T], after_commit: Callable[[T], None] | None = None) -> T:
        """Run op in a transaction; returns after COMMIT (waits for room in the queue). Raises StoreClosed when
        the writer is not running."""
        if self._closing or self._task is None:
            raise StoreClosed("writer is not running")
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Job(fut, op, None, None, after_commit))
        return await fut

    async def probe(self) -> None:
        """Commit a real write (the schema version, rewritten unchanged); updates `fault` either way.

        Returns after COMMIT; raises what the write raised.
        """

        def op(conn: sqlite3.Connection) -> None:
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            conn.execute(f"PRAGMA user_version = {int(version)}")

        await self.submit(op)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is _STOP:
                break
            batch: list[_Job[Any]] = [first]
            while len(batch) < MAX_BATCH:
                try:
                    nxt = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if nxt is _STOP:
                    stopping = True
                    break
                batch.append(nxt)
            try:
                results = await loop.run_in_executor(self._executor, self._run_batch, batch)
            except BaseException as exc:  # the whole transaction failed (e.g. disk full at COMMIT)
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(exc if isinstance(exc, Exception) else RuntimeError(str(exc)))
                if isinstance(exc, asyncio.CancelledError):
                    raise
                self.fault = f"database writes: {exc}"
                continue
            self.batches += 1
            self.jobs += len(batch)
            # IntegrityError and friends are one job's own fault; an OperationalError (disk full, read-only,
            # I/O error) says the database is not taking writes.
            failed = next((v for ok, v in results if not ok and isinstance(v, sqlite3.OperationalError)), None)
            self.fault = f"database writes: {failed}" if failed is not None else None
            complete_jobs(batch, results, log)

    def _run_batch(self, batch: list[_Job[Any]]) -> list[tuple[bool, Any]]:
        """On the database thread: the batch as it is, else job by job. Raises when the transaction itself
        failed (BEGIN or COMMIT)."""
        conn = self._conn
        assert conn is not None
        fn = batch[0].batch
        if getattr(fn, "self_committing", False) and all(job.batch is fn for job in batch):
            # Nothing but items of one self-committing batch function (captures under load): one call outside a
            # transaction commits them all or nothing, with the fewest statements.
            assert fn is not None
            try:
                values = fn(conn, [job.item for job in batch])
            except Exception:
                pass  # nothing committed: run the batch the general way, job by job if need be
            else:
                return [(not isinstance(v, Exception), v) for v in values]
        conn.execute("BEGIN IMMEDIATE")
        try:
            try:
                results = _grouped(conn, batch)
            except Exception:
                conn.execute("ROLLBACK")
                conn.execute("BEGIN IMMEDIATE")
                results = _isolated(conn, batch)
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        return results


def _grouped(conn: sqlite3.Connection, batch: list[_Job[Any]]) -> list[tuple[bool, Any]]:
    """Consecutive items of one batch function in one call, ops one by one; anything raised aborts the batch."""
    results: list[tuple[bool, Any]] = []
    i = 0
    while i < len(batch):
        job = batch[i]
        if job.batch is None:
            assert job.op is not None
            results.append((True, job.op(conn)))
            i += 1
            continue
        j = i + 1
        while j < len(batch) and batch[j].batch is job.batch:
            j += 1
        values = job.batch(conn, [b.item for b in batch[i:j]])
        results.extend((not isinstance(v, Exception), v) for v in values)
        i = j
    return results


def _isolated(conn: sqlite3.Connection, batch: list[_Job[Any]]) -> list[tuple[bool, Any]]:
    """Each job in its own savepoint: a failing job rolls back alone."""
    results: list[tuple[bool, Any]] = []
    for job in batch:
        conn.execute("SAVEPOINT job")
        try:
            if job.batch is None:
                assert job.op is not None
                value = job.op(conn)
            else:
                (value,) = job.batch(conn, [job.item])
                if isinstance(value, Exception):
                    raise value
        except Exception as exc:
            conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
            results.append((False, exc))
        else:
            conn.execute("RELEASE job")
            results.append((True, value))
    return results
