"""The embedded SQLite backend (the default): one write connection behind the writer, a pool of readers."""

from app.store.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore"]
