"""The server's own URLs as the API, the pages and the live socket show them: its base, and an endpoint's ingest
and inspector URLs."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from app.services import services_of

# A websocket's URL names the same server as the page that opened it; the URLs it is shown are http(s) ones.
_HTTP_SCHEME = {"ws": "http", "wss": "https"}


def base_url(conn: HTTPConnection) -> str:
    """The configured public URL, else the URL this request or websocket reached us on; http(s), no trailing
    slash. A websocket gets the same answer as an HTTP request to the same host."""
    configured = services_of(conn).settings.public_url
    if configured:
        return configured.rstrip("/")
    url = conn.base_url
    scheme = _HTTP_SCHEME.get(url.scheme)
    if scheme is not None:
        url = url.replace(scheme=scheme)
    return str(url).rstrip("/")


def ingest_url(base: str, endpoint_id: str) -> str:
    return f"{base}/h/{endpoint_id}"


def inspect_url(base: str, endpoint_id: str) -> str:
    return f"{base}/e/{endpoint_id}"
