"""Provider awareness for captures: detection, stored signature verdicts, re-verification.

The pure work lives in app/providers; this module adapts captures to it and owns the endpoint's `verify`
setting (stored with real secrets, shown masked).
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from app.models import CapturedRequest, Endpoint, Header, NewRequest
from app.providers import SignedRequest, VerifyConfig, detect, mask_secret, verify
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


def verify_config(endpoint: Endpoint) -> VerifyConfig | None:
    stored = endpoint.options.get("verify")
    if not stored:
        return None
    return VerifyConfig(**{**stored, "secrets": tuple(stored.get("secrets", ()))})


def analyse(new: NewRequest, body: bytes | None, config: VerifyConfig | None, public_url: str | None) -> NewRequest:
    """Detection and verdict for a capture; body None means "not loaded" (detection by headers only).

    Verdicts are computed against the time of receipt, so recomputing them later gives the same answer.
    """
    sreq = signed_request(new, body if body is not None else b"", public_url)
    found = detect(sreq)
    status, reason = "unconfigured", ""
    if config is not None:
        if body is None:
            status, reason = "unconfigured", "body was not loaded for verification"
        else:
            verdict = verify(sreq, config, now=new.received_at)
            status, reason = verdict.status, verdict.reason
    return dataclasses.replace(
        new,
        provider=found.provider,
        event_type=found.event_type,
        event_id=found.event_id,
        verify_status=status,
        verify_reason=reason,
    )


async def reverify(store: Store, endpoint: Endpoint, public_url: str | None) -> int:
    """Recompute the stored verdict of every request of the endpoint (after its secrets changed).

    Walks ids in batches; a final pass picks up captures committed while the walk ran.
    """
    config = verify_config(endpoint)
    after = 0
    changed = 0
    while True:
        rows = await store.list_requests(
            endpoint.id, RequestQuery(after=after, limit=REVERIFY_BATCH, with_body=True)
        )
        if not rows:
            return changed
        updates: list[tuple[int, str, str]] = []
        for row in rows:
            if row.rejected:
                continue
            status, reason = "unconfigured", ""
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


# The endpoint option ---------------------------------------------------------------------------------------
def parse_verify(value: Any, previous: Any) -> dict[str, Any]:
    """API input -> stored form. Secrets sent back masked (as the API shows them) keep their stored value."""
    if isinstance(value, dict) and isinstance(value.get("secrets"), list) and isinstance(previous, dict):
        known = {mask_secret(s): s for s in previous.get("secrets", [])}
        value = {**value, "secrets": [known.get(s, s) if isinstance(s, str) else s for s in value["secrets"]]}
    config = VerifyConfig.from_json(value)
    stored = dataclasses.asdict(config)
    stored["secrets"] = list(config.secrets)
    return stored


def render_verify(stored: Any) -> Any:
    config = VerifyConfig(**{**stored, "secrets": tuple(stored.get("secrets", ()))})
    return config.to_json()


