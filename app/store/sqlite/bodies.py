"""Large bodies as files beside the database.

A body over the spill threshold is written to a file while it streams in, so a server with many concurrent
large uploads holds at most `spill_threshold` bytes of each in memory. With durability "full" the file and its
directory entry are fsynced before the row that names it is committed, so a committed row never points at a
lost file. A crash can leave unreferenced files; `sweep` removes them at start-up (safe because the database
lock admits one server at a time, app/store/sqlite/lock.py).

Writing can fail (disk full, read-only directory): the failing spool raises OSError and removes what it wrote,
and `fault` keeps the reason until a body file is written again (or `probe` succeeds), for /healthz.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import secrets
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import BinaryIO

from app.store.requests import BodySpool

CHUNK = 256 * 1024


class BodyFiles:
    def __init__(self, directory: Path, durable: bool) -> None:
        self.directory = directory
        self.durable = durable
        self.fault: str | None = None

    def ensure(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    def path(self, name: str) -> Path:
        # Names are ours (random hex), but never let a stored value escape the directory.
        if "/" in name or "\\" in name or name.startswith("."):
            raise ValueError("bad body file name")
        return self.directory / name

    def new_spool(self) -> FileSpool:
        try:
            return FileSpool(self, secrets.token_hex(16) + ".body")
        except OSError as exc:
            self.failed(exc)
            raise

    def name_of(self, spool: BodySpool) -> str:
        """The file name a committed row records for a finished spool of this directory. ValueError for any other
        spool: a row must never name a file this store did not write."""
        if not isinstance(spool, FileSpool) or spool.files is not self or not spool.finished:
            raise ValueError("not a finished body spool of this store")
        return spool.name

    def failed(self, exc: OSError) -> None:
        # strerror only: the reason reaches the public /healthz, which must not show server paths.
        self.fault = f"body files: {exc.strerror or exc}"

    def probe(self) -> None:
        """Write and remove a small file; raises OSError when the directory takes no writes (read-only, full).

        The name starts with "." so it can never be a stored body name; the start-up sweep removes a leftover.
        """
        path = self.directory / f".probe-{secrets.token_hex(8)}"
        try:
            with path.open("xb") as f:
                f.write(b"\0" * 4096)  # one page: an empty file still fits on a full tmpfs
                f.flush()
                if self.durable:
                    os.fsync(f.fileno())
        except OSError as exc:
            self.failed(exc)
            raise
        finally:
            with contextlib.suppress(OSError):
                path.unlink()
        self.fault = None

    def open_for_read(self, name: str, size: int) -> BinaryIO:
        """Open a body file, checking it holds `size` bytes; raises OSError (FileNotFoundError when deleted).

        Checked before any response starts, so a lost or cut file becomes a clean error, never a truncated 200.
        """
        f = self.path(name).open("rb")
        try:
            actual = os.fstat(f.fileno()).st_size
            if actual != size:
                raise OSError(errno.EIO, f"body file holds {actual} bytes, expected {size}")
        except BaseException:
            f.close()
            raise
        return f

    def delete(self, names: Iterable[str]) -> None:
        for name in names:
            # A file that cannot go now (read-only directory) is unreferenced: the next start-up sweep takes it.
            with contextlib.suppress(OSError, ValueError):
                self.path(name).unlink()

    def sweep(self, referenced: set[str]) -> int:
        """Remove files that no committed row references (left by a crash mid-upload)."""
        removed = 0
        if not self.directory.exists():
            return 0
        for entry in self.directory.iterdir():
            if entry.name not in referenced:
                with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                    entry.unlink()
                    removed += 1
        return removed

    async def read(self, name: str) -> bytes:
        return await asyncio.to_thread(self.path(name).read_bytes)


async def iter_file(f: BinaryIO, chunk: int = CHUNK) -> AsyncIterator[bytes]:
    """Read an open file in chunks off the event loop; closes it when done (or when the consumer stops)."""
    try:
        while True:
            data = await asyncio.to_thread(f.read, chunk)
            if not data:
                return
            yield data
    finally:
        f.close()


class FileSpool(BodySpool):
    def __init__(self, files: BodyFiles, name: str) -> None:
        self.files = files
        self.name = name
        self._file: BinaryIO | None = files.path(name).open("xb")
        self.finished = False

    async def write(self, chunk: bytes) -> None:
        # Nothing awaited: a page-cache write of one receive chunk (<= 64 KiB from uvicorn) takes microseconds;
        # the costly fsync happens once, off the event loop, in finish().
        assert self._file is not None
        try:
            self._file.write(chunk)
        except OSError as exc:
            self.files.failed(exc)
            raise

    async def finish(self) -> None:
        f = self._file
        assert f is not None
        self._file = None
        await asyncio.to_thread(self._finish_sync, f)

    def _finish_sync(self, f: BinaryIO) -> None:
        try:
            try:
                f.flush()
                if self.files.durable:
                    os.fsync(f.fileno())
            finally:
                f.close()
            if self.files.durable:
                fd = os.open(self.files.directory, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except OSError as exc:
            self.files.failed(exc)
            raise
        self.files.fault = None
        self.finished = True

    async def read(self) -> bytes:
        return await self.files.read(self.name)

    def discard(self) -> None:
        """Remove the file; never raises, since it runs while another error is being handled."""
        if self._file is not None:
            # Closing flushes the buffer, which fails again on a full disk; the file goes anyway.
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        self.finished = False
        self.files.delete([self.name])
