"""Settings: defaults < HOOKSCOPE_* environment < command-line flags.

Settings is a frozen value created once by the CLI (or a test) and handed to create_app; nothing reads the
environment after that, so a test can run several differently configured servers in one process.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

MIB = 1024 * 1024

LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost", "ip6-loopback"})


def is_loopback_host(host: str) -> bool:
    """True for a bind address that only this machine can reach."""
    host = host.strip("[]")
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": MIB, "g": 1024 * MIB}


def parse_size(text: str) -> int:
    """Parse '25MiB', '25M', '512k' or '1048576' into bytes (binary units)."""
    m = _SIZE_RE.match(text)
    if not m:
        raise ValueError(f"not a size: {text!r} (examples: 25MiB, 512KiB, 1048576)")
    unit = (m.group(2) or "").lower()[:1]
    return int(float(m.group(1)) * _SIZE_UNITS[unit])


_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$", re.IGNORECASE)
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Parse '30d', '12h', '90s', '250ms' or a plain number of seconds; '0' or 'off' means none."""
    if text.strip().lower() in {"off", "none", "never"}:
        return 0.0
    m = _DURATION_RE.match(text)
    if not m:
        raise ValueError(f"not a duration: {text!r} (examples: 30d, 12h, 90s)")
    return float(m.group(1)) * _DURATION_UNITS[(m.group(2) or "s").lower()]


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    db: Path = Path("hookscope.db")
    token: str | None = None
    public_url: str | None = None
    max_body: int = 25 * MIB
    # Bodies above this many bytes go to files beside the database while they stream in, so memory stays
    # bounded by (concurrent requests x this) instead of (concurrent requests x max_body).
    spill_threshold: int = 256 * 1024
    durability: str = "full"  # "full": survives power loss; "normal": survives process crashes only
    trusted_proxies: tuple[str, ...] = ()
    retention_count: int = 10_000
    retention_age: float = 30 * 86400.0  # seconds; 0 disables the age limit
    janitor_interval: float = 30.0
    queue_size: int = 10_000
    # httptools (llhttp) is about 3x faster but knows a fixed list of ~46 methods (GET ... PROPFIND, PURGE,
    # QUERY); h11 accepts any method token. See README "HTTP parser".
    http: str = "auto"
    access_log: bool = False
    log_level: str = "info"
    forward_allow: tuple[str, ...] = ()
    # Server-side forwarding: retry schedule FIRST,CAP,GIVE_UP (app/retry.py), per-attempt timeout, relay pings.
    forward_retry: str = "1s,60s,1h"
    forward_timeout: float = 10.0
    relay_ping_interval: float = 5.0
    # Hardening for the open internet (app/http_guard.py): the whole request head, the request line alone, how
    # long a sender may take to send its head, how long a body may stall, and how many connections are served.
    max_header_bytes: int = 64 * 1024
    max_request_line: int = 16 * 1024
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int | None = None  # None: sized to the open-file limit at start
    # Host names pages, API and websockets answer to besides the bound address, loopback names and the
    # --public-url host (e.g. the name a reverse proxy forwards). Ingest (/h/...) answers any Host.
    allowed_hosts: tuple[str, ...] = ()
    # Retention keeps captures a relay or forward target still owes, up to this many per endpoint
    # (None: 10x retention_count, or 100,000 when there is no count cap).
    retention_ceiling: int | None = None

    def __post_init__(self) -> None:
        if self.durability not in {"full", "normal"}:
            raise ValueError("durability must be 'full' or 'normal'")
        if self.http not in {"auto", "httptools", "h11"}:
            raise ValueError("http must be 'auto', 'httptools' or 'h11'")
        if self.max_body < 0 or self.spill_threshold < 1:
            raise ValueError("sizes must be positive")
        if self.max_header_bytes < 1024 or self.max_request_line < 256:
            raise ValueError("max_header_bytes must be at least 1 KiB (request line at least 256 bytes)")
        if self.header_timeout <= 0 or self.body_timeout <= 0:
            raise ValueError("header and body timeouts must be positive")
        if self.max_connections is not None and self.max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if self.retention_ceiling is not None and self.retention_ceiling < 0:
            raise ValueError("retention_ceiling must not be negative")

    @property
    def effective_retention_ceiling(self) -> int:
        """Most captures kept per endpoint while a relay or forward target still owes them."""
        if self.retention_ceiling is not None:
            return self.retention_ceiling
        return 10 * self.retention_count if self.retention_count > 0 else 100_000

    @property
    def loopback_only(self) -> bool:
        return is_loopback_host(self.host)

    @property
    def auth_required(self) -> bool:
        return self.token is not None
