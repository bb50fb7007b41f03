from __future__ import annotations

import pytest

from app.client.relay import Rule, build_options, relay_url


def test_relay_url_from_ingest_or_inspect_url() -> None:
    assert relay_url("https://hooks.example.com/h/AbC", "me@box", None) == \
        "wss://hooks.example.com/api/endpoints/AbC/relay?name=me%40box"
    assert relay_url("http://127.0.0.1:8080/prefix/e/X/", "n", "all") == \
        "ws://127.0.0.1:8080/prefix/api/endpoints/X/relay?name=n&from=all"
    with pytest.raises(ValueError):
        relay_url("http://host/api/x", "n", None)


def test_rules_match_path_header_and_json() -> None:
    body = b'{"type": "invoice.paid", "data": {"object": {"livemode": false}}}'
    headers = [("x-github-event", "push")]
    cases = {
        "http://localhost:1": True,
        "path:/stripe=http://localhost:1": False,
        "path:/gh=http://localhost:1": True,
        "header:X-GitHub-Event=http://localhost:1": True,
        "header:x-github-event:ping=http://localhost:1": False,
        "json:type:invoice.paid=http://localhost:1": True,
        "json:data.object.livemode:false=http://localhost:1": True,
        "json:data.missing=http://localhost:1": False,
    }
    for spec, expected in cases.items():
        assert Rule(spec).matches("/gh/x", headers, body, []) is expected, spec
    assert Rule("json:type=http://localhost:1").matches("/", [], b"not json", []) is False
    assert Rule("http://localhost:3000/a?b=c").url == "http://localhost:3000/a?b=c"


def test_options_validation() -> None:
    with pytest.raises(ValueError, match="--to"):
        build_options("http://h/h/X", [], None, None, None, 60, False, False)
    with pytest.raises(ValueError):
        build_options("http://h/h/X", ["weird:thing=http://x"], None, None, None, 60, False, False)
    with pytest.raises(ValueError, match="--from"):
        build_options("http://h/h/X", ["http://localhost:1"], None, None, "yesterday", 60, False, False)
    opts = build_options("http://h/h/X", ["http://localhost:1"], "t", None, "5", 60, True, False)
    assert opts.name and opts.token == "t" and opts.start == "5"
