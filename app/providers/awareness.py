"""Provider awareness for captures: detection, stored signature verdicts, re-verification.

The pure work lives in app/providers; this module adapts captures to it. The endpoint's `verify` setting is
parsed once into a VerifyConfig (app/endpoint_settings.py), read here as `endpoint.settings.verify`.
"""

from __future__ import annotations

import asyncio
from typing import NamedTuple

from app.models import CapturedRequest, Endpoint, Header, NewRequest
from app.providers import SignedRequest, VerifyConfig, detect, verify
from app.providers.types import VerdictStatus
from app.store.base import RequestQuery, Store

# Bodies up to this size are parsed for event detection even when they were spilled to a file.
DETECT_MAX = 2 * 1024 * 1024
REVERIFY_BATCH = 500


def request_url(endpoint_id: str, path: str, query: str, headers: tuple[Header, ...], public_url: str | None) -> str:
    """The URL the sender called (Twilio and Square sign it). Behind a TLS proxy set --public-url or verify.url."""
    if public_url:
        base = public_url.rstrip("/")
    else:
        host = next((v for n, v in headers if n == "host"), "localhost")
        base = f"http://{host}"
    return f"{base}/h/{endpoint_id}{path}" + (f"?{query}" if query else "")


def signed_request(req: NewRequest | CapturedRequest, body: bytes, public_url: str | None) -> SignedRequest:
    url = request_url(req.endpoint_id, req.path, req.query, req.headers, public_url)
    return SignedRequest(req.method, url, req.headers, body, req.received_at)


class Analysis(NamedTuple):
    """What capture-time analysis adds to a NewRequest."""

    provider: str | None
    event_type: str | None
    event_id: str | None
    verify_status: VerdictStatus
    verify_reason: str


def analyse(new: NewRequest, body: bytes | None, config: VerifyConfig | None, public_url: str | None) -> Analysis:
    """Detection and verdict for a capture; body None means "not loaded" (detection by headers only).

    Verdicts are computed against the time of receipt, so recomputing them later gives the same answer.
    """
    data = body if body is not None else b""
    if config is None:
        # Detection reads headers and body only; the URL (which two schemes sign) is built when verifying.
        found = detect(SignedRequest(new.method, "", new.headers, data, new.received_at))
        return Analysis(found.provider, found.event_type, found.event_id, "unconfigured", "")
    sreq = signed_request(new, data, public_url)
    found = detect(sreq)
    if body is None:
        return Analysis(found.provider, found.event_type, found.event_id, "unconfigured",
                        "body was not loaded for verification")
    verdict = verify(sreq, config, now=new.received_at)
    return Analysis(found.provider, found.event_type, found.event_id, verdict.status, verdict.reason)


def analysed(new: NewRequest, analysis: Analysis) -> NewRequest:
    """`new` with its analysis filled in (the capture path's own request, not yet handed to the store)."""
    new.provider, new.event_type, new.event_id, new.verify_status, new.verify_reason = analysis
    return new


async def reverify(store: Store, endpoint: Endpoint, public_url: str | None) -> int:
    """Recompute the stored verdict of every request of the endpoint (after its secrets changed).

    Walks ids in batches; a final pass picks up captures committed while the walk ran.
    """
    config = endpoint.settings.verify
    after = 0
    changed = 0
    while True:
        rows = await store.list_requests(
            endpoint.id, RequestQuery(after=after, limit=REVERIFY_BATCH, with_body=True)
        )
        if not rows:
            return changed
        updates: list[tuple[int, VerdictStatus, str]] = []
        for row in rows:
            if row.rejected:
                continue
            status: VerdictStatus = "unconfigured"
            reason = ""
            if config is not None:
                body = row.body if row.body is not None else await store.load_body(row)
                verdict = verify(signed_request(row, body, public_url), config, now=row.received_at)
                status, reason = verdict.status, verdict.reason
            if (status, reason) != (row.verify_status, row.verify_reason):
                updates.append((row.id, status, reason))
        if updates:
            await store.update_verdicts(updates)
            changed += len(updates)
        after = rows[-1].id
        await asyncio.sleep(0)  # let captures through between batches
