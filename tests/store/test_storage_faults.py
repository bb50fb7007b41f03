"""Storage faults, against real servers and real filesystem conditions: one server per database (the lock),
a lost body file, a full or read-only bodies directory, a full or read-only database.

Faults come from the kernel, not from mocks: a tmpfs of a few MiB filled to the last page, a read-only
remount, an immutable (chattr +i) database file. Those need root (tests here run as root); elsewhere the
tests that need them are skipped, unless HOOKSCOPE_REQUIRE_ROOT_FS=1 (set by .ci/run) makes that a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.main import create_app
from app.settings import Settings
from app.store.errors import DatabaseLocked, StorageUnavailable
from tests.support import LOCAL_TLS, REPO, ServerProcess, create_endpoint, free_port, live_server, wait_until

MIB = 1024 * 1024


def _bodies_dir(db: Path) -> Path:
    return Path(str(db) + ".bodies")


def _body_files(db: Path) -> list[str]:
    return sorted(p.name for p in _bodies_dir(db).iterdir())


def _big(seed: str, size: int = MIB) -> bytes:
    block = hashlib.sha256(seed.encode()).digest()
    return (block * (size // len(block) + 1))[:size]


def _unavailable(reason: str) -> None:
    if os.environ.get("HOOKSCOPE_REQUIRE_ROOT_FS") == "1":
        pytest.fail(f"storage-fault tests required but {reason}")
    pytest.skip(reason)


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30)


@pytest.fixture
def mounts() -> Iterator[Callable[[Path, str], None]]:
    """mounts(dir, size): a tmpfs of that size on dir, unmounted after the test (skips without privileges)."""
    mounted: list[Path] = []

    def mount(where: Path, size: str) -> None:
        where.mkdir(parents=True, exist_ok=True)
        result = _run("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where))
        if result.returncode != 0:
            _unavailable(f"cannot mount a tmpfs here: {result.stderr.strip()}")
        mounted.append(where)

    yield mount
    for where in reversed(mounted):
        _run("umount", "-l", str(where))


def _remount(where: Path, mode: str) -> None:
    result = _run("mount", "-o", f"remount,{mode}", str(where))
    assert result.returncode == 0, result.stderr


def _fill(directory: Path) -> Path:
    """Fill the filesystem holding `directory` to the last byte; returns the filler file."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as f:
        for block in (64 * 1024, 4096, 1):
            while True:
                try:
                    f.write(b"\0" * block)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break
    return filler


@contextlib.contextmanager
def _immutable(path: Path) -> Iterator[None]:
    result = _run("chattr", "+i", str(path))
    if result.returncode != 0:
        _unavailable(f"chattr +i does not work here: {result.stderr.strip()}")
    try:
        yield
    finally:
        _run("chattr", "-i", str(path))


