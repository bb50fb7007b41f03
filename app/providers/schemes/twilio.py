"""Twilio: ``X-Twilio-Signature: <base64>`` over the URL plus sorted form params.

Form posts: URL, then for each parameter name in sorted order its values
(deduplicated, sorted) appended as ``name + value``. JSON posts: Twilio adds
``bodySHA256=<hex>`` to the URL's query, signs only the URL, and the receiver
checks the body against that hash. The official validators accept the URL
with and without its default port, so we try the same variants.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from app.providers import crypto
from app.providers.config import VerifyConfig
from app.providers.payload import parse_form
from app.providers.schemes.base import (
    HmacScheme,
    Parsed,
    Problem,
    Resigned,
    require_header,
    set_headers,
)
from app.providers.types import SignedRequest

_DEFAULT_PORTS = {"https": "443", "http": "80"}
_BODY_HASH = "bodySHA256"


def _split_port(netloc: str) -> tuple[str, str, str | None]:
    """(userinfo@, host, port) without normalising case, unlike urlsplit's."""
    userinfo, at, hostport = netloc.rpartition("@")
    prefix = userinfo + at
    if hostport.startswith("["):
        end = hostport.find("]")
        port = (
            hostport[end + 2 :]
            if end != -1 and hostport[end + 1 : end + 2] == ":"
            else ""
        )
        if port.isdigit():
            return prefix, hostport[: end + 1], port
        return prefix, hostport, None
    host, colon, port = hostport.rpartition(":")
    if colon and port.isdigit():
        return prefix, host, port
    return prefix, hostport, None


def url_variants(url: str) -> list[str]:
    """The URL as given, with its default port added, and with any port removed."""
    variants = [url]
    try:
        parts = urlsplit(url)
    except ValueError:
        return variants
    prefix, host, port = _split_port(parts.netloc)
    default = _DEFAULT_PORTS.get(parts.scheme.lower())
    if port is None and default is not None and host:
        variants.append(urlunsplit(parts._replace(netloc=f"{prefix}{host}:{default}")))
    if port is not None:
        variants.append(urlunsplit(parts._replace(netloc=f"{prefix}{host}")))
    return list(dict.fromkeys(variants))


def _is_form(headers: SignedRequest, body: bytes) -> bool:
    content_type = (headers.header("content-type") or "").lower()
    if "application/x-www-form-urlencoded" in content_type:
        return True
    return not content_type and bool(body)


def signed_string(url: str, params: Sequence[tuple[str, str]]) -> bytes:
    grouped: dict[str, set[str]] = {}
    for name, value in params:
        grouped.setdefault(name, set()).add(value)
    pieces = [url]
    for name in sorted(grouped):
        for value in sorted(grouped[name]):
            pieces.append(name + value)
    return "".join(pieces).encode("utf-8")


def _query_body_hash(url: str) -> str | None:
    try:
        query = urlsplit(url).query
    except ValueError:
        return None
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name == _BODY_HASH:
            return value
    return None


def _algorithm(req: SignedRequest) -> str:
    # Newer Twilio products announce HMAC-SHA256 (SharedKey) in this header;
    # its absence means the classic Auth Token + HMAC-SHA1.
    settings = req.header("x-twilio-webhooks-signature-settings") or ""
    for item in settings.split(","):
        key, _, value = item.strip().partition("=")
        if (
            key.strip().lower() == "algorithm"
            and value.strip().upper() == "HMAC_SHA256"
        ):
            return "sha256"
    return "sha1"


def public_url(config: VerifyConfig, received: str) -> str:
    """The URL Twilio called: the override, keeping the received query if it has none."""
    if not config.url:
        return received
    try:
        override, got = urlsplit(config.url), urlsplit(received)
    except ValueError:
        return config.url
    if not override.query and got.query:
        return urlunsplit(override._replace(query=got.query))
    return config.url


def with_body_hash(url: str, body: bytes) -> str:
    """``url`` whose ``bodySHA256`` query parameter matches ``body``."""
    digest = hashlib.sha256(body).hexdigest()
    base, hash_mark, fragment = url.partition("#")
    path, _, query = base.partition("?")
    items = [
        item
        for item in query.split("&")
        if item and not item.startswith(_BODY_HASH + "=")
    ]
    items.append(f"{_BODY_HASH}={digest}")
    return path + "?" + "&".join(items) + hash_mark + fragment


class TwilioScheme(HmacScheme):
    name = "twilio"
    signature_header = "X-Twilio-Signature"
    encoding = "base64"

    def parse(self, req: SignedRequest, config: VerifyConfig) -> Parsed:
        value = require_header(req, "x-twilio-signature", self.signature_header)
        decoded = crypto.decode(value, "base64")
        if decoded is None:
            raise Problem("malformed header (X-Twilio-Signature is not base64)")
        url = public_url(config, req.url)
        body_hash = _query_body_hash(url)
        after: str | None = None
        params: list[tuple[str, str]] = []
        if body_hash is not None:
            actual = hashlib.sha256(req.body).hexdigest()
            if not hmac.compare_digest(
                actual.encode(), body_hash.strip().lower().encode()
            ):
                after = "body does not match bodySHA256 in the URL (body changed after signing)"
        elif _is_form(req, req.body):
            params = parse_form(req.body)
        messages = tuple(signed_string(u, params) for u in url_variants(url))
        notes = (
            f"signed URL: {url}"
            + (
                ""
                if config.url
                else " (set verify.url if Twilio calls a different public URL)"
            ),
        )
        return Parsed(
            (value,),
            (decoded,),
            messages,
            algorithm=_algorithm(req),
            after_match_problem=after,
            notes=notes,
        )

    def prepare(
        self,
        method: str,
        url: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        now: float,
    ) -> tuple[str, bytes]:
        req = SignedRequest(
            method, url, tuple((n.lower(), v) for n, v in headers), body, now
        )
        if _query_body_hash(url) is not None or (body and not _is_form(req, body)):
            return with_body_hash(url, body), body
        return url, body

    def resign(
        self,
        config: VerifyConfig,
        secret: str,
        method: str,
        url: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        now: float,
    ) -> Resigned:
        req = SignedRequest(
            method, url, tuple((n.lower(), v) for n, v in headers), body, now
        )
        params = (
            parse_form(body)
            if _query_body_hash(url) is None and _is_form(req, body)
            else []
        )
        digest = crypto.mac(
            _algorithm(req), self.key(secret), signed_string(url, params)
        )
        value = crypto.encode(digest, "base64")
        return Resigned(
            url, set_headers(headers, [(self.signature_header, value)]), body
        )
