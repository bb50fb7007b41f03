"""The outbox: every committed change of an endpoint other than a new request, as a row of `changes`, so other
instances can emit the same event (fanout.py).

A change is written in the transaction that makes it, numbered `n` per endpoint from `endpoints.next_change`
under the endpoint's row lock (so, like seqs, `n` order is commit order), and it records `seq`: the endpoint's
`next_seq` at that moment, i.e. every request with a seq up to it committed before the change and every later
one after it. That pair places the change exactly among the endpoint's requests.

Payloads are JSON text naming what changed. A DeliveryRecorded names only the delivery's id: a reader loads the
row (response bodies are not copied into the outbox), so it sees the row as it is when read.

Writers lock endpoint rows in the order their jobs run, which two instances may do in opposite orders: the
writer retries a batch PostgreSQL broke off as a deadlock (writer.py).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Literal, assert_never

import asyncpg

from app.endpoint_settings import settings_from_json, settings_to_json
from app.events.types import (
    DeliveryRecorded,
    EndpointChanged,
    EndpointDeleted,
    Event,
    RequestAdded,
    RequestsRemoved,
    Skipped,
    Verdict,
    VerdictsChanged,
)
from app.models import Endpoint
from app.store.codec import decode_response, encode_response
from app.store.postgres.rows import DELIVERY_COLUMNS, row_to_delivery

ChangeKind = Literal["removed", "endpoint", "deleted", "delivery", "verdicts"]
# The outbox keeps this long; an instance deaf for longer learns deletions from the endpoints table instead, and
# misses the rest (retention.py).
KEEP_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class Placed:
    """A committed change (or request) of `endpoint_id` with its place among the endpoint's events: emitting it
    moves an instance's watermarks from `before` to `after` (each a (seq, change n) pair)."""

    event: Event
    before: tuple[int, int]
    after: tuple[int, int]

    @property
    def endpoint_id(self) -> str:
        return self.event.endpoint_id


async def record(conn: asyncpg.Connection, event: Event) -> Placed | None:
    """Write `event` to the outbox in `conn`'s transaction (taking the endpoint's row lock until COMMIT); None when
    the endpoint does not exist. Call it before deleting the endpoint row for EndpointDeleted."""
    row = await conn.fetchrow(
        "UPDATE endpoints SET next_change = next_change + 1 WHERE id = $1 RETURNING next_change, next_seq",
        event.endpoint_id,
    )
    if row is None:
        return None
    n, seq = int(row["next_change"]), int(row["next_seq"])
    kind, payload = encode(event)
    await conn.execute(
        "INSERT INTO changes (endpoint_id, n, seq, kind, payload, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        event.endpoint_id, n, seq, kind, payload, time.time(),
    )
    return Placed(event, (seq, n - 1), (seq, n))


def encode(event: Event) -> tuple[ChangeKind, str]:
    match event:
        case RequestsRemoved():
            skipped = [[s.kind, s.name, s.count, s.total] for s in event.skipped]
            ids = list(event.ids) if event.ids is not None else None
            return "removed", json.dumps({"ids": ids, "reason": event.reason, "skipped": skipped})
        case EndpointChanged(endpoint=ep):
            return "endpoint", json.dumps({
                "name": ep.name, "created_at": ep.created_at, "response": encode_response(ep.response),
                "options": settings_to_json(ep.settings),
            })
        case EndpointDeleted():
            return "deleted", "{}"
        case DeliveryRecorded(delivery=d):
            return "delivery", json.dumps({"id": d.id})
        case VerdictsChanged(verdicts=verdicts):
            return "verdicts", json.dumps({"verdicts": [[v.request_id, v.status, v.reason] for v in verdicts]})
        case RequestAdded():
            raise ValueError("requests are read from the requests table, not the outbox")
        case _:
            assert_never(event)


async def read_deliveries(conn: Any, rows: list[asyncpg.Record]) -> dict[int, asyncpg.Record]:
    """The delivery rows the `delivery` changes among `rows` name, by id (missing: deleted with their request).
    `conn`: a connection or a pool's connection proxy, inside the caller's snapshot."""
    ids = [json.loads(r["payload"])["id"] for r in rows if r["kind"] == "delivery"]
    if not ids:
        return {}
    found = await conn.fetch(f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = ANY($1::bigint[])", ids)
    return {int(r["id"]): r for r in found}


def decode(endpoint_id: str, row: asyncpg.Record, deliveries: dict[int, asyncpg.Record]) -> Event | None:
    """The event an outbox row holds; None for one that cannot be told any more (a delivery whose row went with
    its request) or of a kind this version does not know (a newer instance's, during a rolling upgrade). The
    reader's watermark moves past the row either way."""
    d: dict[str, Any] = json.loads(row["payload"])
    match row["kind"]:
        case "removed":
            ids = tuple(d["ids"]) if d["ids"] is not None else None
            skipped = tuple(Skipped(k, endpoint_id, name, count, total) for k, name, count, total in d["skipped"])
            return RequestsRemoved(endpoint_id, ids, d["reason"], skipped)
        case "endpoint":
            return EndpointChanged(Endpoint(
                endpoint_id, d["name"], d["created_at"], decode_response(d["response"]),
                settings_from_json(d["options"]),
            ))
        case "deleted":
            return EndpointDeleted(endpoint_id)
        case "delivery":
            found = deliveries.get(int(d["id"]))
            return DeliveryRecorded(row_to_delivery(found)) if found is not None else None
        case "verdicts":
            return VerdictsChanged(endpoint_id, tuple(Verdict(rid, s, r) for rid, s, r in d["verdicts"]))
        case _:
            return None
