"""The cursor part of the store contract: the durable acknowledged position of each relay and forward target."""

from __future__ import annotations

import abc

from app.events.types import CursorKind

# Advance this cursor in the same transaction as a write: (kind, name, acknowledged seq).
CursorAdvance = tuple[CursorKind, str, int]


class CursorStore(abc.ABC):
    """A cursor is (kind, endpoint, name) -> acked seq: everything of the endpoint with a larger seq (its position
    in the endpoint, CapturedRequest.seq) is still owed to that relay (name = relay name) or forward target (name =
    target URL)."""

    @abc.abstractmethod
    async def get_cursor(self, kind: CursorKind, endpoint_id: str, name: str) -> int | None:
        """The acked seq, or None when there is no such cursor."""

    @abc.abstractmethod
    async def set_cursor(
        self, kind: CursorKind, endpoint_id: str, name: str, acked_seq: int, force: bool = False
    ) -> int:
        """Create the cursor or advance it to acked_seq (never backwards, unless force sets it exactly); returns
        the stored seq after COMMIT. Raises NotFound when the endpoint does not exist."""

    @abc.abstractmethod
    async def list_cursors(self, endpoint_id: str, kind: CursorKind) -> list[tuple[str, int, float]]:
        """(name, acked seq, updated_at) of every cursor of that kind on the endpoint, by name."""

    @abc.abstractmethod
    async def delete_cursor(self, kind: CursorKind, endpoint_id: str, name: str) -> bool:
        """Returns after COMMIT whether the cursor existed."""

    @abc.abstractmethod
    async def skipped_counts(self, endpoint_id: str, kind: CursorKind) -> dict[str, int]:
        """Cursor name -> captures retention pruned before that relay / forward target acknowledged them."""
