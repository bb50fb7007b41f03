"""Provider awareness: detection, signature verification, re-signing.

Pure functions over captured requests, no I/O, except awareness.py: it adapts captures to them and re-checks
stored verdicts through the store. See docs/providers.md.
"""

from app.providers.config import SCHEMES, VerifyConfig
from app.providers.detect import detect, scheme_for_provider
from app.providers.masking import mask_secret
from app.providers.resign import Resigned, public_key_for_seed, resign, resign_request
from app.providers.types import Detection, Explanation, SignedRequest, Verdict
from app.providers.verify import explain, verify

__all__ = [
    "SCHEMES",
    "Detection",
    "Explanation",
    "Resigned",
    "SignedRequest",
    "Verdict",
    "VerifyConfig",
    "detect",
    "explain",
    "mask_secret",
    "public_key_for_seed",
    "resign",
    "resign_request",
    "scheme_for_provider",
    "verify",
]
