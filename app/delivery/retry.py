"""When to try a failed delivery again.

The default suits a dev loop: the first retry within about a second (a dev server restarting is back quickly),
then doubling, capped at a minute, giving up an hour after the first attempt. Jitter spreads retries so many
queued deliveries do not hit a recovering target in lockstep.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from app.settings import parse_duration

RETRYABLE_STATUS = frozenset({408, 425, 429})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    first: float = 1.0
    factor: float = 2.0
    cap: float = 60.0
    give_up: float = 3600.0
    jitter: float = 0.2  # +- this fraction of each delay

    @classmethod
    def parse(cls, text: str) -> RetryPolicy:
        """'FIRST,CAP,GIVE_UP' durations, e.g. '1s,60s,1h' (the default) or '100ms,2s,30s'."""
        parts = [p.strip() for p in text.split(",")]
        if len(parts) != 3:
            raise ValueError(f"retry schedule must be FIRST,CAP,GIVE_UP (e.g. 1s,60s,1h), not {text!r}")
        first, cap, give_up = (parse_duration(p) for p in parts)
        if first <= 0 or cap < first:
            raise ValueError("retry schedule needs 0 < FIRST <= CAP")
        return cls(first=first, cap=cap, give_up=give_up)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        base = min(self.cap, self.first * self.factor ** max(0, attempt - 1))
        spread = base * self.jitter
        return max(0.0, base + (rng or random).uniform(-spread, spread))

    def next_delay(self, attempt: int, elapsed: float, rng: random.Random | None = None) -> float | None:
        """The wait before the next attempt, or None to give up (the delivery is then dead)."""
        wait = self.delay(attempt, rng)
        if elapsed + wait > self.give_up:
            return None
        return wait


def retryable_status(status: int) -> bool:
    """Worth retrying: the target is overloaded or broken right now (429, 5xx), not rejecting the request."""
    return status >= 500 or status in RETRYABLE_STATUS
