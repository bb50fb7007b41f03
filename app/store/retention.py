"""The retention part of the store contract: the count cap and maximum age, holding back captures still owed."""

from __future__ import annotations

import abc
from dataclasses import dataclass

from app.events.types import Skipped


def default_retention_ceiling(retention_count: int) -> int:
    """The ceiling when none is configured: 10x the count cap, or 100,000 without one. The one definition:
    Settings.retention_ceiling None means this, and the janitor logs the number it returns."""
    return 10 * retention_count if retention_count > 0 else 100_000


@dataclass(frozen=True, slots=True)
class RetentionRules:
    """What one prune applies, the same on every backend."""

    cap: int  # newest captures kept per endpoint; 0: no cap
    cutoff: float | None  # captures received before this are expired; None: no age limit
    ceiling: int  # most captures an endpoint keeps while some of them are still owed

    @classmethod
    def at(cls, now: float, count: int, age: float, ceiling: int | None) -> RetentionRules:
        """The rules for a prune at `now` with the configured count cap and maximum age (0: none)."""
        return cls(
            cap=count,
            cutoff=now - age if age > 0 else None,
            ceiling=ceiling if ceiling is not None else default_retention_ceiling(count),
        )


@dataclass(frozen=True, slots=True)
class PruneResult:
    removed: int
    skipped: tuple[Skipped, ...] = ()


class RetentionStore(abc.ABC):
    @abc.abstractmethod
    async def prune(self, now: float, ceiling: int | None = None) -> PruneResult:
        """Apply retention (count cap and max age) per endpoint; returns after COMMIT.

        A capture still owed (seq above the acked seq of a relay cursor, or of a forward cursor whose target is
        still configured; rejected records owe nothing) is kept even when the cap or age would remove it, as
        long as the endpoint holds at most `ceiling` captures (None: default_retention_ceiling). Past the
        ceiling the oldest owed captures go, and each cursor's `skipped` count grows, in the same transaction,
        by those it had not acknowledged; the result lists these increments.
        """
