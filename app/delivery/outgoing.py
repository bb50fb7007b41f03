"""Building the outgoing request from a capture (pure: no I/O, tested without sockets).

Captured fields are ISO-8859-1 strings of the raw bytes, so `.encode("latin-1")` gives back exactly what the
sender sent; that is what we forward. Host, Content-Length and hop-by-hop headers describe the hop the capture
arrived on, not the one we make, so they are dropped and Host/Content-Length recomputed. Everything else keeps
its order and duplicates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
RECOMPUTED = frozenset({b"host", b"content-length"})

RawHeaders = list[tuple[bytes, bytes]]


class TargetError(ValueError):
    """A target URL we cannot send to (not http/https, no host, bad port)."""


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str
    host: str  # without brackets for IPv6
    port: int
    netloc: str  # as written in the URL: what the Host header carries
    path: str
    query: str

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.netloc}"


def parse_target(url: str) -> Target:
    """Parse and check a target URL such as http://localhost:3000/webhooks."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise TargetError(f"not a valid URL: {url!r} ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise TargetError(f"target must be an http:// or https:// URL, not {url!r}")
    if not parts.hostname:
        raise TargetError(f"target URL has no host: {url!r}")
    if parts.username or parts.password:
        raise TargetError("target URL must not carry credentials; set an Authorization header instead")
    if parts.fragment:
        raise TargetError("target URL must not have a #fragment")
    if any(c in url for c in " \r\n\t\0"):
        raise TargetError("target URL must not contain whitespace or control characters")
    default = 443 if parts.scheme == "https" else 80
    netloc = parts.netloc
    return Target(parts.scheme, parts.hostname, port or default, netloc, parts.path, parts.query)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One HTTP/1.1 request, ready for the wire."""

    target: Target
    method: str
    path_query: bytes  # request-target: path plus "?query" when there is one
    headers: RawHeaders = field(default_factory=list)
    body: bytes = b""

    @property
    def url(self) -> str:
        return self.target.origin + self.path_query.decode("latin-1")

    def head_bytes(self) -> bytes:
        lines = [self.method.encode("latin-1") + b" " + self.path_query + b" HTTP/1.1"]
        lines.extend(n + b": " + v for n, v in self.headers)
        return b"\r\n".join(lines) + b"\r\n\r\n"


def join_path(target_path: str, sub_path: str) -> str:
    """The target's path with the captured sub-path appended: /webhooks + /github -> /webhooks/github."""
    if not sub_path:
        return target_path or "/"
    return target_path.rstrip("/") + sub_path


def join_query(target_query: str, captured_query: str) -> str:
    return "&".join(q for q in (target_query, captured_query) if q)


def connection_tokens(headers: list[tuple[str, str]] | tuple[tuple[str, str], ...]) -> set[bytes]:
    """Header names listed in Connection: they are hop-by-hop too (RFC 9110 7.6.1)."""
    names: set[bytes] = set()
    for name, value in headers:
        if name.lower() == "connection":
            names.update(t.strip().lower().encode("latin-1") for t in value.split(",") if t.strip())
    return names


def build_outgoing(
    target: Target,
    method: str,
    sub_path: str,
    query: str,
    headers: tuple[tuple[str, str], ...] | list[tuple[str, str]],
    body: bytes,
) -> Outgoing:
    """The request to send to `target` for a capture (or an edited copy of one)."""
    path = join_path(target.path, sub_path)
    q = join_query(target.query, query)
    path_query = (path + ("?" + q if q else "")).encode("latin-1")
    drop = HOP_BY_HOP | RECOMPUTED | connection_tokens(headers)
    out: RawHeaders = [(b"host", target.netloc.encode("latin-1"))]
    had_framing = False
    for name, value in headers:
        raw = name.encode("latin-1")
        lowered = raw.lower()
        if lowered in (b"content-length", b"transfer-encoding"):
            had_framing = True
        if lowered in drop:
            continue
        out.append((raw, value.encode("latin-1")))
    if body or had_framing or method.upper() in ("POST", "PUT", "PATCH"):
        out.append((b"content-length", str(len(body)).encode()))
    return Outgoing(target, method, path_query, out, body)
