"""MAC primitives and signature decoding used by every HMAC scheme."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

_DIGESTS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}


def mac(algorithm: str, key: bytes, message: bytes) -> bytes:
    # hmac.digest: the one-shot C path, without building an HMAC object per signature checked.
    return hmac.digest(key, message, _DIGESTS[algorithm])


def encode(digest: bytes, encoding: str) -> str:
    if encoding == "hex":
        return digest.hex()
    return base64.b64encode(digest).decode("ascii")


def decode(signature: str, encoding: str) -> bytes | None:
    """Signature bytes, or None when the text is not valid in ``encoding``.

    Comparing decoded bytes makes hex case and base64 padding irrelevant,
    which is what the official verifiers effectively accept.
    """
    signature = signature.strip()
    if not signature or len(signature) > 1024:
        return None
    try:
        if encoding == "hex":
            return bytes.fromhex(signature)
        padded = signature + "=" * (-len(signature) % 4)
        return base64.b64decode(padded, validate=True)
    except (ValueError, binascii.Error):
        return None


def same(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def parse_int(value: str | None) -> int | None:
    """A unix timestamp from a header; None for anything else.

    The length cap avoids Python's huge-int conversion limits and any cost on
    hostile input; no real timestamp (even in ms) is longer.
    """
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > 20 or not value.lstrip("-").isdigit():
        return None
    return int(value)


def header_bytes(value: str) -> bytes:
    """The wire bytes of a header value decoded as ISO-8859-1.

    Values built in code may hold characters outside Latin-1; UTF-8 is the
    only sensible wire form for those, and this must never raise.
    """
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8", errors="replace")
