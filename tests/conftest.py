from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from app.settings import Settings
from tests import pg
from tests.delivery.target import RecordingTarget
from tests.support import LiveServer, live_server

# smee-client (npm) for the smee compatibility tests.
NPM_DIR = Path(__file__).resolve().parent / "ingest" / "npm"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(db=tmp_path / "hookscope.db", janitor_interval=3600)


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[LiveServer]:
    async with live_server(settings) as srv:
        yield srv


@pytest.fixture
async def client(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with server.client() as c:
        yield c


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The admin DSN of a PostgreSQL server (tests/pg.py: found or started once per process). Skips without one,
    unless HOOKSCOPE_REQUIRE_POSTGRES=1 (CI), where that is a failure."""
    return pg.postgres_or_skip()


@pytest.fixture
def pg_dsn(pg_server: str) -> Iterator[str]:
    """The DSN of a new, empty database of its own, dropped (its connections closed) after the test."""
    dsn = pg.create_database(pg_server)
    try:
        yield dsn
    finally:
        pg.drop_database(dsn)


@pytest.fixture
async def target() -> AsyncIterator[RecordingTarget]:
    async with RecordingTarget() as t:
        yield t


@pytest.fixture(scope="session")
def smee_bin() -> Path:
    """smee-client from npm, installed with `npm ci` on first use. Skipped without node/npm, unless
    HOOKSCOPE_REQUIRE_NODE=1 (CI), where that is a failure."""
    required = os.environ.get("HOOKSCOPE_REQUIRE_NODE") == "1"
    if shutil.which("node") is None or shutil.which("npm") is None:
        if required:
            pytest.fail("node and npm are required (HOOKSCOPE_REQUIRE_NODE=1) but were not found")
        pytest.skip("node/npm not installed: smee-client compatibility not tested")
    entry = NPM_DIR / "node_modules" / "smee-client" / "bin" / "smee.js"
    if not entry.exists():
        result = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"], cwd=NPM_DIR, capture_output=True, text=True, timeout=180
        )
        if result.returncode != 0 or not entry.exists():
            pytest.fail(f"npm ci failed in {NPM_DIR}:\n{result.stdout}\n{result.stderr}")
    return entry
