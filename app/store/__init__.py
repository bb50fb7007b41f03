"""The storage boundary: handlers talk to `Store`; `SQLiteStore` is the embedded default."""

from app.store.base import RequestQuery, Store
from app.store.sqlite.store import SQLiteStore

__all__ = ["RequestQuery", "SQLiteStore", "Store"]
