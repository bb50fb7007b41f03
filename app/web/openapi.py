"""The OpenAPI 3.1 description of the JSON API, served at `GET /api/openapi.json`.

Written by hand rather than derived from handlers: the handlers validate JSON by code, so nothing could derive it.
It is kept true by tests/web/test_openapi.py, which checks that every route of the app is described (or listed in
NOT_DESCRIBED with a reason) and runs schemathesis against a real server, validating every answer against it.

Schemas describe what the server really sends; inputs describe what it accepts without a 400 about their shape
(it still answers 400 for what JSON Schema cannot say, such as a URL that does not parse).
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.providers.config import SCHEMES

JSON = "application/json"
Schema = dict[str, Any]

# Routes of the app that are not part of the JSON API, with why. The test checks each still exists.
NOT_DESCRIBED: dict[str, str] = {
    "/": "HTML page: the endpoint list",
    "/e/{endpoint_id}": "HTML page: the inspector",
    "/login": "HTML login form and its POST (sets the browser session cookie)",
    "/logout": "HTML form POST that clears the browser session cookie",
    "/static": "static files of the pages",
}

# Largest id the API takes: SQLite's signed 64-bit rowid; list filters stop at 2**62 (app/web/params.py int_param).
MAX_ID = 2**63 - 1
MAX_FILTER_ID = 2**62


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _resp(name: str) -> Schema:
    return {"$ref": f"#/components/responses/{name}"}


def _param(name: str) -> Schema:
    return {"$ref": f"#/components/parameters/{name}"}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _obj(properties: dict[str, Schema], required: list[str] | None = None, closed: bool = True) -> Schema:
    """An object schema; closed means no other property is sent (or accepted) there."""
    schema: Schema = {"type": "object", "properties": properties}
    schema["required"] = list(properties) if required is None else required
    if closed:
        schema["additionalProperties"] = False
    return schema


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {JSON: {"schema": schema}}}


STRING: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
NUMBER: Schema = {"type": "number"}
BOOL: Schema = {"type": "boolean"}
ID: Schema = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
TIME: Schema = {"type": "string", "format": "date-time", "description": "RFC 3339, UTC"}
EPOCH: Schema = {"type": "number", "description": "seconds since the Unix epoch"}
PAIR: Schema = {"type": "array", "items": STRING, "minItems": 2, "maxItems": 2, "description": "[name, value]"}
SKIPPED: Schema = {
    "type": "integer", "minimum": 0,
    "description": "captures retention pruned (past its ceiling) before this relay or target received them",
}
VERIFICATION_STATUS: Schema = {"type": "string", "enum": ["valid", "invalid", "unconfigured"]}

HMAC_FIELDS: dict[str, Schema] = {
    "header": _nullable(STRING),
    "algorithm": {"type": "string", "enum": ["sha1", "sha256", "sha512"]},
    "encoding": {"type": "string", "enum": ["hex", "base64"]},
    "prefix": STRING,
    "template": STRING,
    "timestamp_header": _nullable(STRING),
    "id_header": _nullable(STRING),
}


def _schemas() -> dict[str, Schema]:
    scheme = {"type": "string", "enum": list(SCHEMES)}
    tolerance = _nullable({"type": "integer", "minimum": 0})
    verify_common = {"scheme": scheme, "tolerance": tolerance, **HMAC_FIELDS, "url": _nullable(STRING)}
    return {
        "Error": _obj({"error": _obj({"code": STRING, "message": STRING})}),
        "ResponseSpec": _obj(
            {
                "status": {"type": "integer", "minimum": 200, "maximum": 599},
                "headers": {"type": "array", "items": PAIR},
                "body": _nullable(STRING),
                "delay": NUMBER,
            }
        ),
        "ResponseSpecInput": _obj(
            {
                "status": {"type": "integer", "minimum": 200, "maximum": 599},
                "headers": {
                    "anyOf": [
                        {"type": "array", "items": PAIR, "maxItems": 100},
                        {"type": "object", "additionalProperties": STRING, "maxProperties": 100},
                    ]
                },
                "body": _nullable({"type": "string", "maxLength": 1024 * 1024}),
                "delay": {"type": "number", "minimum": 0, "maximum": 30},
            },
            required=[],
        ),
        "Verify": _obj(
            {**verify_common, "secrets": {"type": "array", "items": STRING, "description": "masked"}},
            required=["scheme", "secrets", "tolerance"],
        ),
        "VerifyInput": _obj(
            {
                **verify_common,
                "secrets": {
                    "type": "array",
                    "items": {"type": "string", "minLength": 1},
                    "maxItems": 10,
                    "description": "a secret sent back masked, as shown, keeps the stored one",
                },
            },
            required=["scheme"],
        ),
        "Resign": _obj(
            {
                **verify_common,
                "secret": {"type": "string", "description": "masked"},
                "signs_with": STRING,
                "public_key": {"type": "string", "description": "discord only: the key that verifies"},
            },
            required=["scheme", "secret", "signs_with"],
        ),
        "ResignInput": _obj(
            {**verify_common, "secret": {"type": "string", "minLength": 1}},
            required=["scheme", "secret"],
        ),
        "Passthrough": _obj({"timeout": NUMBER}),
        "PassthroughInput": {
            "anyOf": [
                {"const": True},
                {"type": "number", "exclusiveMinimum": 0, "maximum": 30},
                _obj({"timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 30}}, required=[]),
            ]
        },
        "Endpoint": _obj(
            {
                "id": STRING,
                "name": STRING,
                "ingest_url": {"type": "string", "format": "uri"},
                "inspect_url": {"type": "string", "format": "uri"},
                "created_at": TIME,
                "request_count": {"type": "integer", "minimum": 0},
                "last_request_at": _nullable(TIME),
                "response": _ref("ResponseSpec"),
                "verify": _option(_ref("Verify")),
                "resign": _option(_ref("Resign")),
                "forward_targets": _option({"type": "array", "items": STRING}),
                "passthrough": _option(_ref("Passthrough")),
                "replay_target": _option(STRING),
            },
            required=[
                "id", "name", "ingest_url", "inspect_url", "created_at", "request_count", "last_request_at",
                "response",
            ],
        ),
        "EndpointInput": _obj(
            {
                "name": {"type": "string", "maxLength": 200},
                "response": _nullable(_ref("ResponseSpecInput")),
                "verify": _nullable(_ref("VerifyInput")),
                "resign": _nullable(_ref("ResignInput")),
                "forward_targets": _nullable(
                    {"anyOf": [STRING, {"type": "array", "items": STRING, "maxItems": 10}]}
                ),
                "passthrough": _nullable(_ref("PassthroughInput")),
                "replay_target": _nullable(STRING),
                # The endpoint's read-only fields are accepted and ignored, so a GET result can be sent back.
                **{name: {} for name in (
                    "id", "ingest_url", "inspect_url", "created_at", "request_count", "last_request_at"
                )},
            },
            required=[],
        ),
        "UnreadableOption": _obj(
            {"error": STRING},
            required=["error"],
        ),
        "Verification": _obj({"status": VERIFICATION_STATUS, "reason": STRING}),
        "RequestSummary": _obj(_summary_properties()),
        "CapturedRequest": _obj(
            {
                **_summary_properties(),
                "headers": {"type": "array", "items": PAIR},
                "headers_latin1": {
                    "type": "array",
                    "items": {"type": "integer", "minimum": 0},
                    "description": "indexes of headers shown as ISO-8859-1 text (their bytes are not UTF-8)",
                },
                "http_version": STRING,
                "body": STRING,
                "body_encoding": {"type": "string", "enum": ["utf-8", "base64"]},
                "body_truncated": BOOL,
            }
        ),
        "Delivery": _obj(
            {
                "id": ID,
                "request_id": ID,
                "endpoint_id": STRING,
                "kind": {"type": "string", "enum": ["forward", "relay", "replay"]},
                "target": STRING,
                "relay": _nullable(STRING),
                "state": {"type": "string", "enum": ["pending", "delivered", "failed", "dead"]},
                "attempts": {"type": "integer", "minimum": 0},
                "created_at": TIME,
                "updated_at": TIME,
                "next_attempt_at": _nullable(TIME),
                "status": _nullable(INT),
                "latency_ms": _nullable(NUMBER),
                "error": _nullable(STRING),
                "response_headers": {"type": "array", "items": PAIR},
                "response_body": STRING,
                "response_body_encoding": {"type": "string", "enum": ["utf-8", "base64"]},
                "response_size": {"type": "integer", "minimum": 0},
                "response_truncated": BOOL,
                "history": {
                    "type": "array",
                    "items": _obj(
                        {"at": TIME, "status": _nullable(INT), "latency_ms": _nullable(NUMBER),
                         "error": _nullable(STRING)}
                    ),
                },
                "sent": _nullable(
                    {"type": "object", "description": "the edits a replay sent (and `resigned_with`), if any"}
                ),
            }
        ),
        "RelayStatus": _obj(
            {
                "name": STRING,
                "connected": BOOL,
                "acked_id": {**INT, "description": "position (seq) acknowledged: everything after it is owed"},
                "acked_at": _nullable(EPOCH),
                "connected_at": _nullable(EPOCH),
                "last_seen_at": _nullable(EPOCH),
                "remote": _nullable(STRING),
                "in_flight": {"type": "integer", "minimum": 0},
                "pending": {"type": "integer", "minimum": 0},
                "skipped": SKIPPED,
                "owner": _nullable({**STRING, "description": "id of the instance serving it (null: none)"}),
            }
        ),
        "TargetStatus": _obj(
            {
                "target": STRING,
                "acked_id": _nullable({**INT, "description": "position (seq) acknowledged"}),
                "current_request_id": _nullable(INT),
                "attempts": {"type": "integer", "minimum": 0},
                "next_attempt_at": _nullable(EPOCH),
                "last_error": _nullable(STRING),
                "pending": _nullable({"type": "integer", "minimum": 0}),
                "skipped": SKIPPED,
                "owner": _nullable({**STRING, "description": "id of the instance delivering it (null: none)"}),
            }
        ),
        "SignatureHelp": _obj(
            {
                "scheme": STRING,
                "signature_header": STRING,
                "secret_hint": _nullable(STRING),
                "received": {"type": "array", "items": STRING},
                "expected": _nullable(STRING),
                "signed_string": _nullable(STRING),
                "signed_string_b64": _nullable(STRING),
                "timestamp": _nullable(INT),
                "verification": _ref("Verification"),
                "notes": {"type": "array", "items": STRING},
            }
        ),
        "ReplayInput": _obj(
            {
                "target": {"type": "string", "description": "URL; default: the endpoint's replay_target"},
                "method": _nullable({"type": "string", "maxLength": 32}),
                "path": _nullable({"type": "string", "maxLength": 8192}),
                "query": _nullable({"type": "string", "maxLength": 8192}),
                "headers": _nullable({"type": "array", "items": PAIR, "maxItems": 200}),
                "body": _nullable(STRING),
                "body_encoding": {"type": "string", "enum": ["utf-8", "base64"]},
                "resign": _ref("ResignChoice"),
            },
            required=[],
            closed=False,
        ),
        "ResignChoice": {
            "description": "absent or null: the endpoint's `resign` setting; false: as captured; an object: sign so",
            "anyOf": [{"const": False}, {"type": "null"}, _ref("ResignInput")],
        },
        "BulkReplayInput": _obj(
            {
                "target": STRING,
                "ids": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": MAX_ID},
                        "maxItems": 500},
                "method": {"type": "string", "description": "comma-separated methods"},
                "q": _nullable({"type": "string", "maxLength": 1000}),
                "verification": _nullable(VERIFICATION_STATUS),
                "duplicate": _nullable(BOOL),
                "provider": _nullable(STRING),
                "after": _nullable({"type": "integer", "minimum": 0, "maximum": MAX_ID,
                                    "description": "position (seq)"}),
                "before": _nullable({"type": "integer", "minimum": 0, "maximum": MAX_ID,
                                     "description": "position (seq)"}),
                "limit": {"type": "integer", "minimum": 1, "maximum": 500},
                "resign": _ref("ResignChoice"),
            },
            required=[],
            closed=False,
        ),
    }


def _option(schema: Schema) -> Schema:
    # A setting stored by an older version that today's code cannot render is shown as {"error": ...}
    # (app/web/endpoint_schema.py), so one bad row never turns every listing into a 500.
    return {"anyOf": [schema, _ref("UnreadableOption")]}


def _summary_properties() -> dict[str, Schema]:
    return {
        "id": ID,
        "seq": {**ID, "description": "position (seq) in the endpoint: increases in capture (commit) order; the list "
                "API's `before`/`after`, the live socket's and `wait`'s `after` and relay cursors are seqs"},
        "endpoint_id": STRING,
        "received_at": TIME,
        "method": STRING,
        "path": {"type": "string", "description": "the sub-path after /h/{id}"},
        "query": STRING,
        "body_size": {"type": "integer", "minimum": 0},
        "content_type": STRING,
        "client": _nullable(STRING),
        "rejected": _nullable({"type": "string", "description": "why the body was not kept (e.g. too large)"}),
        "provider": _nullable(STRING),
        "event_type": _nullable(STRING),
        "event_id": _nullable(STRING),
        "verification": _ref("Verification"),
        "duplicate_of": _nullable(ID),
    }


def _error(description: str, headers: dict[str, Schema] | None = None) -> Schema:
    response = _json(_ref("Error"), description)
    if headers:
        response["headers"] = headers
    return response


def _responses() -> dict[str, Schema]:
    return {
        "BadRequest": _error("invalid JSON, parameter or field (`error.code` says which)"),
        "Unauthorized": _error(
            "the server has a token and the request carries neither it nor the browser session cookie",
            {"WWW-Authenticate": {"schema": STRING}},
        ),
        "Forbidden": _error("refused: a cross-site browser request"),
        "NotFound": _error("no such resource (`endpoint_not_found`, `request_not_found`, ...)"),
        "Conflict": _error("not possible in the resource's current state"),
        "TooLarge": _error("request body over 2 MiB"),
        "MisdirectedRequest": _error("the Host header names none of this server's names"),
        "ServerError": _error("a server fault: `internal`, or `body_missing` when a stored body file was lost"),
        "NoContent": {"description": "done; no body"},
    }


def _parameters() -> dict[str, Schema]:
    def path(name: str, schema: Schema, description: str) -> Schema:
        return {"name": name, "in": "path", "required": True, "schema": schema, "description": description}

    def query(name: str, schema: Schema, description: str) -> Schema:
        return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}

    filter_id = {"type": "integer", "minimum": 0, "maximum": MAX_FILTER_ID}
    return {
        "EndpointId": path("endpoint_id", STRING, "the endpoint's id (22 URL-safe characters)"),
        "RequestId": path("request_id", ID, "a captured request's id"),
        "DeliveryId": path("delivery_id", ID, "a delivery's id"),
        "RelayName": path("name", STRING, "the relay's name (`hookscope forward --name`)"),
        "Before": query("before", filter_id,
                        "only positions (seq) below this (the previous page's `next_before`)"),
        "After": query("after", filter_id, "only positions (seq) above this, oldest first"),
        "Limit": query("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "page size (default 50)"),
        "Method": query("method", STRING, "comma-separated methods, e.g. POST,PUT"),
        "Q": query("q", {"type": "string", "maxLength": 1000},
                   "text searched in path, query, headers and inline bodies (ASCII case-insensitive)"),
        "Provider": query("provider", STRING, "detected provider, e.g. stripe"),
        "VerificationFilter": query("verification", VERIFICATION_STATUS, "stored signature verdict"),
        "Duplicate": query("duplicate", STRING, "1, true or yes: only provider retries; anything else: none"),
    }


FILTERS = ("Method", "Q", "Provider", "VerificationFilter", "Duplicate")


def _op(
    op_id: str,
    summary: str,
    ok: dict[str, Schema],
    *,
    params: tuple[str, ...] = (),
    body: str | None = None,
    errors: tuple[int, ...] = (),
    public: bool = False,
) -> Schema:
    """One operation. Any may answer 500; all but the public one 401 (token set) and 421 (unknown Host)."""
    responses: dict[str, Schema] = dict(ok)
    always = (500,) if public else (401, 421, 500)
    for status in sorted({*errors, *always}):
        responses[str(status)] = _resp(ERROR_RESPONSES[status])
    op: Schema = {"operationId": op_id, "summary": summary, "responses": responses}
    if params:
        op["parameters"] = [_param(p) for p in params]
    if body is not None:
        op["requestBody"] = {"required": False, "content": {JSON: {"schema": _ref(body)}}}
    return op


ERROR_RESPONSES = {
    400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 409: "Conflict", 413: "TooLarge",
    421: "MisdirectedRequest", 500: "ServerError",
}
# Unsafe methods read a JSON body (400 invalid_json, 413) and are refused cross-site (403).
WRITE_ERRORS = (400, 403, 413)


def _paths() -> dict[str, Schema]:
    endpoint = {"200": _json(_ref("Endpoint"), "the endpoint")}
    delivery = {"200": _json(_ref("Delivery"), "the delivery")}
    return {
        "/healthz": {
            "get": _op(
                "healthz",
                "Health; public even with a token, and answers any Host",
                {
                    "200": _json(_obj({"ok": {"const": True}}), "storage takes writes"),
                    "503": _json(_obj({"ok": {"const": False}, "reason": STRING}), "storage does not take writes"),
                },
                public=True,
            ),
        },
        "/api/openapi.json": {
            "get": _op("openapi", "This document", {"200": _json({"type": "object"}, "OpenAPI 3.1")}),
        },
        "/api/endpoints": {
            "post": _op("createEndpoint", "Create an endpoint",
                        {"201": _json(_ref("Endpoint"), "created")}, body="EndpointInput", errors=WRITE_ERRORS),
            "get": _op("listEndpoints", "All endpoints, newest first",
                       {"200": _json(_obj({"endpoints": {"type": "array", "items": _ref("Endpoint")}}), "list")}),
        },
        "/api/endpoints/{endpoint_id}": {
            "parameters": [_param("EndpointId")],
            "get": _op("getEndpoint", "One endpoint", endpoint, errors=(404,)),
            "patch": _op("updateEndpoint", "Change settings; null removes an option", endpoint,
                         body="EndpointInput", errors=(*WRITE_ERRORS, 404)),
            "delete": _op("deleteEndpoint", "Delete it and everything it captured", {"204": _resp("NoContent")},
                          errors=(403, 404)),
        },
        "/api/endpoints/{endpoint_id}/requests": {
            "parameters": [_param("EndpointId")],
            "get": _op(
                "listRequests",
                "Captured requests: newest first by `before`, or oldest first after `after`",
                {"200": _json(
                    _obj(
                        {
                            "requests": {"type": "array", "items": _ref("RequestSummary")},
                            "has_more": BOOL,
                            "next_before": _nullable(ID),
                            "last_id": _nullable({"type": "integer", "minimum": 0}),
                        },
                        required=["requests", "has_more"],
                    ),
                    "a page: `next_before` when listing newest first, `last_id` with `after` (both positions, seq)",
                )},
                params=("Before", "After", "Limit", *FILTERS),
                errors=(400, 404),
            ),
            "delete": _op("clearRequests", "Delete every captured request of the endpoint",
                          {"200": _json(_obj({"deleted": {"type": "integer", "minimum": 0}}), "how many")},
                          errors=(403, 404)),
        },
        "/api/endpoints/{endpoint_id}/wait": {
            "parameters": [_param("EndpointId")],
            "get": _op(
                "waitForRequest",
                "Block until a matching request with id > after is committed",
                {
                    "200": _json(_ref("CapturedRequest"), "the request, in full"),
                    "204": {
                        "description": "timed out",
                        "headers": {"x-hookscope-wait": {"schema": {"const": "timeout"}}},
                    },
                },
                params=("After", *FILTERS, "Timeout"),
                errors=(400, 404),
            ),
        },
        "/api/endpoints/{endpoint_id}/replay": {
            "parameters": [_param("EndpointId")],
            "post": _op(
                "replayMany",
                "Replay `ids`, or the newest `limit` matching a filter, in capture order",
                {"200": _json(_obj({"deliveries": {"type": "array", "items": _ref("Delivery")}}), "one per request")},
                body="BulkReplayInput",
                errors=(*WRITE_ERRORS, 404),
            ),
        },
        "/api/endpoints/{endpoint_id}/relays": {
            "parameters": [_param("EndpointId")],
            "get": _op("listRelays", "Relays: connected ones and every stored cursor",
                       {"200": _json(_obj({"relays": {"type": "array", "items": _ref("RelayStatus")}}), "relays")},
                       errors=(404,)),
        },
        "/api/endpoints/{endpoint_id}/relays/{name}": {
            "parameters": [_param("EndpointId"), _param("RelayName")],
            "delete": _op("forgetRelay", "Forget a relay's position", {"204": _resp("NoContent")},
                          errors=(403, 404)),
        },
        "/api/endpoints/{endpoint_id}/forwarding": {
            "parameters": [_param("EndpointId")],
            "get": _op("forwardingStatus", "Each forward target's position and last error",
                       {"200": _json(_obj({"instance": {**STRING, "description": "id of the answering instance"},
                                           "targets": {"type": "array", "items": _ref("TargetStatus")}}),
                                     "targets")},
                       errors=(404,)),
        },
        "/api/endpoints/{endpoint_id}/relay": {
            "parameters": [_param("EndpointId"), _param("RelayNameQuery"), _param("RelayFrom")],
            "get": _websocket("relaySocket", "The relay protocol of `hookscope forward` (docs/forwarding.md)"),
        },
        "/api/endpoints/{endpoint_id}/live": {
            "parameters": [_param("EndpointId"), _param("After")],
            "get": _websocket("liveSocket", "The inspector's live stream: backfill after `after`, then new requests"),
        },
        "/api/requests/{request_id}": {
            "parameters": [_param("RequestId")],
            "get": _op("getRequest", "A captured request in full",
                       {"200": _json(_ref("CapturedRequest"), "the request")},
                       params=("MaxBody",), errors=(400, 404)),
            "delete": _op("deleteRequest", "Delete one request", {"204": _resp("NoContent")}, errors=(403, 404)),
        },
        "/api/requests/{request_id}/raw": {
            "parameters": [_param("RequestId")],
            "get": _op(
                "rawBody",
                "The exact body bytes with the captured Content-Type (active types as attachments)",
                {"200": {
                    "description": "the bytes; sandboxed by `Content-Security-Policy`",
                    "headers": {"Content-Disposition": {"schema": STRING}},
                    "content": {"*/*": {}},  # any bytes: OpenAPI 3.1 needs no schema for them
                }},
                params=("Download",),
                errors=(404,),
            ),
        },
        "/api/requests/{request_id}/signature": {
            "parameters": [_param("RequestId")],
            "get": _op("signatureHelp", "Received vs expected signature and the exact signed string",
                       {"200": _json(_ref("SignatureHelp"), "the explanation")}, errors=(404, 409)),
        },
        "/api/requests/{request_id}/deliveries": {
            "parameters": [_param("RequestId")],
            "get": _op(
                "listDeliveries",
                "Every forward, relay and replay delivery of the request",
                {"200": _json(
                    _obj({
                        "deliveries": {"type": "array", "items": _ref("Delivery")},
                        "queued": {"type": "array", "items": _obj({"kind": {"const": "forward"}, "target": STRING})},
                    }),
                    "deliveries and forwards still queued",
                )},
                errors=(404,),
            ),
        },
        "/api/requests/{request_id}/replay": {
            "parameters": [_param("RequestId")],
            "post": _op("replayRequest", "Send it again, optionally edited and re-signed",
                        {"201": _json(_ref("Delivery"), "the replay's delivery")},
                        body="ReplayInput", errors=(*WRITE_ERRORS, 404)),
        },
        "/api/deliveries/{delivery_id}": {
            "parameters": [_param("DeliveryId")],
            "get": _op("getDelivery", "One delivery", delivery, errors=(404,)),
        },
        "/api/deliveries/{delivery_id}/retry": {
            "parameters": [_param("DeliveryId")],
            "post": _op("retryDelivery", "Retry a dead or failed forward or replay once, now", delivery,
                        errors=(403, 404, 409)),
        },
    }


def _websocket(op_id: str, summary: str) -> Schema:
    return {
        "operationId": op_id,
        "summary": summary,
        "description": "A websocket: connect with an Upgrade handshake. Frames are JSON text.",
        "x-websocket": True,
        "responses": {
            "101": {"description": "switching to the websocket protocol"},
            "403": {"description": "handshake refused: no token, or a cross-origin page"},
            "421": {"description": "the Host header names none of this server's names"},
        },
    }


def _more_parameters() -> dict[str, Schema]:
    def query(name: str, schema: Schema, description: str) -> Schema:
        return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}

    return {
        "Timeout": query("timeout", {"type": "number", "minimum": 0},
                         "seconds to wait (default 30; more than 300 counts as 300)"),
        "MaxBody": query("max_body", {"type": "integer", "minimum": 0, "maximum": MAX_FILTER_ID},
                         "return at most this many body bytes (`body_truncated` says so)"),
        "Download": query("download", STRING, "any non-empty value: always as an attachment"),
        "RelayNameQuery": query("name", STRING, "the relay's name"),
        "RelayFrom": query("from", STRING, "all, now, or a position (seq) to start at"),
    }


def build_document() -> Schema:
    # A deep copy: the schema constants above are shared between places, and a caller (schemathesis resolves
    # references in place) must never change them.
    return copy.deepcopy(_document())


def _document() -> Schema:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "hookscope",
            "version": "1",
            "description": (
                "The JSON API of a hookscope server. Errors are always `{\"error\": {\"code\", \"message\"}}`. "
                "Ingest (`/h/{endpoint_id}/...`, any method, public) is not described here: it answers "
                "whatever the endpoint is configured to answer, and `GET /h/{id}` with `Accept: "
                "text/event-stream` is the smee-compatible event stream."
            ),
        },
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "responses": _responses(),
            "parameters": {**_parameters(), **_more_parameters()},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "the server's --token"},
                "session": {"type": "apiKey", "in": "cookie", "name": "hookscope_session",
                            "description": "set by the login form"},
            },
        },
        # {} first: a server bound to loopback without a token needs no credentials.
        "security": [{}, {"bearer": []}, {"session": []}],
    }


@lru_cache(maxsize=1)
def _serialised() -> bytes:
    # Serialised once per process: the document depends on nothing but this module and the provider schemes.
    return json.dumps(build_document(), separators=(",", ":")).encode()


async def openapi_json(request: Request) -> Response:
    return Response(_serialised(), media_type=JSON)


routes = [
    Route("/api/openapi.json", openapi_json, methods=["GET"]),
]
