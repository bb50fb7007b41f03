"""The SSRF guard: where server-side forwarding and replay may connect.

Only loopback (localhost, 127.0.0.0/8, ::1) unless the operator allows more with `--forward-allow` (host names,
addresses or networks). The check runs on the RESOLVED addresses at connect time, and the connection is then
made to the very address that was checked, so a name that resolves to 169.254.169.254 (or that changes its
answer between a check and a connect: DNS rebinding) cannot slip through. Redirects are never followed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]


class TargetRefused(Exception):
    """The guard refused a target; the message says why and how to allow it."""


async def system_resolver(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for info in infos:
        addr = str(info[4][0])
        if addr not in seen:
            seen.append(addr)
    return seen


def _ip(text: str) -> IPAddress | None:
    try:
        ip = ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1
    return ip


@dataclass(frozen=True, slots=True)
class ForwardPolicy:
    networks: tuple[Network, ...] = ()
    hosts: frozenset[str] = frozenset()

    @classmethod
    def from_allow(cls, items: Iterable[str]) -> ForwardPolicy:
        """`--forward-allow` entries: an address, a network (10.0.0.0/8) or a host name (dev.internal)."""
        networks: list[Network] = []
        hosts: set[str] = set()
        for item in items:
            item = item.strip()
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item.strip("[]"), strict=False))
            except ValueError:
                if any(c in item for c in "/ :"):
                    message = f"--forward-allow {item!r} is neither an address, a network nor a host name"
                    raise ValueError(message) from None
                hosts.add(item.lower().rstrip("."))
        return cls(tuple(networks), frozenset(hosts))

    def address_allowed(self, addr: str) -> bool:
        ip = _ip(addr)
        if ip is None:
            return False
        if ip.is_loopback:
            return True
        return any(ip.version == net.version and ip in net for net in self.networks)

    def host_allowed(self, host: str) -> bool:
        """An operator-named host is trusted whatever it resolves to."""
        return host.lower().rstrip(".") in self.hosts

    async def resolve(self, host: str, port: int, resolver: Resolver = system_resolver) -> list[str]:
        """The addresses of host that we may connect to; raises TargetRefused otherwise."""
        literal = _ip(host)
        if literal is not None:
            addrs = [str(literal)]
        else:
            try:
                addrs = await resolver(host, port)
            except OSError as exc:
                raise TargetRefused(f"cannot resolve {host!r}: {exc}") from None
        if self.host_allowed(host):
            return addrs
        refused = [a for a in addrs if not self.address_allowed(a)]
        if refused or not addrs:
            shown = host if literal is not None else f"{host} (resolves to {', '.join(addrs) or 'nothing'})"
            raise TargetRefused(
                f"forwarding to {shown} is refused: targets must be loopback (localhost, 127.0.0.0/8, ::1); "
                f"an operator can allow it with `hookscope serve --forward-allow {host}`"
            )
        return addrs
