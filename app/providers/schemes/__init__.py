"""Registry of verification schemes by config name."""

from __future__ import annotations

from app.providers.schemes.base import Resigned, Scheme
from app.providers.schemes.bodymac import ShopifyScheme, SquareScheme
from app.providers.schemes.discord import DiscordScheme, public_key_for_seed
from app.providers.schemes.generic import GenericScheme
from app.providers.schemes.github import GithubScheme
from app.providers.schemes.gitlab import GitlabScheme
from app.providers.schemes.linear import LinearScheme
from app.providers.schemes.paddle import PaddleScheme
from app.providers.schemes.standard import StandardScheme
from app.providers.schemes.stripe import StripeScheme
from app.providers.schemes.twilio import TwilioScheme
from app.providers.schemes.v0 import SlackScheme, ZoomScheme

_STANDARD = StandardScheme()
_REGISTRY: dict[str, Scheme] = {
    "stripe": StripeScheme(),
    "github": GithubScheme(),
    "standard-webhooks": _STANDARD,
    "svix": _STANDARD,
    "clerk": _STANDARD,
    "resend": _STANDARD,
    "shopify": ShopifyScheme(),
    "slack": SlackScheme(),
    "twilio": TwilioScheme(),
    "square": SquareScheme(),
    "paddle": PaddleScheme(),
    "linear": LinearScheme(),
    "gitlab": GitlabScheme(),
    "zoom": ZoomScheme(),
    "discord": DiscordScheme(),
    "hmac": GenericScheme(),
}


def get_scheme(name: str) -> Scheme | None:
    return _REGISTRY.get(name)


__all__ = ["Resigned", "Scheme", "get_scheme", "public_key_for_seed"]
