"""Copy as curl, end to end: the command the page gives is run with the real curl binary against the same server,
and the second capture must equal the first byte for byte (method, path, query, headers in order with duplicates,
body). No header is ignored in the comparison: Host is the same server's, and the command passes every captured
header (Content-Length, User-Agent, Accept...) and suppresses curl's own defaults."""

from __future__ import annotations

import http.client
import shutil
import subprocess
from typing import Any

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.support import LOCAL_TLS
from tests.ui.conftest import Inspector, Watch

CURL = shutil.which("curl") or "/usr/bin/curl"
pytestmark = pytest.mark.skipif(not shutil.which("bash") or not shutil.which(CURL), reason="needs bash and curl")

# Nothing is necessarily different when curl re-sends to the same server: compare every header.
IGNORED_HEADERS: set[str] = set()


def send_raw(
    inspector: Inspector, method: str, target: str, headers: list[tuple[bytes, bytes]], body: bytes = b""
) -> int:
    """Exact control over path, header order and bytes (httpx would normalise some of them)."""
    conn = http.client.HTTPConnection("127.0.0.1", inspector.server.port, timeout=30)
    try:
        conn.putrequest(method, f"/h/{inspector.endpoint['id']}{target}", skip_host=True, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        conn.endheaders(body or None)
        resp = conn.getresponse()
        resp.read()
        assert resp.status < 300
        return int(resp.headers["x-hookscope-request-id"])
    finally:
        conn.close()


def curl_command(page: Page, inspector: Inspector, rid: int) -> str:
    inspector.open(page, rid)
    page.locator("#detail-main .copy-curl").click()
    area = page.locator("#detail-main .curl-command")
    expect(area).to_be_visible()
    command: str = area.input_value()
    return command


def newest_id(inspector: Inspector) -> int:
    data = httpx.get(
        f"{inspector.server.url}/api/endpoints/{inspector.endpoint['id']}/requests?limit=1",
            trust_env=False, verify=LOCAL_TLS
    ).json()
    return int(data["requests"][0]["id"])


def shape(inspector: Inspector, rid: int) -> dict[str, Any]:
    req = inspector.get(rid)
    return {
        "method": req["method"],
        "path": req["path"],
        "query": req["query"],
        "headers": [h for h in req["headers"] if h[0] not in IGNORED_HEADERS],
        "headers_latin1": req["headers_latin1"],
        "http_version": req["http_version"],
        "body": inspector.raw(rid),
    }


def replay_matches(page: Page, inspector: Inspector, rid: int) -> str:
    command = curl_command(page, inspector, rid)
    before = newest_id(inspector)
    done = subprocess.run(["bash", "-c", command], capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr.decode()
    again = newest_id(inspector)
    assert again == before + 1, command
    assert shape(inspector, again) == shape(inspector, rid), command
    return command


def test_json_and_binary_bodies(page: Page, inspector: Inspector, watch: Watch) -> None:
    rid = inspector.send(headers=[("content-type", "application/json")], body=b'{"it\'s": "a \\"test\\"", "n": 1}')
    command = replay_matches(page, inspector, rid)
    assert "--data-binary '{\"it'\\''s\"" in command
    rid = send_raw(
        inspector,
        "PUT",
        "/bin",
        [(b"Host", b"h"), (b"Content-Type", b"application/octet-stream"), (b"Content-Length", b"512")],
        bytes(range(256)) + bytes(reversed(range(256))),
    )
    command = replay_matches(page, inspector, rid)
    assert command.startswith("printf '")
    # A UTF-8 body with control characters and a body starting with "@" (which --data-binary reads as a file).
    rid = inspector.send(headers=[("content-type", "text/plain")], body="ü\r\nNUL\x00\x1b[31m %s %% \\n".encode())
    replay_matches(page, inspector, rid)
    rid = inspector.send(body=b"@/etc/passwd")
    assert "--data-raw '@/etc/passwd'" in replay_matches(page, inspector, rid)
    watch.assert_clean()


def test_headers_paths_and_queries(page: Page, inspector: Inspector, watch: Watch) -> None:
    rid = send_raw(
        inspector,
        "POST",
        "/odd/a%2Fb/it's/%7E%20x/../dot?list[]=1&obj{a}=b&q='x'&pct=%25%zz",
        [
            (b"Host", b"example.test:1"),
            (b"X-Dup", b"one"),
            (b"X-Quote", b"it's  got 'quotes' and  spaces "),
            (b"X-Dup", b"two"),
            (b"X-Empty", b""),
            (b"X-Latin1", b"caf\xe9 \\ '\xff"),
            (b"Content-Type", b"text/plain; charset=utf-8"),
            (b"Content-Length", b"5"),
            (b"X-Dup", b"three"),
        ],
        b"hello",
    )
    command = replay_matches(page, inspector, rid)
    assert "--path-as-is -g" in command
    assert "-H 'x-dup: one'" in command and "-H 'x-empty;'" in command
    # Methods: GET and HEAD without body, DELETE with an explicit empty body, a custom token, GET with a body.
    for method, headers, body in [
        ("GET", [(b"Host", b"h"), (b"Accept", b"*/*")], b""),
        ("HEAD", [(b"Host", b"h")], b""),
        ("DELETE", [(b"Host", b"h"), (b"Content-Length", b"0")], b""),
        ("PATCH", [(b"Host", b"h"), (b"Content-Length", b"2")], b"{}"),
        ("GET", [(b"Host", b"h"), (b"Content-Length", b"3")], b"abc"),
    ]:
        rid = send_raw(inspector, method, "/m", headers, body)
        replay_matches(page, inspector, rid)
    watch.assert_clean()


def test_large_body_is_piped_from_raw(page: Page, inspector: Inspector, watch: Watch) -> None:
    body = bytes(range(256)) * 1200  # 300 KiB: over the inline limit and over the preview
    rid = inspector.send(headers=[("content-type", "application/octet-stream")], body=body)
    command = replay_matches(page, inspector, rid)
    assert f"/api/requests/{rid}/raw" in command and "--data-binary @-" in command
    watch.assert_clean()


def test_copy_writes_the_clipboard(context: BrowserContext, page: Page, inspector: Inspector, watch: Watch) -> None:
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=inspector.server.url)
    rid = inspector.send(headers=[("content-type", "application/json")], body=b'{"a": 1}')
    command = curl_command(page, inspector, rid)
    page.wait_for_function("expected => navigator.clipboard.readText().then(t => t === expected)", arg=command)
    assert command.startswith("curl --path-as-is -g ")
    watch.assert_clean()
