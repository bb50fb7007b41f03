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
