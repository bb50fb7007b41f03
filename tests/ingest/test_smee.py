"""smee.io compatibility: the real smee-client from npm against hookscope's SSE stream."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
from pathlib import Path

import httpx

from app.ingest.smee import smee_payload
from app.models import CapturedRequest
from app.settings import Settings
from tests.delivery.target import RecordingTarget
from tests.support import LOCAL_TLS, LiveServer, create_endpoint, live_server, wait_until


class TcpProxy:
    """Loopback TCP relay that a test can cut (and keep cut) to force an EventSource to reconnect."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.blocked = False
        self.connections = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.cut()
        assert self._server is not None
        self._server.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def cut(self) -> None:
        for w in list(self._writers):
            w.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.blocked:
            writer.close()
            return
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self._writers.update({writer, up_writer})

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        tasks = [asyncio.create_task(pipe(reader, up_writer)), asyncio.create_task(pipe(up_reader, writer))]
        self._tasks.update(tasks)
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.difference_update(tasks)
        self._writers.difference_update({writer, up_writer})


def test_payload_has_smee_shape() -> None:
    req = CapturedRequest(
        id=7, seq=7, endpoint_id="e", received_at=1700000000.5, method="POST", path="", query="a=1&b=2&b=3",
        headers=(("host", "x"), ("content-type", "application/json"), ("x-dup", "1"), ("x-dup", "2"),
                 ("connection", "close"), ("content-length", "9")),
        body_size=9, content_type="application/json", client=None, http_version="1.1", rejected=None,
    )
    data = smee_payload(req, b'{"k": [1]}')
    assert data == {"content-type": "application/json", "x-dup": "1, 2", "body": {"k": [1]},
                    "query": {"a": "1", "b": ["2", "3"]}, "timestamp": 1700000000500}


async def test_stream_needs_the_token_when_one_is_set(tmp_path: Path) -> None:
    settings = Settings(db=tmp_path / "h.db", janitor_interval=3600, token="tok")
    async with live_server(settings) as srv, srv.client(headers={"Authorization": "Bearer tok"}) as client:
        ep = await create_endpoint(client)
        sse = {"Accept": "text/event-stream"}
        async with httpx.AsyncClient(base_url=srv.url, trust_env=False, verify=LOCAL_TLS) as anon:
            assert (await anon.get(f"/h/{ep['id']}", headers=sse)).status_code == 401
            async with anon.stream("GET", f"/h/{ep['id']}?token=tok", headers=sse) as resp:
                assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
                lines = resp.aiter_lines()
                assert [await anext(lines) for _ in range(4)] == ["retry: 1000", "", "event: ready", "data: {}"]
                rid = (await client.post(f"/h/{ep['id']}/p?x=1", json={"a": 1})).headers["x-hookscope-request-id"]
                got = [await anext(lines) for _ in range(3)]
                assert got[1] == f"id: {rid}" or got[0] == f"id: {rid}"
                data = json.loads(next(line for line in got if line.startswith("data: "))[6:])
                assert data["body"] == {"a": 1} and data["query"] == {"x": "1"}


async def test_smee_client_forwards_and_catches_up(
    smee_bin: Path, server: LiveServer, client: httpx.AsyncClient, target: RecordingTarget, tmp_path: Path
) -> None:
    ep = await create_endpoint(client)
    proxy = TcpProxy(server.port)
    await proxy.start()
    log = tmp_path / "smee.log"
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: ASYNC220 (a long-running child; starting it takes no time)
            ["node", str(smee_bin), "--url", f"http://127.0.0.1:{proxy.port}/h/{ep['id']}",
             "--target", f"{target.url}/smee"],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )
    try:
        await wait_until(lambda: "Connected" in log.read_text(), timeout=30)
        resp = await client.post(f"/h/{ep['id']}?a=1", json={"action": "opened", "n": 1},
                                 headers={"x-github-event": "push"})
        assert resp.status_code == 200
        await wait_until(lambda: target.count >= 1, timeout=20)
        first = target.received[0]
        assert first.method == b"POST" and first.target == b"/smee?a=1"
        assert json.loads(first.body) == {"action": "opened", "n": 1}
        assert first.header(b"x-github-event") == b"push"
        assert first.header(b"content-type") == b"application/json"

        # Cut the stream and keep it cut while more requests arrive; the reconnect sends Last-Event-ID.
        proxy.blocked = True
        proxy.cut()
        for n in (2, 3, 4):
            await client.post(f"/h/{ep['id']}", json={"n": n})
        proxy.blocked = False
        await wait_until(lambda: target.count >= 4, timeout=30)
        assert [json.loads(r.body)["n"] for r in target.received] == [1, 2, 3, 4]
        assert proxy.connections >= 2
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 10)
        await proxy.stop()


SSE = {"Accept": "text/event-stream"}


async def test_last_event_id_beyond_the_newest_resets_then_streams(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    ep = await create_endpoint(client)
    first = (await client.post(f"/h/{ep['id']}", content=b"a")).json()["request_id"]
    async with client.stream("GET", f"/h/{ep['id']}", headers={**SSE, "Last-Event-ID": str(10**12)}) as resp:
        assert resp.status_code == 200
        lines = resp.aiter_lines()
        opening = [await anext(lines) for _ in range(9)]
        assert opening == ["retry: 1000", "", "event: ready", "data: {}", "",
                           f"id: {first}", "event: reset", f'data: {{"last_id": {first}}}', ""]
        rid = (await client.post(f"/h/{ep['id']}", content=b"b")).json()["request_id"]
        assert await anext(lines) == f"id: {rid}"
    # A reconnect with the id the reset gave resumes exactly, without another reset.
    async with client.stream("GET", f"/h/{ep['id']}", headers={**SSE, "Last-Event-ID": str(first)}) as resp:
        lines = resp.aiter_lines()
        assert [await anext(lines) for _ in range(6)][-1] == f"id: {rid}"


async def test_unusable_last_event_id_is_400_json(server: LiveServer, client: httpx.AsyncClient) -> None:
    ep = await create_endpoint(client)
    bad: list[list[tuple[bytes, bytes]]] = [
        [(b"last-event-id", value)]
        for value in (b"abc", b"1" * 20, str(2**63).encode(), b"-1", b"1.5", b"\xb2", b"0x10", b"1 2")
    ]
    bad.append([(b"last-event-id", b"1"), (b"last-event-id", b"2")])
    for headers in bad:
        resp = await client.get(f"/h/{ep['id']}", headers=[(b"accept", b"text/event-stream"), *headers])
        assert resp.status_code == 400, (headers, resp.text)
        assert resp.json()["error"]["code"] == "invalid_last_event_id"
    # The largest id there can be is still an id: beyond the newest, so a reset.
    async with client.stream("GET", f"/h/{ep['id']}", headers={**SSE, "Last-Event-ID": str(2**63 - 1)}) as resp:
        assert resp.status_code == 200
        lines = resp.aiter_lines()
        assert "event: reset" in [await anext(lines) for _ in range(9)]
