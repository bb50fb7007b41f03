"""The outgoing HTTP/1.1 client against raw sockets on loopback: reuse, exact bytes, framing, no silent re-send."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.delivery.outgoing import Outgoing, build_outgoing, parse_target
from app.delivery.ssrf import ForwardPolicy, TargetRefused
from app.delivery.wire import HttpClient, ProtocolError
from tests.delivery.hostile_target import HostileTarget
from tests.support import wait_until


@pytest.fixture
async def hostile() -> AsyncIterator[HostileTarget]:
    async with HostileTarget() as t:
        yield t


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    client = HttpClient()
    yield client
    await client.aclose()


def _req(t: HostileTarget, case: str, method: str = "POST", body: bytes = b"hi") -> Outgoing:
    return build_outgoing(parse_target(f"{t.url}/{case}"), method, "", "", [("x-case", case)], body)


async def test_keep_alive_connection_is_reused(hostile: HostileTarget, http: HttpClient) -> None:
    for i in range(3):
        resp = await http.send(_req(hostile, "ok", body=str(i).encode()))
        assert resp.status == 200 and resp.body == f"ok {i}".encode() and resp.reason == "OK"
    assert [h.conn for h in hostile.hits] == [1, 1, 1] and [h.index for h in hostile.hits] == [1, 2, 3]


async def test_no_silent_resend_when_a_reused_connection_closes_after_reading(
    hostile: HostileTarget, http: HttpClient
) -> None:
    await http.send(_req(hostile, "ok"))
    # The target reads the second request on the same connection, then closes without answering. The client
    # cannot know whether it acted on it: a silent second copy would deliver a webhook twice.
    with pytest.raises(ProtocolError, match="closed the connection without answering"):
        await http.send(_req(hostile, "close"))
    assert hostile.count("close") == 1 and hostile.hits[1].conn == hostile.hits[0].conn
    resp = await http.send(_req(hostile, "ok"))  # the next request gets a fresh connection
    assert resp.status == 200 and hostile.hits[-1].conn == 2


async def test_a_connection_the_peer_closed_while_idle_is_not_written_to(
    hostile: HostileTarget, http: HttpClient
) -> None:
    await http.send(_req(hostile, "ok-then-close"))  # answered keep-alive, then the target closed it
    idle = http._idle[("http", "127.0.0.1", hostile.port)]
    await wait_until(lambda: all(c.reader.at_eof() for c in idle))
    resp = await http.send(_req(hostile, "ok"))
    assert resp.status == 200
    assert [(h.case, h.conn) for h in hostile.hits] == [("ok-then-close", 1), ("ok", 2)]


async def test_connections_idle_too_long_are_not_reused(hostile: HostileTarget) -> None:
    client = HttpClient(max_idle=-1.0)  # every idle connection counts as too old
    try:
        await client.send(_req(hostile, "ok"))
        await client.send(_req(hostile, "ok"))
    finally:
        await client.aclose()
    assert [h.conn for h in hostile.hits] == [1, 2]


async def test_request_head_is_written_byte_for_byte(hostile: HostileTarget, http: HttpClient) -> None:
    target = parse_target(f"{hostile.url}/ok")
    headers = [
        (b"Host", f"127.0.0.1:{hostile.port}".encode()),
        (b"X-Dup", b"1"),
        (b"x-dup", b"2"),
        (b"WeIrD-CaSe", b"caf\xe9 \t x"),
        (b"x-dup", b"3"),
        (b"content-length", b"4"),
    ]
    out = Outgoing(target, "PATCH", b"/ok?a=1&a=2&b=%2F", headers, b"\x00\xffab")
    resp = await http.send(out)
    assert resp.status == 200
    hit = hostile.hits[0]
    assert hit.raw_head == out.head_bytes() and hit.body == b"\x00\xffab"
    assert hit.raw_head == (
        b"PATCH /ok?a=1&a=2&b=%2F HTTP/1.1\r\nHost: 127.0.0.1:" + str(hostile.port).encode()
        + b"\r\nX-Dup: 1\r\nx-dup: 2\r\nWeIrD-CaSe: caf\xe9 \t x\r\nx-dup: 3\r\ncontent-length: 4\r\n\r\n"
    )


async def test_head_204_and_304_have_no_body(hostile: HostileTarget, http: HttpClient) -> None:
    # Each answer declares a length but sends no body; the client must not wait for one (it would hang, or take
    # the next answer's bytes for it), and the connection stays usable.
    head = await http.send(_req(hostile, "head-length", method="HEAD", body=b""))
    assert head.status == 200 and head.body == b"" and head.body_size == 0
    assert dict(head.headers)[b"content-length"] == b"5"
    for case, status in (("204", 204), ("304", 304)):
        resp = await http.send(_req(hostile, case))
        assert resp.status == status and resp.body == b"" and resp.body_size == 0
    ok = await http.send(_req(hostile, "ok"))
    assert ok.body == b"ok hi"
    assert {h.conn for h in hostile.hits} == {1}


async def test_chunked_body_with_extensions_and_trailers(hostile: HostileTarget, http: HttpClient) -> None:
    resp = await http.send(_req(hostile, "chunked-trailers"))
    assert resp.status == 200 and resp.body == b"hello world" and resp.body_size == 11
    assert (await http.send(_req(hostile, "ok"))).body == b"ok hi"
    assert {h.conn for h in hostile.hits} == {1}  # the trailers were consumed: the connection was reusable


async def test_close_delimited_body_and_connections_that_must_close(hostile: HostileTarget, http: HttpClient) -> None:
    resp = await http.send(_req(hostile, "close-delimited"))
    assert resp.body == b"body until close" and resp.body_size == 16
    for case in ("http10", "conn-close", "extra-bytes"):
        assert (await http.send(_req(hostile, case))).body == b"ok"
    await http.send(_req(hostile, "ok"))
    # None of these connections may be reused: closed by the target, HTTP/1.0, Connection: close, or a stray
    # byte after the answer that would be read as the start of the next one.
    assert [h.conn for h in hostile.hits] == [1, 2, 3, 4, 5]


async def test_keep_cap_and_body_size(hostile: HostileTarget, http: HttpClient) -> None:
    resp = await http.send(_req(hostile, "big"), keep=1000)
    assert resp.body == b"b" * 1000 and resp.body_size == 102400 and resp.truncated
    assert (await http.send(_req(hostile, "ok"))).status == 200
    assert {h.conn for h in hostile.hits} == {1}  # the rest was drained, not left in the socket


async def test_interim_answers_are_skipped(hostile: HostileTarget, http: HttpClient) -> None:
    resp = await http.send(_req(hostile, "interim"))
    assert resp.status == 200 and resp.body == b"ok"


async def test_connects_only_to_the_vetted_address(hostile: HostileTarget) -> None:
    looked_up: list[tuple[str, int]] = []

    async def lookup(host: str, port: int) -> list[str]:
        looked_up.append((host, port))
        return await ForwardPolicy.from_allow(["dev.invalid"]).resolve(host, port, fake_resolver)

    async def fake_resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]  # dev.invalid does not resolve for real: only the vetted answer can work

    client = HttpClient(lookup=lookup)
    try:
        out = build_outgoing(parse_target(f"http://dev.invalid:{hostile.port}/ok"), "POST", "", "", [], b"x")
        assert (await client.send(out)).status == 200
        assert looked_up == [("dev.invalid", hostile.port)]
        assert hostile.hits[0].raw_head.startswith(f"POST /ok HTTP/1.1\r\nhost: dev.invalid:{hostile.port}".encode())

        async def refuse(host: str, port: int) -> list[str]:
            raise TargetRefused("no")

        client.lookup = refuse
        await client.aclose()  # a pooled connection was vetted when it was opened; force a new lookup
        with pytest.raises(TargetRefused):
            await client.send(build_outgoing(parse_target(f"http://elsewhere.invalid:{hostile.port}/ok"),
                                             "POST", "", "", [], b"x"))
        assert len(hostile.hits) == 1
    finally:
        await client.aclose()
