"""One attempt through the SSRF guard: every answer and every failure is an Outcome, never an exception."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.delivery.outgoing import Outgoing, build_outgoing, parse_target
from app.delivery.sender import PASSTHROUGH_KEEP, Sender
from app.delivery.ssrf import ForwardPolicy
from app.delivery.wire import KEEP_BODY
from tests.delivery.hostile_target import HostileTarget
from tests.delivery.target import Received, RecordingTarget
from tests.support import free_port


@pytest.fixture
async def sender() -> AsyncIterator[Sender]:
    s = Sender(ForwardPolicy(), timeout=5.0)
    try:
        yield s
    finally:
        await s.aclose()


def _post(url: str) -> Outgoing:
    return build_outgoing(parse_target(url), "POST", "", "", [], b"x")


async def test_an_answer_keeps_its_head_and_the_whole_body_for_passthrough(sender: Sender) -> None:
    async with HostileTarget() as hostile:
        outcome, full = await sender.attempt(_post(f"{hostile.url}/big"))
    assert outcome.ok and outcome.status == 200 and outcome.error is None and not outcome.final
    assert outcome.latency_ms is not None and outcome.latency_ms >= 0
    assert (b"content-length", b"102400") in outcome.headers
    # The record keeps the first KEEP_BODY bytes and the real size; passthrough gets the whole answer.
    assert outcome.body == b"b" * KEEP_BODY and outcome.body_size == 102400
    assert full == b"b" * 102400


async def test_an_answer_too_large_for_passthrough_gives_no_partial_body(sender: Sender) -> None:
    size = PASSTHROUGH_KEEP + 1

    def large(_: Received) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        return 201, [], b"z" * size

    async with RecordingTarget(large) as target:
        outcome, full = await sender.attempt(_post(target.url))
    assert outcome.status == 201 and outcome.body_size == size and len(outcome.body) == KEEP_BODY
    assert full == b""  # a cut answer must not go back to the sender as if it were whole


async def test_an_error_status_is_an_outcome_not_a_failure(sender: Sender) -> None:
    def unavailable(_: Received) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        return 503, [(b"retry-after", b"1")], b"busy"

    async with RecordingTarget(unavailable) as target:
        outcome, full = await sender.attempt(_post(target.url))
    assert outcome.status == 503 and not outcome.ok and outcome.retryable and outcome.error is None
    assert outcome.body == b"busy" and full == b"busy"


async def test_a_refused_target_is_a_final_failure_and_nothing_is_sent() -> None:
    async with RecordingTarget() as target:

        async def mixed(host: str, port: int) -> list[str]:
            return ["127.0.0.1", "10.1.2.3"]  # one vetted address is not enough: every one must pass

        sender = Sender(ForwardPolicy(), timeout=5.0, resolver=mixed)
        try:
            outcome, full = await sender.attempt(_post(f"http://dev.test:{target.port}/"))
        finally:
            await sender.aclose()
        assert target.count == 0
    assert outcome.status is None and outcome.final and not outcome.retryable and full == b""
    assert outcome.error is not None and "refused" in outcome.error and "--forward-allow dev.test" in outcome.error


async def test_an_unreachable_target_is_a_retryable_failure(sender: Sender) -> None:
    outcome, full = await sender.attempt(_post(f"http://127.0.0.1:{free_port()}/"))
    assert outcome.status is None and outcome.retryable and not outcome.final and full == b""
    assert outcome.error == "connection refused (is the target running?)"
    assert outcome.latency_ms is not None


async def test_a_bad_answer_is_a_retryable_failure(sender: Sender) -> None:
    async with HostileTarget() as hostile:
        outcome, full = await sender.attempt(_post(f"{hostile.url}/garbage"))
    assert outcome.status is None and outcome.retryable and full == b""
    assert outcome.error is not None and "malformed response head" in outcome.error


async def test_a_bug_below_the_sender_is_a_final_failure_and_the_sender_goes_on() -> None:
    async def buggy(host: str, port: int) -> list[str]:
        if host == "bug.test":
            raise RuntimeError("a bug in the resolver")
        return ["127.0.0.1"]

    sender = Sender(ForwardPolicy(), timeout=5.0, resolver=buggy)
    try:
        async with RecordingTarget() as target:
            outcome, _ = await sender.attempt(_post(f"http://bug.test:{target.port}/"))
            assert outcome.final and outcome.status is None
            assert outcome.error == "internal error while sending: RuntimeError: a bug in the resolver"
            after, _ = await sender.attempt(_post(f"http://good.test:{target.port}/"))
            assert after.status == 200 and target.count == 1
    finally:
        await sender.aclose()
