"""Large bodies as files beside the database.

A body over the spill threshold is written to a file while it streams in, so a server with many concurrent
large uploads holds at most `spill_threshold` bytes of each in memory. With durability "full" the file and its
directory entry are fsynced before the row that names it is committed, so a committed row never points at a
lost file. A crash can leave unreferenced files; `sweep` removes them at start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import BinaryIO

from app.store.base import BodySpool

CHUNK = 256 * 1024


class BodyFiles:
    def __init__(self, directory: Path, durable: bool) -> None:
        self.directory = directory
        self.durable = durable

    def ensure(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    def path(self, name: str) -> Path:
        # Names are ours (random hex), but never let a stored value escape the directory.
        if "/" in name or "\\" in name or name.startswith("."):
            raise ValueError("bad body file name")
        return self.directory / name

    def new_spool(self) -> FileSpool:
        return FileSpool(self, secrets.token_hex(16) + ".body")

    def delete(self, names: Iterable[str]) -> None:
        for name in names:
            with contextlib.suppress(FileNotFoundError, ValueError):
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

    async def iter(self, name: str, chunk: int = CHUNK) -> AsyncIterator[bytes]:
        f = await asyncio.to_thread(self.path(name).open, "rb")
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

    def write(self, chunk: bytes) -> None:
        # A page-cache write of one receive chunk (<= 64 KiB from uvicorn) takes microseconds; the costly
        # fsync happens once, off the event loop, in finish().
        assert self._file is not None
        self._file.write(chunk)

    async def finish(self) -> None:
        f = self._file
        assert f is not None
        self._file = None
        await asyncio.to_thread(self._finish_sync, f)

    def _finish_sync(self, f: BinaryIO) -> None:
        f.flush()
        if self.files.durable:
            os.fsync(f.fileno())
        f.close()
        if self.files.durable:
            fd = os.open(self.files.directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    async def read(self) -> bytes:
        return await self.files.read(self.name)

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self.files.delete([self.name])
