"""Linear: ``Linear-Signature: <hex>`` over the body; freshness from the body.

Linear's SDK trusts only ``webhookTimestamp`` (milliseconds) inside the signed
body, not the ``Linear-Timestamp`` header, because only the body is signed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from app.providers import crypto
from app.providers.config import VerifyConfig
from app.providers.payload import parse_json_object
from app.providers.schemes.base import (
    HmacScheme,
    Parsed,
    Problem,
    Resigned,
    require_header,
    set_headers,
    tolerance_problem,
)
from app.providers.types import SignedRequest

_TS_FIELD = re.compile(rb'("webhookTimestamp"\s*:\s*)(-?\d+)')


def _body_timestamp_ms(body: bytes) -> int | None:
    value = (parse_json_object(body) or {}).get("webhookTimestamp")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


class LinearScheme(HmacScheme):
    name = "linear"
    signature_header = "Linear-Signature"
    default_tolerance = 60

    def parse(self, req: SignedRequest, config: VerifyConfig) -> Parsed:
        value = require_header(req, "linear-signature", self.signature_header)
        decoded = crypto.decode(value, "hex")
        if decoded is None:
            raise Problem("malformed header (Linear-Signature is not hex)")
        ms = _body_timestamp_ms(req.body)
        return Parsed(
            (value,), (decoded,), (req.body,), None if ms is None else ms // 1000
        )

    def time_problem(
        self, parsed: Parsed, config: VerifyConfig, now: float
    ) -> str | None:
        tolerance = self.tolerance(config)
        if parsed.timestamp is None:
            if tolerance:
                return "no webhookTimestamp in body (Linear signs its timestamp in the body)"
            return None
        return tolerance_problem(parsed.timestamp, now, tolerance, future_ok=False)

    def prepare(
        self,
        method: str,
        url: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        now: float,
    ) -> tuple[str, bytes]:
        return url, fresh_body(body, now)

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
        value = crypto.mac("sha256", self.key(secret), body).hex()
        return Resigned(
            url, set_headers(headers, [(self.signature_header, value)]), body
        )


def fresh_body(body: bytes, now: float) -> bytes:
    """Body with ``webhookTimestamp`` set to ``now`` so Linear's SDK accepts it.

    The value is swapped in place to keep every other byte as sent; only
    when the field is ambiguous (nested copies) is the JSON re-serialised.
    """
    data = parse_json_object(body)
    if data is None or "webhookTimestamp" not in data:
        return body
    stamp = str(int(now * 1000)).encode("ascii")
    if len(_TS_FIELD.findall(body)) == 1:
        return _TS_FIELD.sub(lambda m: m.group(1) + stamp, body)
    data["webhookTimestamp"] = int(now * 1000)
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
