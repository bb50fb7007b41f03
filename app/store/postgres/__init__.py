"""The PostgreSQL backend: several instances on one database (see docs/deploy.md)."""

from app.store.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
