"""How a captured request is laid out in PostgreSQL rows, and back: the header block, the row decoder, the text
search condition.

Captured strings are ISO-8859-1 decodings of the raw bytes (app/models.py), so `value.encode("latin-1")` is the
exact byte string stored in a `bytea` column, and decoding it back is lossless.
"""

from __future__ import annotations

import json

import asyncpg

from app.delivery.records import Delivery
from app.endpoint_settings import settings_from_json
from app.models import CapturedRequest, Endpoint, Header
from app.store.codec import decode_response

SUMMARY_COLUMNS = (
    "id, seq, endpoint_id, received_at, method, path, query, headers, body_size, client, http_version, rejected,"
    " provider, event_type, event_id, verify_status, verify_reason, duplicate_of"
)


def encode_headers(headers: tuple[Header, ...]) -> bytes:
    """The header block as on the wire ("name: value\\r\\n" per header, in order, duplicates kept).

    Exact for every header an HTTP parser accepts. Raises ValueError for one the block cannot represent (a name
    holding ": " or CR LF, a value holding CR LF), which no parser lets through.
    """
    out = bytearray()
    for name, value in headers:
        n, v = name.encode("latin-1"), value.encode("latin-1")
        if b": " in n or b"\r\n" in n or b"\r\n" in v:
            raise ValueError("a header name or value the header block cannot hold")
        out += n + b": " + v + b"\r\n"
    return bytes(out)


def decode_headers(block: bytes) -> tuple[Header, ...]:
    headers: list[Header] = []
    start = 0
    while start < len(block):
        end = block.index(b"\r\n", start)
        name, _, value = block[start:end].partition(b": ")
        headers.append((name.decode("latin-1"), value.decode("latin-1")))
        start = end + 2
    return tuple(headers)


def content_type_of(headers: tuple[Header, ...]) -> str:
    """The first content-type header, as NewRequest.content_type derives it (so it is not stored twice)."""
    for name, value in headers:
        if name == "content-type":
            return value
    return ""


def row_to_request(row: asyncpg.Record, body: bytes | None = None) -> CapturedRequest:
    headers = decode_headers(row["headers"])
    return CapturedRequest(
        id=row["id"],
        seq=row["seq"],
        endpoint_id=row["endpoint_id"],
        received_at=row["received_at"],
        method=row["method"],
        path=bytes(row["path"]).decode("latin-1"),
        query=bytes(row["query"]).decode("latin-1"),
        headers=headers,
        content_type=content_type_of(headers),
        body_size=row["body_size"],
        client=row["client"],
        http_version=row["http_version"],
        rejected=row["rejected"],
        provider=row["provider"],
        event_type=row["event_type"],
        event_id=row["event_id"],
        verify_status=row["verify_status"],
        verify_reason=row["verify_reason"],
        duplicate_of=row["duplicate_of"],
        body=body,
    )


def search_pattern(text: str) -> str:
    """A regular expression over `encode(column, 'hex')` that matches where the column's bytes contain the UTF-8
    bytes of `text`, ignoring ASCII case: the semantics of the SQLite backend's text filter (byte search, ASCII
    case-insensitive), on raw bytes that need not be valid text.

    Hex keeps every byte two characters wide, so the `^(..)*` prefix pins matches to byte boundaries, and a letter
    becomes an alternation of its two cases. PostgreSQL's regex engine is automaton-based, so this stays linear in
    the length of the column. The pattern holds hex digits only: no user text reaches the regex syntax.
    """
    parts = []
    for byte in text.encode("utf-8"):
        char = chr(byte)
        if char.isascii() and char.isalpha():
            parts.append(f"(?:{ord(char.lower()):02x}|{ord(char.upper()):02x})")
        else:
            parts.append(f"{byte:02x}")
    return "^(?:..)*?" + "".join(parts)


def row_to_endpoint(row: asyncpg.Record) -> Endpoint:
    """An `endpoints` row (id, name, created_at, response, options) as the cache holds it. Decoded once here (lone
    surrogates from older versions repaired), never per request."""
    return Endpoint(
        row["id"], row["name"], row["created_at"], decode_response(row["response"]), settings_from_json(row["options"])
    )


DELIVERY_COLUMNS = (
    "id, request_id, endpoint_id, kind, target, relay, state, attempts, created_at, updated_at, next_attempt_at,"
    " status, latency_ms, error, response_header_names, response_header_values, response_body, response_size,"
    " history, sent"
)


def row_to_delivery(row: asyncpg.Record) -> Delivery:
    return Delivery(
        id=row["id"],
        request_id=row["request_id"],
        endpoint_id=row["endpoint_id"],
        kind=row["kind"],
        target=row["target"],
        relay=row["relay"],
        state=row["state"],
        attempts=row["attempts"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        next_attempt_at=row["next_attempt_at"],
        status=row["status"],
        latency_ms=row["latency_ms"],
        error=row["error"],
        response_headers=[
            (bytes(n), bytes(v))
            for n, v in zip(row["response_header_names"], row["response_header_values"], strict=True)
        ],
        response_body=bytes(row["response_body"]),
        response_size=row["response_size"],
        history=json.loads(row["history"]),
        sent=json.loads(row["sent"]) if row["sent"] is not None else None,
    )
