"""The single writer: group commit, isolation of a failing job, back-pressure, draining on stop."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from app.store.errors import StoreBusy, StoreClosed
from app.store.sqlite.writer import Writer


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS t (v INTEGER UNIQUE)")
    return conn


def _insert(v: int):  # type: ignore[no-untyped-def]
    def op(conn: sqlite3.Connection) -> int:
        cur = conn.execute("INSERT INTO t (v) VALUES (?)", (v,))
        return cur.lastrowid or 0

    return op


async def test_concurrent_jobs_share_commits(tmp_path: Path) -> None:
    w = Writer(lambda: _connect(tmp_path / "w.db"))
    await w.start()
    results = await asyncio.gather(*(w.submit(_insert(i)) for i in range(500)))
    assert sorted(results) == list(range(1, 501))
    assert w.jobs == 500 and w.batches < 100  # group commit: far fewer transactions than jobs
    await w.stop()
    conn = sqlite3.connect(tmp_path / "w.db")
    assert conn.execute("SELECT COUNT(*) FROM t").fetchone() == (500,)


async def test_failing_job_rolls_back_alone(tmp_path: Path) -> None:
    w = Writer(lambda: _connect(tmp_path / "w.db"))
    await w.start()
    futures = [w.submit_nowait(_insert(1)), w.submit_nowait(_insert(1)), w.submit_nowait(_insert(2))]
    done = await asyncio.gather(*futures, return_exceptions=True)
    assert isinstance(done[1], sqlite3.IntegrityError)
    assert not isinstance(done[0], Exception) and not isinstance(done[2], Exception)
    await w.stop()
    conn = sqlite3.connect(tmp_path / "w.db")
    assert [r[0] for r in conn.execute("SELECT v FROM t ORDER BY v")] == [1, 2]


async def test_after_commit_runs_in_order_before_result(tmp_path: Path) -> None:
    w = Writer(lambda: _connect(tmp_path / "w.db"))
    await w.start()
    seen: list[int] = []
    futures = [w.submit_nowait(_insert(i), after_commit=seen.append) for i in range(50)]
    ids = await asyncio.gather(*futures)
    assert seen == list(ids) == sorted(ids)
    await w.stop()


async def test_full_queue_refuses(tmp_path: Path) -> None:
    w = Writer(lambda: _connect(tmp_path / "w.db"), queue_size=5)
    await w.start()
    accepted = []
    with pytest.raises(StoreBusy):
        for i in range(100):
            accepted.append(w.submit_nowait(_insert(i)))
    assert len(accepted) == 5
    await asyncio.gather(*accepted)
    await w.stop()
    with pytest.raises(StoreClosed):
        w.submit_nowait(_insert(999))


async def test_stop_commits_what_was_queued(tmp_path: Path) -> None:
    w = Writer(lambda: _connect(tmp_path / "w.db"))
    await w.start()
    futures = [w.submit_nowait(_insert(i)) for i in range(200)]
    await w.stop()
    assert all(f.done() and not f.exception() for f in futures)
    conn = sqlite3.connect(tmp_path / "w.db")
    assert conn.execute("SELECT COUNT(*) FROM t").fetchone() == (200,)


class _BatchInsert:
    """A batch function that inserts its items with one statement and counts its calls."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []

    def __call__(self, conn: sqlite3.Connection, items: Sequence[Any]) -> list[Any]:
        self.calls.append(list(items))
        conn.execute(
            "INSERT INTO t (v) VALUES " + ", ".join("(?)" for _ in items), [int(v) for v in items]
        )
        return [v * 10 for v in items]


async def test_queued_items_of_one_batch_function_run_as_one_call_in_order_with_ops(tmp_path: Path) -> None:
    w = Writer(lambda: _connect(tmp_path / "w.db"))
    await w.start()
    batch = _BatchInsert()
    seen: list[int] = []
    futures = [w.submit_item(batch, i, after_commit=seen.append) for i in range(1, 6)]
    futures.append(w.submit_nowait(_insert(100), after_commit=seen.append))
    futures += [w.submit_item(batch, i, after_commit=seen.append) for i in range(6, 9)]
    results = await asyncio.gather(*futures)
    await w.stop()
    assert results[:5] == [10, 20, 30, 40, 50] and results[6:] == [60, 70, 80]
    assert seen == results  # after_commit in queue order, ops and items alike
    # The writer drained the queue as one batch: each run of items became one call, around the op.
    assert batch.calls == [[1, 2, 3, 4, 5], [6, 7, 8]]


async def test_a_failing_item_fails_alone_and_the_rest_of_its_run_commits(tmp_path: Path) -> None:
    w = Writer(lambda: _connect(tmp_path / "w.db"))
    await w.start()
    batch = _BatchInsert()
    # 3 twice: the run's one statement fails, so the writer runs every job again on its own.
    futures = [w.submit_item(batch, 1), w.submit_item(batch, 2), w.submit_nowait(_insert(50))]
    futures += [w.submit_item(batch, v) for v in (3, 3, 4)]
    done = await asyncio.gather(*futures, return_exceptions=True)
    await w.stop()
    assert [d for d in done if not isinstance(d, Exception)] == [10, 20, 3, 30, 40]  # the op's rowid is 3
    assert isinstance(done[4], sqlite3.IntegrityError)
    assert batch.calls[0] == [1, 2] and [1] in batch.calls and [4] in batch.calls
    conn = sqlite3.connect(tmp_path / "w.db")
    assert [r[0] for r in conn.execute("SELECT v FROM t ORDER BY rowid")] == [1, 2, 50, 3, 4]
