"""Hostile input to the API and ingest never gets a 500 (property-based, against a real server)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import LOCAL_TLS, ServerProcess

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
endpoint_fields = st.dictionaries(
    st.sampled_from(["name", "response", "verify", "status", "headers", "body", "delay", "scheme", "secrets"]),
    json_values,
    max_size=4,
)
params = st.dictionaries(
    st.sampled_from(["before", "after", "limit", "method", "q", "verification", "duplicate", "provider", "max_body"]),
    st.text(max_size=12),
    max_size=4,
)
FAST = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def _check(resp: httpx.Response) -> None:
    assert resp.status_code < 500, resp.text
    if resp.status_code >= 400:
        assert resp.json()["error"]["code"]


@pytest.fixture(scope="module")
def proc_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, str]]:
    """A subprocess server and a sync client: hypothesis drives plain functions."""
    with ServerProcess(tmp_path_factory.mktemp("hostile") / "h.db") as srv, httpx.Client(
        base_url=srv.url, trust_env=False, verify=LOCAL_TLS, timeout=10
    ) as client:
        ep = client.post("/api/endpoints").json()["id"]
        client.post(f"/h/{ep}", content=b"\xff\x00{}")
        yield client, ep


@FAST
@given(body=endpoint_fields, nested=json_values)
def test_random_endpoint_json_never_500(proc_client: tuple[httpx.Client, str], body: dict[str, Any],
                                        nested: Any) -> None:
    client, ep = proc_client
    _check(client.post("/api/endpoints", content=json.dumps(body)))
    _check(client.patch(f"/api/endpoints/{ep}", content=json.dumps(body)))
    _check(client.post("/api/endpoints", content=json.dumps(nested)))


@FAST
@given(query=params, path=st.text(max_size=20))
def test_random_list_parameters_never_500(proc_client: tuple[httpx.Client, str], query: dict[str, str],
                                          path: str) -> None:
    client, ep = proc_client
    _check(client.get(f"/api/endpoints/{ep}/requests", params=query))
    _check(client.get("/api/requests/1", params=query))
    resp = client.post(f"/h/{ep}/{quote(path, safe='/')}", params=query)
    assert resp.status_code in (200, 404), resp.text


targets = st.sampled_from([None, "", 5, [], "ftp://x/", "http://10.0.0.1/", "http://127.0.0.1:9/closed", "http://[::1"])
replay_fields = st.dictionaries(
    st.sampled_from(["method", "path", "query", "headers", "body", "body_encoding", "resign", "ids", "q", "after",
                     "before", "limit"]),
    json_values | st.integers(min_value=-(2**70), max_value=2**70) | st.lists(st.integers(), max_size=3),
    max_size=5,
)
forward_options = st.dictionaries(
    st.sampled_from(["forward_targets", "passthrough", "resign", "replay_target"]), json_values, max_size=3
)


ids = st.integers(-(2**70), 2**70) | st.text(max_size=8)


@FAST
@given(body=replay_fields, target=targets, options=forward_options, ident=ids)
def test_random_forwarding_api_input_never_500(proc_client: tuple[httpx.Client, str], body: dict[str, Any],
                                              target: Any, options: dict[str, Any], ident: Any) -> None:
    client, ep = proc_client
    payload = {**body, "target": target} if target is not None else body
    _check(client.post("/api/requests/1/replay", content=json.dumps(payload)))
    _check(client.post(f"/api/endpoints/{ep}/replay", content=json.dumps(payload)))
    _check(client.patch(f"/api/endpoints/{ep}", content=json.dumps(options)))
    # Leave the shared endpoint forwarding nowhere, whatever the PATCH above set.
    _check(client.patch(f"/api/endpoints/{ep}", json={"forward_targets": None, "passthrough": None}))
    ident_path = quote(str(ident), safe="")
    for path in (f"/api/deliveries/{ident_path}", f"/api/requests/{ident_path}/deliveries",
                 f"/api/endpoints/{ep}/relays/{ident_path}"):
        _check(client.get(path) if "relays" not in path else client.delete(path))
    _check(client.post(f"/api/deliveries/{ident_path}/retry"))


# Lone surrogates (issue 9, point 4) -------------------------------------------------------------------------
surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
# JSON proper: json.dumps writes infinities as Infinity, which the API refuses before looking for surrogates.
finite_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
SURROGATE_EXAMPLES = settings(FAST, max_examples=30)
with_surrogate = st.builds(lambda a, s, b: a + s + b, st.text(max_size=6), surrogates, st.text(max_size=6))


@st.composite
def injected(draw: st.DrawFn, fields: list[str]) -> tuple[dict[str, Any], str]:
    """A body with exactly one lone surrogate, and the path the API must name for it."""
    field = draw(st.sampled_from(fields))
    bad = draw(with_surrogate)
    shape = draw(st.sampled_from(["value", "list", "object", "key", "top-key"]))
    body: dict[str, Any] = draw(st.dictionaries(st.sampled_from(fields), finite_json_values, max_size=3))
    body.pop(field, None)
    if shape == "value":
        body[field], where = bad, field
    elif shape == "list":
        body[field], where = ["http://127.0.0.1:9/", bad], f"{field}[1]"
    elif shape == "object":
        body[field], where = {"header": bad}, f"{field}.header"
    elif shape == "key":
        body[field], where = {bad: "x"}, f"<a key in {field}>"
    else:
        body = {**body, bad: 1}
        where = "<a top-level key>"
    return body, where


def _surrogate_refused(resp: httpx.Response, where: str) -> None:
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["code"] == "invalid_json" and error["message"].startswith(f"{where}:"), (where, error)


def _encoded(body: Any, raw: bool) -> bytes:
    """As a \\ud800 escape, or as the raw surrogate bytes (invalid UTF-8 that Python's json.loads accepts)."""
    return json.dumps(body, ensure_ascii=not raw).encode("utf-8", "surrogatepass")


def _still_serves(client: httpx.Client, ep: str) -> None:
    listed = client.get("/api/endpoints")
    assert listed.status_code == 200, listed.text
    assert client.get(f"/api/endpoints/{ep}").status_code == 200


ENDPOINT_FIELDS = ["name", "response", "verify", "forward_targets", "passthrough", "resign", "replay_target",
                   "unknown"]
REPLAY_FIELDS = ["target", "method", "path", "query", "headers", "body", "body_encoding", "resign", "ids", "q",
                 "verification", "provider", "duplicate", "after", "before", "limit"]


@SURROGATE_EXAMPLES
@given(case=injected(ENDPOINT_FIELDS), raw=st.booleans())
def test_surrogates_in_endpoint_json_are_400_naming_the_field(
    proc_client: tuple[httpx.Client, str], case: tuple[dict[str, Any], str], raw: bool
) -> None:
    client, ep = proc_client
    body, where = case
    _surrogate_refused(client.post("/api/endpoints", content=_encoded(body, raw)), where)
    _surrogate_refused(client.patch(f"/api/endpoints/{ep}", content=_encoded(body, raw)), where)
    _still_serves(client, ep)


@SURROGATE_EXAMPLES
@given(case=injected(REPLAY_FIELDS), raw=st.booleans())
def test_surrogates_in_forwarding_json_are_400_naming_the_field(
    proc_client: tuple[httpx.Client, str], case: tuple[dict[str, Any], str], raw: bool
) -> None:
    client, ep = proc_client
    body, where = case
    _surrogate_refused(client.post("/api/requests/1/replay", content=_encoded(body, raw)), where)
    _surrogate_refused(client.post(f"/api/endpoints/{ep}/replay", content=_encoded(body, raw)), where)
    _still_serves(client, ep)


QUERY_NAMES = ["before", "after", "limit", "method", "q", "verification", "duplicate", "provider", "max_body"]
query_values = (st.text(max_size=12) | with_surrogate
                | st.sampled_from(["1e999", "-1", "99999999999999999999999", "nan", "inf", "1_0", "\u0661", " 7"]))
query_lists = st.lists(st.tuples(st.sampled_from(QUERY_NAMES), query_values), max_size=5)


def _query(pairs: list[tuple[str, str]]) -> str:
    # Percent-encoded as UTF-8 with surrogatepass: %ED%A0%80 for U+D800, as a hostile client would send it.
    return "&".join(f"{quote(n)}={quote(v, safe='', errors='surrogatepass')}" for n, v in pairs)


# Never a valid number of seconds (a valid one would make the example wait that long).
bad_timeouts = with_surrogate | st.sampled_from(["nan", "inf", "-inf", "1e999", "-1", "1_0", "\u0661", " 7", "0x1"])


@SURROGATE_EXAMPLES
@given(pairs=query_lists, timeout=bad_timeouts)
def test_hostile_query_parameters_never_500(proc_client: tuple[httpx.Client, str], pairs: list[tuple[str, str]],
                                            timeout: str) -> None:
    client, ep = proc_client
    query = _query(pairs)
    for url in (f"/api/endpoints/{ep}/requests?{query}", f"/api/requests/1?{query}",
                f"/api/endpoints/{ep}/wait?{_query([*pairs, ('timeout', '0')])}"):
        resp = client.get(url)
        assert resp.status_code in (200, 204, 400, 404), (url, resp.text)
        if resp.status_code == 400:
            assert resp.json()["error"]["code"] == "invalid_parameter", resp.text
    resp = client.get(f"/api/endpoints/{ep}/wait?{_query([('timeout', timeout)])}")
    assert resp.status_code == 400 and "timeout" in resp.json()["error"]["message"], (timeout, resp.text)
    _still_serves(client, ep)


def test_after_hostile_input_capture_and_forwarding_still_work(proc_client: tuple[httpx.Client, str]) -> None:
    """Runs after the property tests above (module order): the shared endpoint still captures and forwards."""
    client, ep = proc_client
    received: list[bytes] = []

    class Target(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers.get("content-length") or 0)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    with ThreadingHTTPServer(("127.0.0.1", 0), Target) as target:
        thread = threading.Thread(target=target.serve_forever, daemon=True)
        thread.start()
        try:
            url = f"http://127.0.0.1:{target.server_address[1]}/hook"
            _check(client.patch(f"/api/endpoints/{ep}", json={"forward_targets": [url]}))
            assert client.post(f"/h/{ep}", content=b"still forwarded").status_code == 200
            deadline = time.monotonic() + 15
            while b"still forwarded" not in received:
                assert time.monotonic() < deadline, "the capture was not forwarded"
                time.sleep(0.02)
            targets = client.get(f"/api/endpoints/{ep}/forwarding").json()["targets"]
            assert [t["target"] for t in targets] == [url]
        finally:
            client.patch(f"/api/endpoints/{ep}", json={"forward_targets": None})
            target.shutdown()
            thread.join(5)
    _still_serves(client, ep)
