"""A PostgreSQL server for the tests: the one we are told about, the one on this machine, or one we start.

`postgres_server()` returns the DSN of a server the tests may create databases on (an "admin" DSN), trying in order:
1. HOOKSCOPE_TEST_PG (a postgresql:// URL of a user that may CREATE DATABASE);
2. postgresql://postgres@127.0.0.1:5432/postgres when it answers without a password (the project's machines);
3. a private server of our own: Debian's `initdb` + `pg_ctl` (/usr/lib/postgresql/*/bin, else PATH) in a temporary
   directory, on a free port, stopped and deleted when this process exits. As root (CI) it runs as the `postgres`
   system user, because PostgreSQL refuses to run as root.
The answer (or the reason none was found) is kept for the life of the process, so a test run starts at most one
server per process; under pytest-xdist each worker starts its own (no lock to share, no last-one-out to agree on).

`create_database(admin)` / `drop_database(dsn)` make the fresh databases the `pg_dsn` fixture (tests/conftest.py)
hands out; `postgres_or_skip()` turns "no server" into a skip, or into a failure under HOOKSCOPE_REQUIRE_POSTGRES=1
(CI), where PostgreSQL tests must never skip.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import functools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from tests.support import free_port

LOCAL_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
# Database names this module creates start with this, so a leftover from a killed run is easy to recognise.
DB_PREFIX = "hookscope_t_"
SYSTEM_USER = "postgres"

T = TypeVar("T")


class PostgresUnavailable(Exception):
    """No PostgreSQL server could be found or started; the message says what was tried."""


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to completion from synchronous code, also while an event loop runs in this thread (an async
    fixture or test calling a sync helper): in a thread of its own, with a loop of its own."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _answers(dsn: str) -> str | None:
    """None when `dsn` accepts a connection and a query, else why not."""
    try:
        conn = await asyncpg.connect(dsn, timeout=5)
    except Exception as exc:  # refused, timed out, authentication, unknown database: all mean "not this one"
        return f"{type(exc).__name__}: {exc}"
    try:
        await conn.fetchval("SELECT 1")
    finally:
        await conn.close()
    return None


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def find_binaries() -> Path | None:
    """The directory holding `initdb` and `pg_ctl`: the newest /usr/lib/postgresql/<version>/bin (Debian keeps
    them out of PATH), else wherever PATH has them; None when there are none."""
    versions = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").exists() and (p / "pg_ctl").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if versions:
        return versions[-1]
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl and Path(initdb).resolve().parent == Path(pg_ctl).resolve().parent:
        return Path(initdb).resolve().parent
    return None


@dataclass
class PrivateServer:
    """A throwaway PostgreSQL cluster of this process: trust authentication, 127.0.0.1 only."""

    directory: Path
    bin_dir: Path
    port: int
    run_as: str | None  # the system user it runs as when we are root, else None (ourselves)

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def _command(self, *argv: str) -> list[str]:
        cmd = [str(self.bin_dir / argv[0]), *argv[1:]]
        return ["runuser", "-u", self.run_as, "--", *cmd] if self.run_as else cmd

    def stop(self) -> None:
        """Stop the server (immediate: nothing in it is worth a checkpoint) and delete its files. Idempotent."""
        if self.data.exists():
            subprocess.run(self._command("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w"),
                           capture_output=True, timeout=60)
        shutil.rmtree(self.directory, ignore_errors=True)


def start_private_server(*, port: int | None = None) -> PrivateServer:
    """initdb a cluster in a new temporary directory and start it on `port` (a free one by default); returns after
    it accepts connections. Raises PostgresUnavailable when there are no binaries or the server does not start
    (its log is in the message). The caller stops it."""
    bin_dir = find_binaries()
    if bin_dir is None:
        raise PostgresUnavailable("no initdb/pg_ctl (install Debian's `postgresql` package)")
    run_as: str | None = None
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            raise PostgresUnavailable(
                f"running as root, and PostgreSQL refuses root: no `{SYSTEM_USER}` system user to run it as"
            ) from None
        run_as = SYSTEM_USER
    # Under the system temp directory, not pytest's tmp_path: as root that sits in a 0700 directory the
    # `postgres` user could not enter.
    directory = Path(tempfile.mkdtemp(prefix="hookscope-pg-"))
    if run_as:
        os.chown(directory, account.pw_uid, account.pw_gid)
    server = PrivateServer(directory, bin_dir, port or free_port(), run_as)
    try:
        _initdb_and_start(server)
    except BaseException:
        server.stop()
        raise
    return server


def _initdb_and_start(server: PrivateServer) -> None:
    def run(*argv: str) -> None:
        result = subprocess.run(server._command(*argv), capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            log = server.directory / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise PostgresUnavailable(f"{argv[0]} failed ({result.returncode}): {result.stderr.strip()}\n{tail}")

    # --no-sync and fsync=off: the cluster is deleted when the tests end, so a power loss cannot matter, and
    # skipping the flushes makes initdb and every commit fast. synchronous_commit still has its meaning for the
    # code under test (it waits for the WAL write; only the flush is a no-op).
    run("initdb", "-D", str(server.data), "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C",
        "--no-sync", "--no-instructions")
    options = " ".join([
        f"-p {server.port}", "-c listen_addresses=127.0.0.1", f"-c unix_socket_directories={server.directory}",
        "-c fsync=off", "-c full_page_writes=off", "-c max_connections=300",
    ])
    run("pg_ctl", "start", "-D", str(server.data), "-l", str(server.directory / "server.log"), "-o", options, "-w",
        "-t", "60")


@functools.cache
def _discover() -> str | PostgresUnavailable:
    """The admin DSN, or why there is none; computed once per process (see the module docstring)."""
    given = os.environ.get("HOOKSCOPE_TEST_PG")
    if given:
        reason = run_sync(_answers(given))
        return PostgresUnavailable(f"HOOKSCOPE_TEST_PG does not answer: {reason}") if reason else given
    tried: list[str] = []
    if _port_open("127.0.0.1", 5432):
        reason = run_sync(_answers(LOCAL_DSN))
        if reason is None:
            return LOCAL_DSN
        tried.append(f"127.0.0.1:5432 as postgres without a password: {reason}")
    else:
        tried.append("nothing listens on 127.0.0.1:5432")
    try:
        server = start_private_server()
    except PostgresUnavailable as exc:
        return PostgresUnavailable("; ".join([*tried, f"could not start one: {exc}"]))
    atexit.register(server.stop)
    return server.dsn


def postgres_server() -> str:
    """The DSN of a running PostgreSQL server whose user may create databases. Raises PostgresUnavailable."""
    found = _discover()
    if isinstance(found, PostgresUnavailable):
        raise found
    return found


def required() -> bool:
    """HOOKSCOPE_REQUIRE_POSTGRES=1 (CI): a missing server fails the tests instead of skipping them."""
    return os.environ.get("HOOKSCOPE_REQUIRE_POSTGRES") == "1"


def postgres_or_skip() -> str:
    """postgres_server(), or skip the calling test (fail it when PostgreSQL is required)."""
    try:
        return postgres_server()
    except PostgresUnavailable as exc:
        if required():
            pytest.fail(f"PostgreSQL is required (HOOKSCOPE_REQUIRE_POSTGRES=1) but unavailable: {exc}")
        pytest.skip(f"no PostgreSQL server: {exc}")


def with_database(dsn: str, name: str) -> str:
    """`dsn` naming database `name` instead (URL form only)."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + name))


def database_of(dsn: str) -> str:
    return urlsplit(dsn).path.lstrip("/")


async def create_database_async(admin: str, *, template: str | None = None) -> str:
    """CREATE a database with a new unique name (copying `template` when given); returns its DSN."""
    name = f"{DB_PREFIX}{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(admin, timeout=10)
    try:
        # Identifiers cannot be parameters; both names are ours (hex or a test's constant), quoted anyway.
        sql = f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")
        await conn.execute(sql)
    finally:
        await conn.close()
    return with_database(admin, name)


async def drop_database_async(dsn: str) -> None:
    """DROP the database `dsn` names, disconnecting whoever is still in it (a server a test left running)."""
    conn = await asyncpg.connect(with_database(dsn, database_of(postgres_server())), timeout=10)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{database_of(dsn)}" WITH (FORCE)')
    finally:
        await conn.close()


def create_database(admin: str, *, template: str | None = None) -> str:
    return run_sync(create_database_async(admin, template=template))


def drop_database(dsn: str) -> None:
    run_sync(drop_database_async(dsn))
