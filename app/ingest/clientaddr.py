"""The sender's address: the socket peer, or X-Forwarded-For when the peer is a trusted proxy."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(items: Iterable[str]) -> tuple[Network, ...]:
    """'10.0.0.1', '10.0.0.0/8', '::1' -> networks. Raises ValueError on a bad entry."""
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in items if item.strip())


def _trusted(addr: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(addr.strip().strip("[]"))
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_address(peer: str | None, forwarded_for: list[str], trusted: tuple[Network, ...]) -> str | None:
    """Walk X-Forwarded-For from the right, skipping trusted proxies; the first untrusted hop is the client.

    Only when the socket peer itself is trusted: otherwise the header is attacker-controlled and ignored.
    """
    if peer is None or not trusted or not _trusted(peer, trusted):
        return peer
    hops = [h.strip() for value in forwarded_for for h in value.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, trusted):
            return hop[:100]
    return hops[0][:100] if hops else peer
