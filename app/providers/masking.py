"""Secret hints that identify a secret without revealing it."""

from __future__ import annotations

import re

# Vendor prefixes (whsec_, pdl_ntfset_, lin_wh_, shpss_) carry no entropy and
# tell the user which kind of secret is stored, so they stay visible.
_PREFIX = re.compile(r"^(?:[a-z]{2,8}_){1,2}")
_MIN_TAIL_SOURCE = 12


def mask_secret(secret: str) -> str:
    """Return e.g. ``whsec_…a1b2``: vendor prefix plus the last 4 characters.

    Short secrets show no tail at all, because four characters of an
    eight-character token is half the token.
    """
    match = _PREFIX.match(secret)
    prefix = match.group(0) if match else ""
    rest = secret[len(prefix) :]
    if len(rest) >= _MIN_TAIL_SOURCE:
        return f"{prefix}…{rest[-4:]}"
    return f"{prefix}…"
