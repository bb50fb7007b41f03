from __future__ import annotations

import random

import pytest

from app.delivery.retry import RetryPolicy, retryable_status


def test_default_schedule_suits_a_dev_loop() -> None:
    p = RetryPolicy()
    rng = random.Random(1)
    delays = [p.delay(n, rng) for n in range(1, 10)]
    assert delays[0] <= 1.2
    assert all(0.79 * min(60, 2 ** (n - 1)) <= d <= 1.21 * min(60, 2 ** (n - 1)) for n, d in enumerate(delays, 1))
    assert p.next_delay(5, elapsed=3599.0) is None  # past the hour: give up
    assert RetryPolicy.parse("100ms,2s,30s") == RetryPolicy(first=0.1, cap=2.0, give_up=30.0)
    with pytest.raises(ValueError):
        RetryPolicy.parse("1s,60s")
    assert retryable_status(503) and retryable_status(429) and not retryable_status(404)
