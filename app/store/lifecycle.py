"""Opening, closing and supervising a store: the part of the contract the CLI, the lifespan and /healthz use."""

from __future__ import annotations

import abc


class LifecycleStore(abc.ABC):
    @abc.abstractmethod
    def claim(self) -> None:
        """Take exclusive use of the storage and check it is writable; raises StorageUnavailable naming the file
        or server and the reason. Idempotent, so the CLI can claim before the server starts (to refuse with a
        message) and open() claims again."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Claim the storage and make it ready for reads and writes; raises StorageUnavailable."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Commit every write already queued, then release the storage. Writes after close raise StoreClosed."""

    @abc.abstractmethod
    async def health(self) -> str | None:
        """None when writes work, else why not (no file paths: /healthz is public)."""
