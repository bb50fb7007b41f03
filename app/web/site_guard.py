"""Cross-site requests and DNS rebinding: which Host names and which browser origins pages, API and websockets
answer to. Ingest (`/h/...`) never comes here: providers send any Host and any Origin.

Two rules, both aimed at the browser of the person running hookscope (scripts and curl send neither Origin nor
Sec-Fetch-Site and pass untouched):

* **Host.** A page on `rebind.evil.example` whose name the attacker re-points at 127.0.0.1 reaches us with
  `Host: rebind.evil.example`; the browser treats it as that site's own origin and lets it read every answer.
  A request whose Host names none of the allowed hosts gets 421. Without a token the rule always applies (it is
  all that stands between a rebinding page and the captures); with a token it applies only when `--allowed-host`
  is given, because a rebinding page cannot present our cookie (bound to our real host name, SameSite=Strict) or a
  bearer token, and a reverse proxy forwarding an unlisted name keeps working as before. A request without any
  Host (HTTP/1.0) is allowed: browsers always send Host, so it cannot come from a rebinding page, and anything
  that can omit Host could as well send `Host: 127.0.0.1`. `/healthz` is exempt (health probes use the pod or
  container address; the answer holds nothing).
* **Cross-site.** A state-changing request (any method but GET, HEAD, OPTIONS) that carries an Origin which is
  not an allowed origin (`null` included), or `Sec-Fetch-Site: cross-site` / `same-site`, gets 403 whatever its
  content type: a `text/plain` POST needs no CORS preflight, so the browser would send it and only hide the answer.
  Websocket handshakes get the same Origin test from `same_origin` (app/security.py), in their handlers.

Allowed hosts: the bound address, `localhost`, `127.0.0.1`, `::1`, the `--public-url` host and `--allowed-host`
values; compared without port, case-insensitively, ignoring one trailing dot. Allowed origins (scheme, host and
port all compared, default ports normalised):
  - `http(s)://<loopback name or bound address>:<--port>`;
  - the `--public-url` origin;
  - for `--allowed-host name`: `http(s)://name` (a reverse proxy on 80/443) and `http(s)://name:<--port>`
    (reached directly); for `--allowed-host name:8443`: `http(s)://name:8443`;
  - the origin the request's own Host names, when that Host is an allowed host (an SSH tunnel or a Docker port
    mapping puts the page on `localhost:9000` while we listen on 8080), or when the Host rule is off (a token
    server reached under any name: the page's origin is its Host, and the credentials defeat rebinding).
    A Host that is *not* allowed never lends its origin: a rebinding page's Origin equals its Host.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from app.settings import Settings

Scheme = Literal["http", "https"]
Origin = tuple[Scheme, str, int]  # (scheme, host name without brackets, port); the port is always explicit
Verdict = Literal["allowed", "misdirected", "cross_site"]

DEFAULT_PORTS: dict[Scheme, int] = {"http": 80, "https": 443}
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FOREIGN_FETCH_SITES = frozenset({b"cross-site", b"same-site"})
# Health probes (Kubernetes, load balancers) name the pod or container address, which nobody lists.
HOST_EXEMPT_PATHS = frozenset({"/healthz"})
# The websocket handlers read the policy from here (app.web.security_headers.same_origin): built once, handed
# down per request.
SCOPE_KEY = "hookscope.site_policy"


def _name(host: str) -> str:
    return host.strip().strip("[]").lower().removesuffix(".")


def split_host(value: str) -> tuple[str, int | None] | None:
    """A Host header (or an --allowed-host value) as (name, port): 'Example.COM:8080' -> ('example.com', 8080),
    '[::1]' -> ('::1', None), a bare '::1' (a bind address) -> ('::1', None). None when malformed."""
    value = value.strip()
    port_text: str | None
    if value.startswith("["):
        name, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port_text = rest[1:] if rest else None
    elif value.count(":") > 1:
        name, port_text = value, None
    else:
        name, colon, port_text = value.partition(":")
        port_text = port_text if colon else None
    name = _name(name)
    if not name or any(c in name for c in " /\\@[]?#%"):
        return None
    if port_text is None:
        return name, None
    if not (port_text.isascii() and port_text.isdigit() and 0 < int(port_text) < 65536):
        return None
    return name, int(port_text)


def parse_origin(value: str) -> Origin | None:
    """A serialised origin ('http://Host:80') normalised; None for 'null', a list of origins, a path, user info,
    or any scheme but http(s): all of which count as foreign."""
    parts = urlsplit(value.strip())
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or parts.path or parts.query or parts.fragment or "@" in parts.netloc:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname
    if not host:
        return None
    checked: Scheme = "https" if scheme == "https" else "http"
    return checked, _name(host), port if port is not None else DEFAULT_PORTS[checked]


@dataclass(frozen=True, slots=True)
class SitePolicy:
    """The allowed Host names and browser origins, built once from Settings (`from_settings`)."""

    hosts: frozenset[str]
    origins: frozenset[Origin]
    enforce_host: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> SitePolicy:
        return build_policy(
            settings.host, settings.port, settings.public_url, settings.allowed_hosts, settings.token is not None
        )

    def host_allowed(self, host: str | None) -> bool:
        """Whether a request with this Host header value is served (None: no Host header at all)."""
        if host is None or not self.enforce_host:
            return True
        return self.names_allowed_host(host)

    def names_allowed_host(self, host: str) -> bool:
        parsed = split_host(host)
        return parsed is not None and parsed[0] in self.hosts

    def origin_allowed(self, origin: str, host: str | None) -> bool:
        """Whether a browser page at `origin` may change state (or open a websocket) on a request sent with `host`."""
        parsed = parse_origin(origin)
        if parsed is None:
            return False
        if parsed in self.origins:
            return True
        if host is None or not (self.names_allowed_host(host) or not self.enforce_host):
            return False
        target = split_host(host)
        if target is None:
            return False
        scheme, name, port = parsed
        return name == target[0] and port == (target[1] if target[1] is not None else DEFAULT_PORTS[scheme])

    def browser_allowed(self, origins: list[bytes], fetch_sites: list[bytes], host: str | None) -> bool:
        """The cross-site rule on a request's Origin and Sec-Fetch-Site headers (each possibly repeated)."""
        if any(site.strip().lower() in FOREIGN_FETCH_SITES for site in fetch_sites):
            return False
        if not origins:
            return True  # curl, scripts, the relay CLI: no browser, no ambient credentials to abuse
        return len(origins) == 1 and self.origin_allowed(origins[0].decode("latin-1"), host)

    def check(self, scope: Scope) -> Verdict:
        """The whole rule for one HTTP request, and the Host rule for a websocket handshake."""
        hosts = [value for name, value in scope["headers"] if name == b"host"]
        if len(hosts) > 1:
            return "misdirected"  # ambiguous, and no browser sends two
        host = _host_of(hosts)
        if scope["path"] not in HOST_EXEMPT_PATHS and not self.host_allowed(host):
            return "misdirected"
        if scope["type"] == "websocket" or scope["method"] in SAFE_METHODS:
            # Websocket handshakes meet the Origin rule in their handlers (same_origin), which choose how to close.
            return "allowed"
        return "allowed" if self.from_own_site(scope) else "cross_site"

    def from_own_site(self, scope: Scope) -> bool:
        """The cross-site rule for a request or handshake scope: not sent by a browser, or by one of our pages."""
        hosts, origins, sites = browser_headers(scope)
        return self.browser_allowed(origins, sites, _host_of(hosts) if len(hosts) == 1 else None)