def _serve(db: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--port", str(port), "--db", str(db)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


async def _exit_of(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> tuple[int, str]:
    """Wait for a server that should refuse to start; returns (status, stderr)."""
    try:
        _, err = await asyncio.to_thread(proc.communicate, timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError("the server did not exit") from None
    return proc.returncode, err.decode()


async def _json(resp: httpx.Response) -> Any:
    assert resp.headers["content-type"].startswith("application/json"), resp.text
    return resp.json()


# one server per database -------------------------------------------------------------------------------------


async def test_second_server_refused_while_the_first_stores_a_large_upload(tmp_path: Path) -> None:
    """The bug: a second server's start-up sweep deleted the first one's in-flight body file, which the first then
    acknowledged. Now the second exits at once naming the database and the holder; the upload is stored intact."""
    db = tmp_path / "one.db"
    body = _big("in-flight", 3 * MIB)
    with ServerProcess(db) as first:
        async with httpx.AsyncClient(base_url=first.url, trust_env=False, verify=LOCAL_TLS, timeout=60) as client:
            ep = (await create_endpoint(client))["id"]
            resume = asyncio.Event()
            half = len(body) // 2

            async def slowly() -> AsyncIterator[bytes]:
                for at in range(0, half, 64 * 1024):
                    yield body[at : min(at + 64 * 1024, half)]
                await resume.wait()  # the rest only after the second server has come and gone
                for at in range(half, len(body), 64 * 1024):
                    yield body[at : at + 64 * 1024]

            upload = asyncio.create_task(client.post(f"/h/{ep}", content=slowly()))
            try:
                # The first half is over the spill threshold: the body file exists before the second starts.
                await wait_until(lambda: any(n.endswith(".body") for n in _body_files(db)), timeout=30)
                status, err = await _exit_of(_serve(db, free_port()))
                assert status == 1, err
                assert str(db) in err and f"pid {first.pid}" in err, err
                assert "Traceback" not in err
                assert any(n.endswith(".body") for n in _body_files(db))
            finally:
                resume.set()
                resp = await upload
            assert resp.status_code == 200, resp.text
            rid = resp.headers["x-hookscope-request-id"]
            raw = await client.get(f"/api/requests/{rid}/raw")
            assert raw.status_code == 200 and raw.content == body
            meta = await client.get(f"/api/requests/{rid}", params={"max_body": 0})
            assert meta.status_code == 200 and meta.json()["body_size"] == len(body)
            assert (tmp_path / "one.db.lock").read_text().strip() == str(first.pid)

        first.kill9()  # the kernel drops the flock with the process: no stale lock
        with ServerProcess(db) as again:
            async with httpx.AsyncClient(base_url=again.url, trust_env=False, verify=LOCAL_TLS, timeout=60) as client:
                raw = await client.get(f"/api/requests/{rid}/raw")
                assert raw.status_code == 200 and raw.content == body
            assert (tmp_path / "one.db.lock").read_text().strip() == str(again.pid)


async def test_two_app_lifespans_on_one_database(tmp_path: Path) -> None:
    """In-process servers (no CLI) take the lock in the store's open(): the second fails clearly, and the
    database can be used again once the first has shut down."""
    settings = Settings(db=tmp_path / "two.db", janitor_interval=3600)
    first, second = create_app(settings), create_app(settings)
    async with first.web.router.lifespan_context(first.web):
        with pytest.raises(DatabaseLocked) as refused:
            async with second.web.router.lifespan_context(second.web):
                raise AssertionError("a second store opened a locked database")
        assert str(settings.db) in str(refused.value) and f"pid {os.getpid()}" in str(refused.value)
        assert refused.value.holder == os.getpid()
    async with second.web.router.lifespan_context(second.web):
        assert await second.services.store.list_endpoints() == []


# a lost body file ---------------------------------------------------------------------------------------------


class GateTarget:
    """A forward target that holds its first answer until `gate` is set (one request at a time, keep-alive)."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.bodies: list[bytes] = []
        self._server: asyncio.Server | None = None
        self.url = ""

    async def __aenter__(self) -> GateTarget:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                self.bodies.append(await reader.readexactly(length))
                await self.gate.wait()
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
        writer.close()


async def _final_delivery(client: httpx.AsyncClient, rid: int) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    async def poll() -> None:
        while not found:
            rows = (await client.get(f"/api/requests/{rid}/deliveries")).json()["deliveries"]
            found.extend(r for r in rows if r["state"] != "pending")
            if not found:
                await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), 20)
    return found[0]


async def test_missing_body_file_is_a_clear_error_and_a_failed_delivery(tmp_path: Path) -> None:
    settings = Settings(db=tmp_path / "lost.db", janitor_interval=3600)
    async with GateTarget() as target, live_server(settings) as srv, srv.client() as client:
        ep = (await create_endpoint(client, forward_targets=[target.url + "/in"]))["id"]
        # The worker sends the first capture and waits on the gate, so the large one is still to be delivered
        # when its file disappears.
        first = await client.post(f"/h/{ep}", content=b"first")
        await wait_until(lambda: len(target.bodies) == 1)
        body = _big("lost", MIB)
        resp = await client.post(f"/h/{ep}/big", content=body)
        assert resp.status_code == 200
        rid = int(resp.headers["x-hookscope-request-id"])
        (name,) = [n for n in _body_files(settings.db) if n.endswith(".body")]
        (_bodies_dir(settings.db) / name).unlink()  # by hand, or lost to disk trouble

        for url, params in ((f"/api/requests/{rid}", {}), (f"/api/requests/{rid}", {"max_body": 100}),
                            (f"/api/requests/{rid}/raw", {})):
            got = await client.get(url, params=params)
            assert got.status_code == 500, url
            error = (await _json(got))["error"]
            assert error["code"] == "body_missing" and f"request {rid}" in error["message"]
            assert "missing" in error["message"]

        target.gate.set()
        assert (await _final_delivery(client, int(first.headers["x-hookscope-request-id"])))["state"] == "delivered"
        failed = await _final_delivery(client, rid)
        assert failed["state"] == "failed" and "body file is missing" in failed["error"]
        # The worker moved on: the next capture is delivered.
        after = await client.post(f"/h/{ep}", content=b"after")
        assert (await _final_delivery(client, int(after.headers["x-hookscope-request-id"])))["state"] == "delivered"
        assert target.bodies == [b"first", b"after"]
        assert (await client.get("/healthz")).status_code == 200  # a lost file is not a failing disk


async def test_truncated_body_file_is_an_error_not_a_cut_off_200(tmp_path: Path) -> None:
    settings = Settings(db=tmp_path / "cut.db", janitor_interval=3600)
    async with live_server(settings) as srv, srv.client() as client:
        ep = (await create_endpoint(client))["id"]
        resp = await client.post(f"/h/{ep}", content=_big("cut", MIB))
        rid = resp.headers["x-hookscope-request-id"]
        (name,) = _body_files(settings.db)
        os.truncate(_bodies_dir(settings.db) / name, 1000)
        got = await client.get(f"/api/requests/{rid}/raw")
        assert got.status_code == 500 and (await _json(got))["error"]["code"] == "body_missing"
        assert "1000 bytes" in got.json()["error"]["message"]


# a full or read-only bodies directory --------------------------------------------------------------------------


async def test_full_then_read_only_bodies_directory(tmp_path: Path, mounts: Callable[[Path, str], None]) -> None:
    db = tmp_path / "b.db"
    bodies = _bodies_dir(db)
    mounts(bodies, "2m")
    settings = Settings(db=db, janitor_interval=3600)
    big = _big("big", MIB)
    async with live_server(settings) as srv, srv.client() as client:
        ep = (await create_endpoint(client))["id"]
        assert (await client.get("/healthz")).json() == {"ok": True}

        filler = _fill(bodies)
        resp = await client.post(f"/h/{ep}", content=big)
        assert resp.status_code == 500
        assert (await _json(resp))["error"]["code"] == "store_failed"
        assert _body_files(db) == ["filler"]  # the partial body file is gone
        assert (await client.get(f"/api/endpoints/{ep}/requests")).json()["requests"] == []
        health = await client.get("/healthz")
        assert health.status_code == 503
        assert health.json()["ok"] is False and "No space left on device" in health.json()["reason"]
        small = await client.post(f"/h/{ep}", content=b"inline bodies live in SQLite")
        assert small.status_code == 200

        filler.unlink()
        health = await client.get("/healthz")
        assert health.status_code == 200 and health.json() == {"ok": True}
        resp = await client.post(f"/h/{ep}", content=big)
        assert resp.status_code == 200
        stored = resp.headers["x-hookscope-request-id"]

        _remount(bodies, "ro")
        resp = await client.post(f"/h/{ep}", content=_big("refused", MIB))
        assert resp.status_code == 500 and (await _json(resp))["error"]["code"] == "store_failed"
        health = await client.get("/healthz")
        assert health.status_code == 503 and "Read-only file system" in health.json()["reason"]
        assert (await client.get(f"/api/requests/{stored}/raw")).content == big  # reads still work
        listed = (await client.get(f"/api/endpoints/{ep}/requests")).json()["requests"]
        assert len(listed) == 2

        _remount(bodies, "rw")
        assert (await client.get("/healthz")).status_code == 200
        assert len(_body_files(db)) == 1


# a full or read-only database ---------------------------------------------------------------------------------


async def test_full_database_disk_reports_unhealthy_until_space_returns(
    tmp_path: Path, mounts: Callable[[Path, str], None]
) -> None:
    disk = tmp_path / "disk"
    mounts(disk, "8m")
    settings = Settings(db=disk / "d.db", janitor_interval=3600)
    async with live_server(settings) as srv, srv.client() as client:
        ep = (await create_endpoint(client))["id"]
        filler = _fill(disk)
        # Under the spill threshold, so the body goes to SQLite, whose WAL cannot grow.
        resp = await client.post(f"/h/{ep}", content=_big("inline", 200 * 1024))
        assert resp.status_code == 500 and (await _json(resp))["error"]["code"] == "store_failed"
        health = await client.get("/healthz")
        assert health.status_code == 503 and "database or disk is full" in health.json()["reason"]

        filler.unlink()
        health = await client.get("/healthz")  # the health check's own write probe succeeds now
        assert health.status_code == 200 and health.json() == {"ok": True}
        resp = await client.post(f"/h/{ep}", content=b"fits again")
        assert resp.status_code == 200
        assert len((await client.get(f"/api/endpoints/{ep}/requests")).json()["requests"]) == 1


async def test_read_only_database_file_refuses_to_start(tmp_path: Path) -> None:
    db = tmp_path / "ro.db"
    with ServerProcess(db):
        pass  # a real database with its schema
    with _immutable(db):
        status, err = await _exit_of(_serve(db, free_port()))
        assert status == 1, err
        assert f"database {db} is not writable" in err and "readonly" in err, err
        assert "Traceback" not in err
        # In-process servers refuse in the lifespan, with the same message.
        app = create_app(Settings(db=db, janitor_interval=3600))
        with pytest.raises(StorageUnavailable, match="is not writable"):
            async with app.web.router.lifespan_context(app.web):
                raise AssertionError("started on a read-only database")
    # Not left locked by the refusal.
    with ServerProcess(db) as srv:
        async with httpx.AsyncClient(base_url=srv.url, trust_env=False, verify=LOCAL_TLS) as client:
            assert (await client.get("/healthz")).json() == {"ok": True}


async def test_read_only_directory_refuses_to_start(tmp_path: Path, mounts: Callable[[Path, str], None]) -> None:
    disk = tmp_path / "disk"
    mounts(disk, "4m")
    db = disk / "r.db"
    with ServerProcess(db):
        pass
    _remount(disk, "ro")
    status, err = await _exit_of(_serve(db, free_port()))
    assert status == 1, err
    assert f"database {db}" in err and "Read-only file system" in err, err
    assert "Traceback" not in err
