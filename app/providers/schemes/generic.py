"""``hmac``: a user-described scheme for senders we have no preset for.

Signed string = ``template`` with ``{body}`` (raw bytes), ``{timestamp}`` and
``{id}`` (taken from the configured headers) substituted; the header holds
``prefix + encode(HMAC(secret, signed string))``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from app.providers import crypto
from app.providers.config import VerifyConfig
from app.providers.schemes.base import (
    HmacScheme,
    Parsed,
    Problem,
    Resigned,
    require_header,
    require_timestamp,
    set_headers,
)
from app.providers.types import SignedRequest, Verdict

_PLACEHOLDER = re.compile(r"\{(body|timestamp|id)\}")


def render_template(
    template: str, body: bytes, timestamp: str | None, msg_id: str | None
) -> bytes:
    """Substitute placeholders into bytes; the body is never decoded."""
    out = bytearray()
    pos = 0
    for match in _PLACEHOLDER.finditer(template):
        out += template[pos : match.start()].encode("utf-8")
        name = match.group(1)
        if name == "body":
            out += body
        elif name == "timestamp":
            out += (timestamp or "").encode("ascii", errors="replace")
        else:
            out += crypto.header_bytes(msg_id or "")
        pos = match.end()
    out += template[pos:].encode("utf-8")
    return bytes(out)


class GenericScheme(HmacScheme):
    name = "hmac"
    # A header timestamp is only checked when the user names one.
    default_tolerance = 300

    def parse(self, req: SignedRequest, config: VerifyConfig) -> Parsed:
        header = config.header or ""
        value = require_header(req, header)
        signature = value
        if config.prefix:
            if not value.startswith(config.prefix):
                raise Problem(
                    f"malformed header ({header} should start with {config.prefix!r})"
                )
            signature = value[len(config.prefix) :]
        decoded = crypto.decode(signature, config.encoding)
        if decoded is None:
            raise Problem(f"malformed header ({header} is not {config.encoding})")
        timestamp: int | None = None
        ts_text: str | None = None
        if config.timestamp_header:
            timestamp = require_timestamp(req, config.timestamp_header)
            ts_text = (req.header(config.timestamp_header) or "").strip()
        msg_id: str | None = None
        if config.id_header:
            msg_id = req.header(config.id_header)
            if msg_id is None and "{id}" in config.template:
                raise Problem(f"no id header (expected {config.id_header})")
        message = render_template(config.template, req.body, ts_text, msg_id)
        return Parsed(
            (value,), (decoded,), (message,), timestamp, algorithm=config.algorithm
        )

    def render(self, digest: bytes, parsed: Parsed, config: VerifyConfig) -> str:
        return config.prefix + crypto.encode(digest, config.encoding)

    def verify(self, req: SignedRequest, config: VerifyConfig, now: float) -> Verdict:
        problem = config.problem()
        if problem is not None:
            return Verdict("unconfigured", problem)
        return super().verify(req, config, now)

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
        problem = config.problem()
        if problem is not None or not config.header:
            raise ValueError(problem or "hmac scheme needs verify.header")
        ts = str(int(now))
        present = {name.lower(): value for name, value in reversed(list(headers))}
        msg_id = present.get(config.id_header.lower()) if config.id_header else None
        message = render_template(config.template, body, ts, msg_id)
        digest = crypto.mac(config.algorithm, self.key(secret), message)
        updates = [
            (config.header, config.prefix + crypto.encode(digest, config.encoding))
        ]
        if config.timestamp_header:
            updates.append((config.timestamp_header, ts))
        return Resigned(url, set_headers(headers, updates), body)
