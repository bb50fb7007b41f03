"""The after-commit step both writers share: run each committed job's hook, then answer its waiter."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol


class CommittedJob(Protocol):
    future: asyncio.Future[Any]
    after_commit: Callable[[Any], None] | None


def complete_jobs(jobs: Sequence[CommittedJob], results: Sequence[tuple[bool, Any]], log: logging.Logger) -> None:
    """For each job of a committed batch, in order: its after_commit hook (where events are emitted) when it
    succeeded, then its future. A failing hook is logged and never costs the commit its answer; a waiter that went
    away (cancelled future) leaves the row committed."""
    for job, (ok, value) in zip(jobs, results, strict=True):
        if ok and job.after_commit is not None:
            try:
                job.after_commit(value)
            except Exception:
                log.exception("after_commit hook failed")
        if job.future.done():
            continue
        if ok:
            job.future.set_result(value)
        else:
            job.future.set_exception(value)
