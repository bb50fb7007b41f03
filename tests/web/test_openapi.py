"""The OpenAPI document: it describes every route of the app, only those, and it is true.

Truth is checked by schemathesis against a real server on loopback: every generated request's answer must be a
documented status with a documented content type and a body matching its schema, and never a 5xx.
"""

from __future__ import annotations

import asyncio
import copy
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from openapi_spec_validator import validate as validate_openapi
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup
from starlette.routing import Mount, Route, WebSocketRoute
from websockets.sync.client import connect

from app.main import create_app
from app.settings import Settings
from app.web.openapi import NOT_DESCRIBED, build_document
from tests.support import LOCAL_TLS, LiveServer, create_endpoint, live_server

TOKEN = "fuzz-token-0123456789"
# Per operation. Enough to get past the 404s and 400s to the real handlers; 23 operations stay within ~40 s.
MAX_EXAMPLES = 15
# Client-side bound on every fuzzed request: a hang is reported as a failure, never waited out.
REQUEST_TIMEOUT = 15.0
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# No discovery of a schemathesis.toml: the test says everything it relies on.
CONFIG = schemathesis.Config()
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def described_operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (path, method.upper())
        for path, item in doc["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def app_operations(settings: Settings) -> tuple[set[tuple[str, str]], set[str]]:
    """(path, method) of every HTTP and websocket route, and the paths of mounts."""
    ops: set[tuple[str, str]] = set()
    mounts: set[str] = set()
    for route in create_app(settings).web.routes:
        if isinstance(route, Route):
            ops |= {(route.path, m) for m in route.methods or () if m != "HEAD"}
        elif isinstance(route, WebSocketRoute):
            ops.add((route.path, "GET"))  # described as its handshake
        elif isinstance(route, Mount):
            mounts.add(route.path)
        else:
            raise AssertionError(f"unknown kind of route: {route!r}")
    return ops, mounts


def test_every_route_is_described_and_every_description_is_a_route(settings: Settings) -> None:
    doc = build_document()
    routes, mounts = app_operations(settings)
    undocumented = {(p, m) for p, m in routes if p not in NOT_DESCRIBED}
    assert undocumented == described_operations(doc)
    # The list of exceptions must not outlive the routes it excuses.
    assert set(NOT_DESCRIBED) == {p for p, _ in routes if p in NOT_DESCRIBED} | mounts
    websockets = {
        (route.path, "GET") for route in create_app(settings).web.routes if isinstance(route, WebSocketRoute)
    }
    marked = {(p, "GET") for p, item in doc["paths"].items() if item.get("get", {}).get("x-websocket")}
    assert marked == websockets


def test_document_is_valid_openapi_3_1() -> None:
    validate_openapi(build_document())


def test_every_operation_describes_its_errors() -> None:
    doc = build_document()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method not in HTTP_METHODS or op.get("x-websocket"):
                continue
            statuses = set(op["responses"])
            assert "500" in statuses, (method, path)
            assert ("401" in statuses) == ("421" in statuses) == (path != "/healthz"), (method, path)
            if "{" in path:
                assert "404" in statuses, (method, path)
            if "requestBody" in op:
                assert {"400", "413"} <= statuses, (method, path)
            if method != "get":
                assert "403" in statuses, (method, path)


async def test_served_document_and_401_under_a_token(settings: Settings) -> None:
    async with live_server(replace(settings, token=TOKEN)) as srv, srv.client() as client:
        refused = await client.get("/api/openapi.json")
        served = await client.get("/api/openapi.json", headers={"authorization": f"Bearer {TOKEN}"})
        assert (await client.get("/healthz")).status_code == 200
    assert served.status_code == 200 and served.headers["content-type"] == "application/json"
    assert served.json() == build_document()
    schema = schemathesis.openapi.from_dict(build_document(), config=CONFIG)
    assert refused.status_code == 401
    # The 401 itself is a documented answer, body and headers included.
    schema["/api/openapi.json"]["GET"].validate_response(refused)
    assert refused.headers["www-authenticate"].startswith("Bearer")


# The fuzzer ------------------------------------------------------------------------------------------------
def real_resources(srv: LiveServer, client: httpx.Client) -> dict[str, Any]:
    """A fresh endpoint (with verification set, so the signature helper answers), a capture and a failed replay
    delivery, so generated requests sometimes name things that exist and reach the handlers' real work."""
    ep = client.post(
        "/api/endpoints", json={"name": "fuzz", "verify": {"scheme": "github", "secrets": ["fuzz-secret"]}}
    ).json()
    captured = client.post(
        f"/h/{ep['id']}/hook?x=1", content=b'{"action": "opened"}',
        headers={"content-type": "application/json", "x-github-event": "issues", "x-hub-signature-256": "sha256=0"},
    )
    assert captured.status_code == 200, captured.text
    rid = client.get(f"/api/endpoints/{ep['id']}/requests").json()["requests"][0]["id"]
    # Port 9 (discard) on loopback: nothing listens, so the replay fails at once and can be retried.
    delivery = client.post(f"/api/requests/{rid}/replay", json={"target": "http://127.0.0.1:9/"}).json()
    # A relay that connected once leaves a cursor, for the relay status and forget operations.
    ws_url = srv.url.replace("http://", "ws://") + f"/api/endpoints/{ep['id']}/relay?name=fuzz"
    with connect(ws_url, additional_headers={"authorization": f"Bearer {TOKEN}"}) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "hello"
    return {"endpoint_id": ep["id"], "request_id": rid, "delivery_id": delivery["id"], "name": "fuzz",
            "ingest_url": ep["ingest_url"]}


def fuzz_document(ids: dict[str, Any]) -> dict[str, Any]:
    """The served document, steered for the fuzzer: replay targets are sometimes real, no request blocks for long.

    Only generation changes: responses are validated against the real schemas.
    """
    doc = copy.deepcopy(build_document())
    params = doc["components"]["parameters"]
    # The wait primitive blocks up to `timeout` (30 s when absent): always give one, and keep it short.
    params["Timeout"]["required"] = True
    params["Timeout"]["schema"] = {"type": "number", "minimum": 0, "maximum": 0.5}
    # Replays sometimes go somewhere real: the server's own ingest URL, or a closed loopback port.
    targets = {"enum": [ids["ingest_url"], "http://127.0.0.1:9/"]}
    schemas = doc["components"]["schemas"]
    for name in ("ReplayInput", "BulkReplayInput"):
        schemas[name]["properties"]["target"] = {"anyOf": [targets, schemas[name]["properties"]["target"]]}
    return doc


def fuzz(srv: LiveServer) -> tuple[list[str], list[str]]:
    """Every HTTP operation with MAX_EXAMPLES generated cases.

    Returns the failures (not raised, so that all are shown) and the operations that never answered 2xx.
    """
    auth = {"authorization": f"Bearer {TOKEN}"}
    failures: list[str] = []
    unreached: list[str] = []
    with httpx.Client(base_url=srv.url, headers=auth,
        trust_env=False, verify=LOCAL_TLS, timeout=REQUEST_TIMEOUT) as client:
        labels = [
            (path, method.upper())
            for path, item in build_document()["paths"].items()
            for method, op in item.items()
            if method in HTTP_METHODS and not op.get("x-websocket")
        ]
        for path, method in labels:
            # Fresh resources for each operation: an earlier DELETE must not turn every later case into a 404.
            ids = real_resources(srv, client)
            schema = schemathesis.openapi.from_dict(fuzz_document(ids), config=CONFIG)
            operation = schema[path][method]
            real = {name: ids[name] for name in ("endpoint_id", "request_id", "delivery_id", "name") if name in path}
            found, statuses = fuzz_operation(operation, real, srv.url, auth, GenerationMode.POSITIVE)
            failures += found
            if not any(200 <= s < 300 for s in statuses):
                unreached.append(f"{operation.label}: {sorted(statuses)}")
            # The wait primitive is left out: a negated `timeout` (absent, or huge) legitimately blocks for minutes.
            if has_inputs(operation) and operation.label != "GET /api/endpoints/{endpoint_id}/wait":
                failures += fuzz_operation(operation, real, srv.url, auth, GenerationMode.NEGATIVE)[0]
    return failures, unreached


def has_inputs(operation: Any) -> bool:
    """Whether there is anything to make invalid besides the path (whose invalid values are plain 404s)."""
    definition = operation.definition.raw
    return "requestBody" in definition or any(p.location != "path" for p in operation.iter_parameters())


def fuzz_operation(
    operation: Any, real: dict[str, Any], base_url: str, headers: dict[str, str], mode: GenerationMode
) -> tuple[list[str], list[int]]:
    """Half the cases name the real resources (the rest random ones): enough get past the 404s.

    Positive cases follow the document (so 2xx answers show up); negative ones break it on purpose (so the
    400 paths run), with fewer examples.
    """
    found: list[str] = []
    statuses: list[int] = []
    cases = operation.as_strategy(mode)
    if real:
        cases = st.one_of(operation.as_strategy(mode, path_parameters=real), cases)

    @hypothesis.settings(
        max_examples=MAX_EXAMPLES if mode is GenerationMode.POSITIVE else MAX_EXAMPLES // 2,
        # A fixed seed instead of a random one: CI never sees a case a developer's run could not have.
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.given(case=cases)
    def run(case: Any) -> None:
        if len(found) >= 3:
            return  # enough to act on; keep the run short
        try:
            response = case.call(base_url=base_url, headers=headers, timeout=REQUEST_TIMEOUT)
            statuses.append(response.status_code)
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (Exception, FailureGroup) as exc:  # FailureGroup is a BaseExceptionGroup
            found.append(f"{operation.label}: {type(exc).__name__}: {exc}\n    {case.as_curl_command(headers)}")

    run()
    return found, statuses


@pytest.mark.timeout(180)
async def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(tmp_path: Path) -> None:
    settings = Settings(
        db=tmp_path / "fuzz.db", janitor_interval=3600, token=TOKEN,
        # Replays and retries give up quickly: the fuzzer must never wait on a target.
        forward_timeout=2.0,
    )
    async with live_server(settings) as srv:
        failures, unreached = await asyncio.to_thread(fuzz, srv)
    assert not failures, "\n\n".join(failures)
    # Otherwise the fuzzer only ever saw 404s and 400s there, and proved little.
    assert not unreached, unreached


async def test_real_answers_match_the_document(tmp_path: Path) -> None:
    """The shapes the fuzzer rarely reaches: an endpoint with every option, non-UTF-8 bytes, a delivered replay,
    the ascending page, the wait primitive's 200 and 204, and the 400 and 413 errors."""
    settings = Settings(db=tmp_path / "shapes.db", janitor_interval=3600)
    schema = schemathesis.openapi.from_dict(build_document(), config=CONFIG)
    async with live_server(settings) as srv, srv.client() as client:
        ep = await create_endpoint(
            client, name="all options",
            response={"status": 202, "headers": {"x-a": "b"}, "body": "ok", "delay": 0},
            verify={"scheme": "hmac", "secrets": ["k"], "header": "x-sig", "url": "http://example.test/"},
            resign={"scheme": "discord", "secret": "11" * 32},
            forward_targets=["http://127.0.0.1:9/"],
            passthrough={"timeout": 0.2},  # the forward target is closed: do not wait the default 5 s
            replay_target=f"{srv.url}/h/nowhere",
        )
        await client.post(f"/h/{ep['id']}", content=b"\xff\xfe", headers={"x-latin": "caf\xe9".encode("latin-1")})
        listed = (await client.get(f"/api/endpoints/{ep['id']}/requests")).json()
        rid = listed["requests"][0]["id"]
        delivered = await client.post(f"/api/requests/{rid}/replay", json={"target": ep["ingest_url"]})
        checks: list[tuple[str, str, httpx.Response]] = [
            ("/api/endpoints/{endpoint_id}", "GET", await client.get(f"/api/endpoints/{ep['id']}")),
            ("/api/endpoints/{endpoint_id}/requests", "GET", await client.get(f"/api/endpoints/{ep['id']}/requests")),
            ("/api/endpoints/{endpoint_id}/requests", "GET",
             await client.get(f"/api/endpoints/{ep['id']}/requests", params={"after": 0})),
            ("/api/requests/{request_id}", "GET", await client.get(f"/api/requests/{rid}")),
            ("/api/requests/{request_id}", "GET", await client.get(f"/api/requests/{rid}", params={"max_body": 1})),
            ("/api/requests/{request_id}/signature", "GET", await client.get(f"/api/requests/{rid}/signature")),
            ("/api/requests/{request_id}/replay", "POST", delivered),
            ("/api/requests/{request_id}/deliveries", "GET", await client.get(f"/api/requests/{rid}/deliveries")),
            ("/api/endpoints/{endpoint_id}/forwarding", "GET",
             await client.get(f"/api/endpoints/{ep['id']}/forwarding")),
            ("/api/endpoints/{endpoint_id}/relays", "GET", await client.get(f"/api/endpoints/{ep['id']}/relays")),
            ("/api/endpoints/{endpoint_id}/wait", "GET",
             await client.get(f"/api/endpoints/{ep['id']}/wait", params={"after": 0, "timeout": 0})),
            ("/api/endpoints/{endpoint_id}/wait", "GET",
             await client.get(f"/api/endpoints/{ep['id']}/wait", params={"timeout": 0})),
            ("/api/endpoints/{endpoint_id}", "PATCH",
             await client.patch(f"/api/endpoints/{ep['id']}", content=b"{nope")),
            ("/api/endpoints", "POST", await client.post("/api/endpoints", content=b"x" * (2 * 1024 * 1024 + 1))),
        ]
    assert delivered.status_code == 201 and delivered.json()["state"] == "delivered", delivered.text
    for path, method, response in checks:
        assert response.status_code < 500, (path, response.text)
        schema[path][method].validate_response(response)
