"""One server per database: an exclusive flock on `<db>.lock`, held for the life of the process.

A second server on the same file would run the start-up body sweep under the first one's in-flight uploads and
delete them, so it must stop before it touches the database or the bodies directory. flock (not fcntl/lockf
record locks) because it belongs to the open file description: two stores in one process (tests) exclude each
other too, and closing some other descriptor of the file does not drop it. The kernel releases it when the
process dies, kill -9 included, so there is never a stale lock to clean up; the file itself stays (unlinking it
would let a third server lock a fresh inode while the second still holds the old one).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from app.store.errors import DatabaseLocked, StorageUnavailable


class DatabaseLock:
    def __init__(self, database: Path) -> None:
        self.database = database
        self.path = Path(str(database) + ".lock")
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock or raise DatabaseLocked naming the holder's pid. Idempotent for this object."""
        if self._fd is not None:
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StorageUnavailable(
                f"database {self.database} cannot be used: cannot open its lock file {self.path}: {exc.strerror}"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise DatabaseLocked(str(self.database), str(self.path), holder) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            # The pid is for the message a second server prints; the lock itself is the flock.
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:
            os.close(fd)
            raise StorageUnavailable(
                f"database {self.database} cannot be used: cannot write its lock file {self.path}: {exc.strerror}"
            ) from exc
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    # Empty while the holder is between flock and writing its pid.
    return int(text) if text.isdigit() else None
