"""The relays connected to this server, by (endpoint, relay name).

Its own object, built before the services that read it: the relay server adds and removes sessions, and
passthrough asks whether anything will deliver a request before it makes the sender wait for a target's answer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from starlette.websockets import WebSocket


@dataclass
class RelaySession:
    endpoint_id: str
    name: str
    remote: str | None
    # The relay's cursor: the position (seq) in the endpoint it has acknowledged everything up to.
    acked_seq: int
    connected_at: float = field(default_factory=time.time)
    last_seen_at: float = field(default_factory=time.time)
    # Request id -> seq of what this connection sent and the relay has not acknowledged yet, in the order sent:
    # acks name the id, the cursor moves by the seq. At most the send window, so it needs no bound of its own.
    unacked: dict[int, int] = field(default_factory=dict)
    websocket: WebSocket | None = None

    @property
    def in_flight(self) -> int:
        return len(self.unacked)


class RelaySessions:
    def __init__(self) -> None:
        self._by_key: dict[tuple[str, str], RelaySession] = {}

    def get(self, endpoint_id: str, name: str) -> RelaySession | None:
        return self._by_key.get((endpoint_id, name))

    def put(self, session: RelaySession) -> RelaySession | None:
        """Register a session; returns the one it replaces (the same relay, reconnected), if any."""
        key = (session.endpoint_id, session.name)
        old = self._by_key.get(key)
        self._by_key[key] = session
        return old

    def remove(self, session: RelaySession) -> None:
        """Forget a session unless a newer connection of the same relay already replaced it."""
        key = (session.endpoint_id, session.name)
        if self._by_key.get(key) is session:
            del self._by_key[key]

    def connected(self, endpoint_id: str) -> bool:
        return any(eid == endpoint_id for eid, _ in self._by_key)

    def of_endpoint(self, endpoint_id: str) -> list[RelaySession]:
        return [s for (eid, _), s in self._by_key.items() if eid == endpoint_id]

    def all(self) -> list[RelaySession]:
        return list(self._by_key.values())
