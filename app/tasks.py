"""Small helpers for the task groups that serve one connection (live page, relay, smee stream, relay client)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any


async def first_completed(tasks: Sequence[asyncio.Task[Any]]) -> set[asyncio.Task[Any]]:
    """Wait until one task ends, then cancel and await every task (so none outlives its connection).

    Returns the tasks that had finished on their own; the caller inspects their exceptions. If this coroutine is
    cancelled itself, the tasks are still cancelled and awaited before the cancellation propagates.
    """
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
    return done
