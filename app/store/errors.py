"""The exceptions of the storage boundary: what any backend raises, so callers never name a backend's internals.

`StorageUnavailable` refuses start-up (database in use by another server, read-only file or directory);
`StoreBusy` sheds load (the write queue is full); `StoreClosed` refuses writes during shutdown; `NotFound` names
something that does not exist (any more); `BodyMissing` is a committed request whose body can no longer be read.
All derive from `StoreError`.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base of every exception the store boundary defines (a backend's own driver errors are not wrapped)."""


class StorageUnavailable(StoreError):
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


class StoreBusy(StoreError):
    """The write queue is full: the caller should shed load (ingest answers 503 with Retry-After)."""


class StoreClosed(StoreError):
    """The store is closing (or not open) and takes no new writes."""


class NotFound(StoreError):
    """The endpoint (or other record) a write names does not exist, or no longer does."""


class BodyMissing(StoreError):
    """A request's body cannot be read: the request was deleted, or its stored bytes are gone, cut short or
    unreadable."""

    def __init__(self, request_id: int, reason: str) -> None:
        super().__init__(f"the body of request {request_id} is not available: {reason}")
        self.request_id = request_id
        self.reason = reason
