"""The server token, checked in constant time: shared by the web side (app/web/auth.py) and the smee stream on the
ingest URL (app/ingest/smee.py), which cannot go through the web middleware."""

from __future__ import annotations

import hmac


def token_matches(token: str, presented: str) -> bool:
    return hmac.compare_digest(token.encode(), presented.encode())


def bearer_matches(headers: list[tuple[bytes, bytes]], token: str) -> bool:
    """Whether an `Authorization: Bearer <token>` header carries the token."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, presented = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token_matches(token, presented.strip()):
                return True
    return False
