"""Sending one attempt: a request to a target through the SSRF guard, its answer or error as an `Outcome`.

Used by the forward workers, replay and (for the outcome of a response) anything that records a delivery. One
attempt never raises: every failure, a bug included, becomes that attempt's outcome, so a caller records it
and decides on retries with the outcome alone.
"""

from __future__ import annotations

import asyncio
import logging
import time

from app.delivery.outgoing import Outgoing
from app.delivery.records import Outcome
from app.delivery.ssrf import ForwardPolicy, Resolver, TargetRefused, system_resolver
from app.delivery.wire import KEEP_BODY, HttpClient, HttpResponse, ProtocolError, describe_error

log = logging.getLogger("hookscope.forward")

# Passthrough returns the target's whole answer to the original sender, up to this size.
PASSTHROUGH_KEEP = 1024 * 1024


def outcome_of(resp: HttpResponse) -> Outcome:
    """What a delivery record keeps of a response: status, latency, headers and the first KEEP_BODY bytes."""
    return Outcome(resp.status, round(resp.latency_ms, 3), resp.headers, resp.body[:KEEP_BODY], resp.body_size)


class Sender:
    """One attempt at sending a request to a target through the SSRF guard; errors become outcomes."""

    def __init__(self, policy: ForwardPolicy, timeout: float, resolver: Resolver = system_resolver) -> None:
        self.policy = policy
        self.timeout = timeout
        self.resolver = resolver
        self.client = HttpClient(lookup=self._lookup)

    async def _lookup(self, host: str, port: int) -> list[str]:
        return await self.policy.resolve(host, port, self.resolver)

    async def attempt(self, out: Outgoing) -> tuple[Outcome, bytes]:
        """(outcome, full body up to 1 MiB for passthrough)."""
        started = time.perf_counter()
        try:
            resp = await self.client.send(out, self.timeout, keep=PASSTHROUGH_KEEP)
        except TargetRefused as exc:
            return Outcome.failure(str(exc), final=True), b""
        except (OSError, TimeoutError, ProtocolError, EOFError, asyncio.IncompleteReadError) as exc:
            return Outcome.failure(describe_error(exc), round((time.perf_counter() - started) * 1000, 3)), b""
        except Exception as exc:  # a bug must fail this one attempt (final: it would fail again), not its caller
            log.exception("sending to %s failed unexpectedly", out.url)
            ms = round((time.perf_counter() - started) * 1000, 3)
            return Outcome.failure(f"internal error while sending: {describe_error(exc)}", ms, final=True), b""
        return outcome_of(resp), resp.body if not resp.truncated else b""

    async def aclose(self) -> None:
        await self.client.aclose()
