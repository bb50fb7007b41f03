"""Signature verification entry points.

``verify`` is what the store calls on every capture (and again when an
endpoint's secrets change); ``explain`` feeds the UI's signature helper.
Pass ``now=req.received_at`` for stored verdicts so that recomputing them
later gives the same answer instead of "timestamp outside tolerance".
"""

from __future__ import annotations

from app.providers.config import VerifyConfig
from app.providers.masking import mask_secret
from app.providers.schemes import get_scheme
from app.providers.types import Explanation, SignedRequest, Verdict

__all__ = ["VerifyConfig", "explain", "mask_secret", "verify"]


def verify(req: SignedRequest, config: VerifyConfig | None, now: float) -> Verdict:
    """Check ``req`` against ``config``; never raises on request content."""
    if config is None:
        return Verdict("unconfigured", "no verification configured for this endpoint")
    scheme = get_scheme(config.scheme)
    if scheme is None:
        return Verdict("unconfigured", f"unknown scheme {config.scheme!r}")
    return scheme.verify(req, config, now)


def explain(req: SignedRequest, config: VerifyConfig, now: float) -> Explanation:
    """Received vs expected signature and the exact signed bytes, for the UI."""
    scheme = get_scheme(config.scheme)
    if scheme is None:
        verdict = Verdict("unconfigured", f"unknown scheme {config.scheme!r}")
        return Explanation(config.scheme, "", None, (), None, None, None, verdict)
    return scheme.explain(req, config, now)
