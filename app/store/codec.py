"""Column encodings both backends store the same way, so a value reads back identically whichever wrote it."""

from __future__ import annotations

import json

from app.models import ResponseSpec


def encode_response(spec: ResponseSpec) -> str:
    """The endpoint's `response` column: compact JSON with non-ASCII escaped, so any text (U+0000 included) fits
    a SQLite TEXT or a PostgreSQL `text` column."""
    return json.dumps(spec.to_json(), separators=(",", ":"))


def decode_response(text: str) -> ResponseSpec:
    d = json.loads(text)
    return ResponseSpec(
        status=d["status"], headers=tuple((n, v) for n, v in d["headers"]), body=d["body"], delay=d["delay"]
    )
