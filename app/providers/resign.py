"""Re-signing for forwards and replays to a developer's server.

The dev server runs the provider's own verifier with a *dev* secret; we swap
in fresh signature headers made with that secret and a current timestamp,
leaving every other header, and the header order, as captured.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.providers.config import VerifyConfig
from app.providers.schemes import Resigned, get_scheme, public_key_for_seed

__all__ = ["Resigned", "public_key_for_seed", "resign", "resign_request"]


def _config(scheme: str | VerifyConfig) -> VerifyConfig:
    config = scheme if isinstance(scheme, VerifyConfig) else VerifyConfig(scheme=scheme)
    if get_scheme(config.scheme) is None:
        raise ValueError(f"unknown scheme {config.scheme!r}")
    return config


def resign_request(
    scheme: str | VerifyConfig,
    secret: str,
    method: str,
    url: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    now: float,
) -> Resigned:
    """URL, headers and body to send so the dev server's verifier passes.

    Prefer this over ``resign`` in the forwarder: for Linear it refreshes
    ``webhookTimestamp`` inside the body (Linear checks that, not a header),
    and for Twilio JSON deliveries it sets ``bodySHA256`` in the URL to the
    hash of the (possibly edited) body. For all other schemes URL and body
    come back unchanged. ``url`` is the URL the dev server will see (and, for
    Square, the notification URL it verifies against).
    Raises ValueError for an unknown scheme or an unusable secret.
    """
    config = _config(scheme)
    implementation = get_scheme(config.scheme)
    assert implementation is not None  # checked by _config
    new_url, new_body = implementation.prepare(method, url, headers, body, now)
    return implementation.resign(
        config, secret, method, new_url, headers, new_body, now
    )


def resign(
    scheme: str | VerifyConfig,
    secret: str,
    method: str,
    url: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    now: float,
) -> list[tuple[str, str]]:
    """``headers`` with the scheme's signature headers replaced for ``body``.

    Signs exactly the given URL and body; see ``resign_request`` for the
    schemes (Linear, Twilio JSON) that also need the body or URL adjusted.
    Pass a ``VerifyConfig`` instead of a scheme name for ``hmac``, whose
    header, template and encoding live in the config.
    """
    config = _config(scheme)
    implementation = get_scheme(config.scheme)
    assert implementation is not None  # checked by _config
    return implementation.resign(
        config, secret, method, url, headers, body, now
    ).headers