def _host_of(hosts: list[bytes]) -> str | None:
    return hosts[0].decode("latin-1") if hosts and hosts[0].strip() else None


def build_policy(
    bind: str, port: int, public_url: str | None, allowed_hosts: Iterable[str], token_set: bool
) -> SitePolicy:
    """The pure computation behind SitePolicy.from_settings. Raises ValueError for a malformed --allowed-host."""
    hosts = {_name(bind), *LOCAL_HOSTS}
    origins: set[Origin] = set()
    for name in hosts:
        origins.update(_with_port(name, port))
    if public_url:
        parts = urlsplit(public_url)
        parsed = parse_origin(f"{parts.scheme}://{parts.netloc}") if parts.netloc else None
        if parsed is not None:
            hosts.add(parsed[1])
            origins.add(parsed)
    extra = list(allowed_hosts)
    for value in extra:
        host = split_host(value)
        if host is None:
            raise ValueError(f"--allowed-host {value!r}: expected a host name, optionally with :port")
        name, given = host
        hosts.add(name)
        if given is None:
            origins.update({("http", name, 80), ("https", name, 443), *_with_port(name, port)})
        else:
            origins.update(_with_port(name, given))
    return SitePolicy(frozenset(hosts), frozenset(origins), enforce_host=not token_set or bool(extra))


def _with_port(name: str, port: int) -> set[Origin]:
    return {("http", name, port), ("https", name, port)}


def browser_headers(scope: Scope) -> tuple[list[bytes], list[bytes], list[bytes]]:
    hosts: list[bytes] = []
    origins: list[bytes] = []
    sites: list[bytes] = []
    for name, value in scope["headers"]:
        if name == b"host":
            hosts.append(value)
        elif name == b"origin":
            origins.append(value)
        elif name == b"sec-fetch-site":
            sites.append(value)
    return hosts, origins, sites


class SiteGuard:
    """ASGI middleware around everything but ingest: 421 for a Host that is not ours, 403 `cross_site` for a
    state-changing browser request from another origin. Websocket handshakes get the Host rule here (refused
    before the handshake) and the Origin rule in their handlers, which choose how to close."""

    def __init__(self, app: ASGIApp, policy: SitePolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        scope[SCOPE_KEY] = self.policy
        verdict = self.policy.check(scope)
        if verdict == "allowed":
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await _refuse_handshake(scope, send)
        elif verdict == "misdirected":
            await _misdirected(scope, send)
        else:
            await _respond(send, 403, "application/json", _error("cross_site", "cross-site request refused: "
                           "this server only takes state-changing requests from its own pages or non-browser "
                           "clients"))


def _error(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


HOST_MESSAGE = "this server does not answer to that Host name (add it with --allowed-host)"


async def _misdirected(scope: Scope, send: Send) -> None:
    if scope["path"].startswith("/api/") or _wants_json(scope):
        await _respond(send, 421, "application/json", _error("misdirected", HOST_MESSAGE))
    else:
        await _respond(send, 421, "text/plain; charset=utf-8", f"421 Misdirected Request: {HOST_MESSAGE}\n".encode())


async def _refuse_handshake(scope: Scope, send: Send) -> None:
    if "websocket.http.response" in scope.get("extensions", {}):
        body = _error("misdirected", HOST_MESSAGE)
        await send({"type": "websocket.http.response.start", "status": 421, "headers": _headers(
            "application/json", len(body))})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        # Without the extension the server can only answer 403; still no handshake.
        await send({"type": "websocket.close", "code": 1008})


async def _respond(send: Send, status: int, content_type: str, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": _headers(content_type, len(body))})
    await send({"type": "http.response.body", "body": body})


def _headers(content_type: str, length: int) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", content_type.encode()),
        (b"content-length", str(length).encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"cache-control", b"no-store"),
    ]


def _wants_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"accept":
            return b"application/json" in value and b"text/html" not in value
    return False
