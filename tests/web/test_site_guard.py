"""Cross-site requests and DNS rebinding (app/site_guard.py): the pure policy, then real servers on loopback."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
import websockets
from starlette.types import Message, Scope
from starlette.websockets import WebSocket

from app.settings import Settings
from app.web.security_headers import same_origin
from app.web.site_guard import SCOPE_KEY, SitePolicy, build_policy, parse_origin, split_host
from tests.delivery.target import Received, RecordingTarget
from tests.support import LiveServer, create_endpoint, live_server, raw_request, status_of

EVIL = "rebind.evil.example"
TOKEN = "s3cret-token"


# The pure policy -------------------------------------------------------------------------------------------------
def test_split_host_and_parse_origin() -> None:
    assert split_host("Example.COM:8080") == ("example.com", 8080)
    assert split_host("localhost.") == ("localhost", None)
    assert split_host("[::1]:80") == ("::1", 80)
    assert split_host("::1") == ("::1", None)
    for bad in ("", ":80", "a:b", "a:0", "a:70000", "[::1", "[::1]x", "a b", "u@h", "h/x"):
        assert split_host(bad) is None, bad
    assert parse_origin("HTTP://LocalHost:80") == ("http", "localhost", 80)
    assert parse_origin("https://h.example") == ("https", "h.example", 443)
    assert parse_origin("http://[::1]:8080") == ("http", "::1", 8080)
    for foreign in ("null", "", "file://", "chrome-extension://abc", "http://a http://b", "http://h/path",
                    "http://u@h", "http://127.0.0.1:8080.evil.example", "ws://127.0.0.1:8080"):
        assert parse_origin(foreign) is None, foreign


def test_policy_without_token_checks_hosts_and_builds_local_origins() -> None:
    p = build_policy("127.0.0.1", 8080, None, (), token_set=False)
    assert p.enforce_host and p.hosts == {"127.0.0.1", "localhost", "::1"}
    for host in ("127.0.0.1:8080", "LOCALHOST", "[::1]:9", "localhost.:1"):
        assert p.host_allowed(host), host
    assert not p.host_allowed(EVIL) and not p.host_allowed("127.0.0.1.nip.io") and not p.host_allowed("")
    assert p.host_allowed(None)  # HTTP/1.0 without Host: not a browser, so not a rebinding page
    for origin in ("http://127.0.0.1:8080", "https://localhost:8080", "http://[::1]:8080"):
        assert p.origin_allowed(origin, None), origin
    for origin in ("http://127.0.0.1", "http://127.0.0.1:8081", "http://evil.example:8080", "null"):
        assert not p.origin_allowed(origin, "127.0.0.1:8080"), origin
    # Rebinding: the page's Origin equals its Host, and that Host is not ours, so it lends nothing.
    assert not p.origin_allowed(f"http://{EVIL}:8080", f"{EVIL}:8080")
    # A tunnel or port mapping (localhost:9000 -> 8080): the page's origin is the allowed Host it was sent to...
    assert p.origin_allowed("http://localhost:9000", "localhost:9000")
    assert p.origin_allowed("http://localhost", "localhost")
    # ...but another local port is another site.
    assert not p.origin_allowed("http://localhost:3000", "localhost:9000")


def test_policy_public_url_and_allowed_hosts() -> None:
    p = build_policy("0.0.0.0", 8080, "https://Pub.example.com/base/", ("hooks.example.com", "alt.example:8443"),
                     token_set=True)
    assert p.enforce_host  # a token plus --allowed-host: the Host rule applies
    assert {"0.0.0.0", "pub.example.com", "hooks.example.com", "alt.example"} <= p.hosts
    assert p.host_allowed("alt.example:1") and p.host_allowed("HOOKS.example.com") and not p.host_allowed(EVIL)
    allowed = ("https://pub.example.com", "https://hooks.example.com", "http://hooks.example.com",
               "http://hooks.example.com:8080", "https://alt.example:8443", "http://0.0.0.0:8080")
    for origin in allowed:
        assert p.origin_allowed(origin, None), origin
    for origin in ("http://pub.example.com", "https://alt.example", "https://hooks.example.com:8443"):
        assert not p.origin_allowed(origin, None), origin
    with pytest.raises(ValueError, match="allowed-host"):
        build_policy("127.0.0.1", 8080, None, ("bad host",), token_set=False)
    with pytest.raises(ValueError, match="allowed-host"):
        build_policy("127.0.0.1", 8080, None, ("h:99999",), token_set=False)


def test_policy_with_token_and_no_allowed_host_leaves_host_alone() -> None:
    # Credentials defeat rebinding (the page cannot present our cookie or a bearer token); a proxy forwarding an
    # unlisted name keeps working. The page's origin is then whatever Host it was served under.
    p = SitePolicy.from_settings(Settings(token=TOKEN, host="0.0.0.0"))
    assert not p.enforce_host and p.host_allowed(EVIL)
    assert p.origin_allowed("http://192.168.1.5:8080", "192.168.1.5:8080")
    assert not p.origin_allowed("http://evil.example", "192.168.1.5:8080")


def _ws(headers: list[tuple[bytes, bytes]], policy: SitePolicy) -> WebSocket:
    scope: Scope = {"type": "websocket", "path": "/api/endpoints/x/live", "headers": headers, SCOPE_KEY: policy}

    async def nothing() -> Message:
        raise AssertionError("not used")

    async def drop(message: Message) -> None:
        raise AssertionError("not used")

    return WebSocket(scope, nothing, drop)


def test_websocket_origin_check_compares_with_allowed_origins_not_host() -> None:
    policy = build_policy("127.0.0.1", 8080, None, (), token_set=False)
    rebinding = [(b"host", f"{EVIL}:8080".encode()), (b"origin", f"http://{EVIL}:8080".encode())]
    assert not same_origin(_ws(rebinding, policy))
    own = [(b"host", b"127.0.0.1:8080"), (b"origin", b"http://127.0.0.1:8080")]
    assert same_origin(_ws(own, policy))
    assert not same_origin(_ws([*own, (b"sec-fetch-site", b"cross-site")], policy))
    assert same_origin(_ws([(b"host", b"127.0.0.1:8080")], policy))  # the relay CLI sends no Origin


# Real servers ----------------------------------------------------------------------------------------------------
@pytest.fixture
async def token_server(settings: Settings) -> AsyncIterator[LiveServer]:
    async with live_server(replace(settings, token=TOKEN)) as srv:
        yield srv


def _own(server: LiveServer) -> str:
    return f"http://127.0.0.1:{server.port}"


def _refused(resp: httpx.Response) -> None:
    assert resp.status_code == 403, resp.text
    assert resp.json()["error"]["code"] == "cross_site"


async def _capture(client: httpx.AsyncClient, endpoint_id: str, body: bytes = b"x") -> int:
    resp = await client.post(f"/h/{endpoint_id}", content=body)
    assert resp.status_code == 200
    rid: int = resp.json()["request_id"]
    return rid


async def test_cross_site_text_plain_replay_sends_and_stores_nothing(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    ep = await create_endpoint(client)
    rid = await _capture(client, ep["id"], b"captured")
    async with RecordingTarget() as target:
        # What a foreign page's fetch(..., {method: "POST", body: "...", mode: "no-cors"}) sends: no preflight.
        attack = json.dumps({"target": target.url + "/attack"})
        for headers in ({"origin": "http://evil.example"},
                        {"origin": "null"},
                        {"sec-fetch-site": "cross-site"},
                        {"origin": _own(server), "sec-fetch-site": "same-site"}):
            resp = await client.post(f"/api/requests/{rid}/replay", content=attack,
                                     headers={"content-type": "text/plain;charset=UTF-8", **headers})
            _refused(resp)
        assert (await client.get(f"/api/requests/{rid}/deliveries")).json()["deliveries"] == []
        assert (await client.get(f"/api/endpoints/{ep['id']}")).json().get("replay_target") is None
        # The same call from curl goes through; replay answers after sending, so the target's log is complete.
        resp = await client.post(f"/api/requests/{rid}/replay", content=json.dumps({"target": target.url + "/ok"}))
        assert resp.status_code == 201, resp.text
        assert [r.target for r in target.received] == [b"/ok"]
        assert len((await client.get(f"/api/requests/{rid}/deliveries")).json()["deliveries"]) == 1


@pytest.mark.parametrize("site", ["cross-site", "same-site", "Cross-Site"])
async def test_foreign_fetch_site_refused_on_every_state_change(
    server: LiveServer, client: httpx.AsyncClient, site: str
) -> None:
    ep = await create_endpoint(client, name="before")
    rid = await _capture(client, ep["id"])
    headers = {"sec-fetch-site": site, "origin": _own(server)}
    _refused(await client.post("/api/endpoints", json={"name": "x"}, headers=headers))
    _refused(await client.patch(f"/api/endpoints/{ep['id']}", json={"name": "after"}, headers=headers))
    _refused(await client.delete(f"/api/requests/{rid}", headers=headers))
    _refused(await client.delete(f"/api/endpoints/{ep['id']}", headers=headers))
    _refused(await client.post("/login", data={"token": "x"}, headers=headers))
    endpoints = (await client.get("/api/endpoints", headers=headers)).json()["endpoints"]  # reads stay open
    assert [(e["id"], e["name"]) for e in endpoints] == [(ep["id"], "before")]
    assert (await client.get(f"/api/requests/{rid}")).status_code == 200


async def test_own_pages_and_scripts_allowed(server: LiveServer, client: httpx.AsyncClient) -> None:
    port = server.port
    browser_like = [
        {"origin": _own(server), "sec-fetch-site": "same-origin"},
        {"origin": f"http://localhost:{port}", "sec-fetch-site": "same-origin"},
        {"origin": f"http://[::1]:{port}"},
        {"sec-fetch-site": "none"},  # typed into the address bar / a bookmark
    ]
    for headers in browser_like:
        ep = (await client.post("/api/endpoints", json={"name": "a"}, headers=headers))
        assert ep.status_code == 201, (headers, ep.text)
        eid = ep.json()["id"]
        assert (await client.patch(f"/api/endpoints/{eid}", json={"name": "b"}, headers=headers)).status_code == 200
        rid = await _capture(client, eid)
        assert (await client.delete(f"/api/requests/{rid}", headers=headers)).status_code == 204
        assert (await client.delete(f"/api/endpoints/{eid}", headers=headers)).status_code == 204
    # A tunnel or port mapping: the page is at localhost:9000 and its requests say so in Host and Origin.
    tunnel = {"host": "localhost:9000", "origin": "http://localhost:9000", "sec-fetch-site": "same-origin"}
    assert (await client.post("/api/endpoints", json={}, headers=tunnel)).status_code == 201
    # curl -d sends application/x-www-form-urlencoded; the JSON API reads the body as JSON regardless.
    form = {"content-type": "application/x-www-form-urlencoded"}
    resp = await client.post("/api/endpoints", content=b'{"name": "from curl"}', headers=form)
    assert resp.status_code == 201 and resp.json()["name"] == "from curl"
    eid = resp.json()["id"]
    resp = await client.patch(f"/api/endpoints/{eid}", content=b'{"name": "renamed"}', headers=form)
    assert resp.status_code == 200 and resp.json()["name"] == "renamed"


async def test_foreign_origins_refused(server: LiveServer, client: httpx.AsyncClient) -> None:
    port = server.port
    foreign = ["null", "http://evil.example", f"http://127.0.0.1:{port}.evil.example", f"http://127.0.0.1:{port + 1}",
               f"http://{EVIL}:{port}", "http://localhost:3000", f"file://{port}"]
    for origin in foreign:
        _refused(await client.post("/api/endpoints", json={}, headers={"origin": origin}))
    # Two Origin headers: no browser sends them, and neither may vouch for the other.
    raw = (f"POST /api/endpoints HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: {_own(server)}\r\n"
           f"Origin: http://evil.example\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}").encode()
    assert status_of(await raw_request(port, raw)) == 403
    assert (await client.get("/api/endpoints")).json()["endpoints"] == []


async def test_foreign_host_is_misdirected_on_pages_api_and_websockets(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    ep = await create_endpoint(client)
    evil = {"host": f"{EVIL}:{server.port}"}
    page = await client.get("/", headers=evil)
    assert page.status_code == 421 and page.headers["content-type"].startswith("text/plain")
    for path in (f"/e/{ep['id']}", "/login", "/static/app.css"):
        assert (await client.get(path, headers=evil)).status_code == 421, path
    api = await client.get("/api/endpoints", headers=evil)
    assert api.status_code == 421 and api.json()["error"]["code"] == "misdirected"
    assert (await client.post("/api/endpoints", json={}, headers=evil)).status_code == 421
    assert (await client.get("/api/endpoints", headers={"host": EVIL.upper()})).status_code == 421
    for path in (f"/api/endpoints/{ep['id']}/live", f"/api/endpoints/{ep['id']}/relay?name=t"):
        # The socket reaches 127.0.0.1 while the handshake names the rebinding host, as the browser would.
        url = f"ws://{EVIL}:{server.port}{path}"
        with pytest.raises(websockets.exceptions.InvalidStatus) as info:
            async with websockets.connect(url, host="127.0.0.1", port=server.port, proxy=None,
                                          origin=f"http://{EVIL}:{server.port}"):  # type: ignore[arg-type]
                pass
        assert info.value.response.status_code == 421, path
    # Probes name the pod address; the answer carries nothing.
    assert (await client.get("/healthz", headers=evil)).status_code == 200
    # Two Host headers are ambiguous: refused.
    raw = (f"GET /api/endpoints HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nHost: {EVIL}\r\n"
           "Connection: close\r\n\r\n").encode()
    assert status_of(await raw_request(server.port, raw)) == 421
    assert (await client.get("/api/endpoints", headers={"host": f"localhost:{server.port}"})).status_code == 200
    assert (await client.get("/api/endpoints", headers={"host": f"[::1]:{server.port}"})).status_code == 200


async def test_http10_without_host_is_served_but_still_cross_site_checked(server: LiveServer) -> None:
    ok = await raw_request(server.port, b"GET /api/endpoints HTTP/1.0\r\n\r\n")
    assert status_of(ok) == 200, ok
    post = b"POST /api/endpoints HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}"
    assert status_of(await raw_request(server.port, post)) == 201
    foreign = b"POST /api/endpoints HTTP/1.0\r\nOrigin: http://evil.example\r\nContent-Length: 2\r\n\r\n{}"
    assert status_of(await raw_request(server.port, foreign)) == 403


async def test_ingest_answers_any_host_and_any_origin(server: LiveServer, client: httpx.AsyncClient) -> None:
    ep = await create_endpoint(client)
    headers = {"host": "anything.example", "origin": "http://evil.example", "sec-fetch-site": "cross-site",
               "content-type": "text/plain"}
    resp = await client.post(f"/h/{ep['id']}/hook", content=b"from a provider", headers=headers)
    assert resp.status_code == 200, resp.text
    rows = (await client.get(f"/api/endpoints/{ep['id']}/requests")).json()["requests"]
    assert [r["id"] for r in rows] == [resp.json()["request_id"]]


async def test_allowed_host_and_public_url(settings: Settings) -> None:
    configured = replace(settings, public_url="https://pub.example.com/", allowed_hosts=("hooks.example.com",
                                                                                        "alt.example:8443"))
    async with live_server(configured) as srv, srv.client() as client:
        for host in ("pub.example.com", "hooks.example.com:8080", "alt.example", f"127.0.0.1:{srv.port}"):
            assert (await client.get("/api/endpoints", headers={"host": host})).status_code == 200, host
            assert (await client.get("/", headers={"host": host})).status_code == 200, host
        assert (await client.get("/api/endpoints", headers={"host": EVIL})).status_code == 421
        # Behind a proxy that keeps the public Host, the page's requests carry the public origin.
        for host, origin in (("pub.example.com", "https://pub.example.com"),
                             ("hooks.example.com", "https://hooks.example.com"),
                             (f"127.0.0.1:{srv.port}", "https://alt.example:8443")):  # a proxy rewriting Host
            headers = {"host": host, "origin": origin, "sec-fetch-site": "same-origin"}
            assert (await client.post("/api/endpoints", json={}, headers=headers)).status_code == 201, origin
        _refused(await client.post("/api/endpoints", json={}, headers={"origin": "https://alt.example"}))


async def test_token_without_allowed_host_relies_on_credentials(token_server: LiveServer) -> None:
    auth = {"authorization": f"Bearer {TOKEN}"}
    async with token_server.client() as client:
        evil = {"host": EVIL, "origin": f"http://{EVIL}"}
        # A rebinding page has no credentials: refused by auth, for HTTP and the websocket alike.
        assert (await client.get("/api/endpoints", headers=evil)).status_code == 401
        ep = (await client.post("/api/endpoints", headers=auth)).json()
        url = f"ws://{EVIL}:{token_server.port}/api/endpoints/{ep['id']}/live"
        with pytest.raises(websockets.exceptions.InvalidStatus) as info:
            async with websockets.connect(url, host="127.0.0.1", port=token_server.port, proxy=None,
                                          origin=f"http://{EVIL}"):  # type: ignore[arg-type]
                pass
        assert info.value.response.status_code == 403
        # Any name works with the token (e.g. an unlisted proxy name or a LAN address)...
        lan = {**auth, "host": "192.168.1.5:8080"}
        assert (await client.get("/api/endpoints", headers=lan)).status_code == 200
        assert (await client.post("/api/endpoints", headers={**lan, "origin": "http://192.168.1.5:8080"})
                ).status_code == 201
        # ...but the cross-site rule always applies, even to a request that carries the token.
        _refused(await client.post("/api/endpoints", headers={**auth, "origin": "http://evil.example"}))
        _refused(await client.post("/api/endpoints", headers={**auth, "sec-fetch-site": "cross-site"}))
        # The login form from our own page works; from a foreign page it does not.
        own = {"origin": _own(token_server), "sec-fetch-site": "same-origin"}
        resp = await client.post("/login", data={"token": TOKEN, "next": "/"}, headers=own)
        assert resp.status_code == 303
        _refused(await client.post("/login", data={"token": TOKEN}, headers={"origin": "http://evil.example"}))


async def test_token_with_allowed_host_checks_host_too(settings: Settings) -> None:
    configured = replace(settings, token=TOKEN, allowed_hosts=("hooks.example.com",))
    async with live_server(configured) as srv, srv.client(headers={"authorization": f"Bearer {TOKEN}"}) as client:
        assert (await client.get("/api/endpoints", headers={"host": EVIL})).status_code == 421
        assert (await client.get("/api/endpoints", headers={"host": "hooks.example.com"})).status_code == 200
        assert (await client.get("/api/endpoints")).status_code == 200  # 127.0.0.1 stays allowed


async def test_websocket_origin_check_on_a_real_server(server: LiveServer, client: httpx.AsyncClient) -> None:
    ep = await create_endpoint(client)
    url = f"ws://127.0.0.1:{server.port}/api/endpoints/{ep['id']}/live"

    async def first_frame(**kw: Any) -> dict[str, Any] | int:
        async with websockets.connect(url, proxy=None, **kw) as ws:
            try:
                data: dict[str, Any] = json.loads(await ws.recv())
                return data
            except websockets.exceptions.ConnectionClosed as closed:
                assert closed.rcvd is not None
                return closed.rcvd.code

    assert await first_frame(origin=f"http://{EVIL}:{server.port}") == 1008
    assert await first_frame(origin="http://localhost:3000") == 1008
    hello = await first_frame(origin=_own(server))
    assert isinstance(hello, dict) and hello["type"] == "hello"
    # Tunnel: the handshake names localhost:9000 (Host and Origin) while the socket reaches our port.
    tunnel_url = f"ws://localhost:9000/api/endpoints/{ep['id']}/live"
    async with websockets.connect(tunnel_url, host="127.0.0.1", port=server.port, proxy=None,
                                  origin="http://localhost:9000") as ws:  # type: ignore[arg-type]
        assert json.loads(await ws.recv())["type"] == "hello"


# A real browser --------------------------------------------------------------------------------------------------
CHROMIUM = "/usr/bin/chromium"


def _html(_: Received) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    return 200, [(b"content-type", b"text/html")], b"<!doctype html><title>another site</title>"


async def test_real_browser_cross_site_and_rebinding_pages_are_refused(
    server: LiveServer, client: httpx.AsyncClient
) -> None:
    """Chromium itself: what it sends from a foreign page (Origin, Sec-Fetch-Site) is refused; our own page's
    fetch is not; a page loaded through a rebound name gets 421."""
    playwright = pytest.importorskip("playwright.async_api")
    from tests.ui.conftest import CHROMIUM_ARGS, _browser_missing

    missing = _browser_missing()
    if missing:
        if os.environ.get("HOOKSCOPE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser tests required but {missing}")
        pytest.skip(missing)
    ep = await create_endpoint(client)
    rid = await _capture(client, ep["id"])
    replay = f"{server.url}/api/requests/{rid}/replay"
    script = """async ([url, body]) => {
        await fetch(url, {method: "POST", mode: "no-cors", body, headers: {"content-type": "text/plain"}});
    }"""
    async with RecordingTarget() as target, RecordingTarget(_html) as site, playwright.async_playwright() as pw:
        # Names resolve to loopback, so Chromium's own Private Network Access rules do not stop the fetch first.
        rules = "--host-resolver-rules=MAP *.evil.example 127.0.0.1"
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_ARGS, rules])
        try:
            page = await browser.new_page()
            statuses: dict[str, int] = {}

            async def seen(response: Any) -> None:
                if response.url == replay:
                    statuses[response.frame.url] = response.status

            page.on("response", seen)
            foreign = f"http://attacker.evil.example:{site.port}/"
            await page.goto(foreign)
            body = json.dumps({"target": target.url + "/attack"})
            await page.evaluate(script, [replay, body])
            await page.goto(f"http://localhost:{site.port}/")  # another local port: same host, foreign origin
            await page.evaluate(script, [replay, body])
            assert statuses == {foreign: 403, f"http://localhost:{site.port}/": 403}
            # Our own page: the same call goes through.
            await page.goto(server.url + "/")
            await page.evaluate(script, [replay, json.dumps({"target": target.url + "/own"})])
            assert statuses[server.url + "/"] == 201
            assert [r.target for r in target.received] == [b"/own"]
            # DNS rebinding: the rebound name reaches our socket, and the page gets 421.
            rebound = await page.goto(f"http://{EVIL}:{server.port}/e/{ep['id']}")
            assert rebound is not None and rebound.status == 421
        finally:
            await browser.close()
