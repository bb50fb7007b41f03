"""Hostile input to the API and ingest never gets a 500 (property-based, against a real server)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import ServerProcess

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
        base_url=srv.url, trust_env=False, timeout=10
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
