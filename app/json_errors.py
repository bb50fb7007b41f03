"""The one JSON error shape every layer answers with: `{"error": {"code": ..., "message": ...}}`.

Below the web package on purpose: the HTTP guard (app/server) and ingest (app/ingest) answer errors before any
route runs; app/web/errors.py builds its responses and exception handlers on it.
"""

from __future__ import annotations

import json

from app.unicode_safe import scrub_text


def error_body(code: str, message: str) -> bytes:
    # Messages quote user input: a lone surrogate there would go out as a \ud800 escape no client can decode.
    return json.dumps({"error": {"code": code, "message": scrub_text(message)}}).encode()
