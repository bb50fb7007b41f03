from __future__ import annotations

import pytest

from app.delivery.outgoing import TargetError, build_outgoing, parse_target


def test_builds_exact_request_with_sub_path_query_and_headers() -> None:
    target = parse_target("http://localhost:3000/webhooks?src=hs")
    headers = (
        ("host", "hooks.example.com"),
        ("x-dup", "1"),
        ("content-length", "5"),
        ("connection", "keep-alive, x-hop"),
        ("x-hop", "drop me"),
        ("transfer-encoding", "chunked"),
        ("x-dup", "2"),
        ("x-raw", "caf\xe9"),  # the byte 0xE9, not UTF-8
    )
    out = build_outgoing(target, "PROPFIND", "/github/a%2Fb", "x=1&x=2", headers, b"hello")
    assert out.method == "PROPFIND"
    assert out.path_query == b"/webhooks/github/a%2Fb?src=hs&x=1&x=2"
    assert out.headers == [
        (b"host", b"localhost:3000"),
        (b"x-dup", b"1"),
        (b"x-dup", b"2"),
        (b"x-raw", b"caf\xe9"),
        (b"content-length", b"5"),
    ]
    assert out.head_bytes().startswith(b"PROPFIND /webhooks/github/a%2Fb?src=hs&x=1&x=2 HTTP/1.1\r\nhost: ")
    assert out.body == b"hello"


def test_no_sub_path_keeps_target_path_and_get_has_no_length() -> None:
    out = build_outgoing(parse_target("http://127.0.0.1:8000"), "GET", "", "", (), b"")
    assert out.path_query == b"/"
    assert out.headers == [(b"host", b"127.0.0.1:8000")]
    out = build_outgoing(parse_target("http://[::1]:8000/hook/"), "POST", "/x", "", (), b"")
    assert out.path_query == b"/hook/x"
    assert (b"content-length", b"0") in out.headers
    assert out.headers[0] == (b"host", b"[::1]:8000")


@pytest.mark.parametrize("url", ["ftp://x/", "http:///nohost", "http://user:pw@localhost/", "localhost:3000"])
def test_bad_targets(url: str) -> None:
    with pytest.raises(TargetError):
        parse_target(url)
