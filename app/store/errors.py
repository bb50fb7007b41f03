"""Storage faults the rest of the app sees, and the two hooks a server uses to stay honest about them.

`StorageUnavailable` refuses start-up (database in use by another server, read-only file or directory);
`BodyMissing` is a committed request whose body can no longer be read. A backend that holds process-local
resources (the SQLite store's lock file) or can notice failing writes implements `Supervised`; the CLI and
`/healthz` use it through `claim_storage` and `storage_health`, so they never name a backend.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


class StorageUnavailable(Exception):
    """The store cannot be used by this process; the message names the file and the reason."""


class DatabaseLocked(StorageUnavailable):
    def __init__(self, database: str, lock_file: str, holder: int | None) -> None:
        who = f"pid {holder}" if holder is not None else "pid unknown"
        super().__init__(
            f"database {database} is in use by another hookscope server ({who}; lock {lock_file}); "
            "stop that server or use another --db"
        )
        self.database = database
        self.holder = holder


class BodyMissing(Exception):
    """A committed request's body cannot be read (file deleted by hand, truncated, or unreadable)."""

    def __init__(self, request_id: int, reason: str) -> None:
        super().__init__(f"the body of request {request_id} is not available: {reason}")
        self.request_id = request_id
        self.reason = reason


@runtime_checkable
class Supervised(Protocol):
    def claim(self) -> None:
        """Take exclusive use of the storage and check it is writable; raises StorageUnavailable.
        Idempotent, so the CLI can claim before the server starts and the lifespan's open() again."""

    async def health(self) -> str | None:
        """None when writes work, else why not (no file paths: /healthz is public)."""


def claim_storage(store: object) -> None:
    if isinstance(store, Supervised):
        store.claim()


async def storage_health(store: object) -> str | None:
    if isinstance(store, Supervised):
        return await store.health()
    return None
