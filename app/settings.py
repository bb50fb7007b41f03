"""Settings: defaults < HOOKSCOPE_* environment < command-line flags, all derived from one definition.

Each `Settings` field is declared once, with its default and `option(help)` (or `internal(help)` for a field that
code sets but users do not). Its type says how its text is read: `Size` and `Duration` carry their unit parsers, a
`Literal` its choices, `tuple[str, ...]` makes a repeatable flag. `OPTIONS` describes every field for the CLI: flag
name, `HOOKSCOPE_<FLAG>` variable, help, parser and choices.
app/cli.py builds `hookscope serve` from `OPTIONS` and nothing else, so a new field gets its flag, environment
variable and help line by being declared here.

Settings is a frozen value created once by the CLI (or a test) and handed to create_app; nothing reads the
environment after that, so a test can run several differently configured servers in one process.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin, get_type_hints

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


def format_size(size: int) -> str:
    """The shortest text parse_size reads back as `size`: 26214400 -> '25MiB'."""
    for unit, suffix in ((1024 * MIB, "GiB"), (MIB, "MiB"), (1024, "KiB")):
        if size and size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)


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


def format_duration(seconds: float) -> str:
    """A text parse_duration reads back as `seconds`, in the largest whole unit: 2592000 -> '30d', 0 -> 'off'."""
    if seconds == 0:
        return "off"
    for suffix in ("d", "h", "m", "s", "ms"):
        count = seconds / _DURATION_UNITS[suffix]
        if count >= 1 and count == int(count):
            return f"{int(count)}{suffix}"
    return f"{seconds}s"


def parse_bool(text: str) -> bool:
    """'1', 'true', 'yes', 'on' or '0', 'false', 'no', 'off', '' (any case)."""
    if text.lower() in {"1", "true", "yes", "on"}:
        return True
    if text.lower() in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {text!r}")


@dataclass(frozen=True, slots=True)
class Unit:
    """Marks a value with a text form of its own (a number written with a unit, a database): how its text is read,
    and how a value is shown (in help)."""

    parse: Callable[[str], Any]
    show: Callable[[Any], str]


Size = Annotated[int, Unit(parse_size, format_size)]  # bytes; 25MiB, 512k, 1048576
Duration = Annotated[float, Unit(parse_duration, format_duration)]  # seconds; 30d, 12h, 90s, 250ms, off

# Where captures are stored: a SQLite file (one process), or a PostgreSQL database (docs/deploy.md).
Backend = Literal["sqlite", "postgres"]
_POSTGRES_SCHEMES = ("postgresql", "postgres")  # what asyncpg accepts


def is_postgres_url(text: str) -> bool:
    """True for a postgresql:// or postgres:// URL (scheme in any case)."""
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.lower() in _POSTGRES_SCHEMES


def parse_database(text: str) -> Path | str:
    """`--db`: a PostgreSQL URL stays text (the DSN), anything else is a SQLite file path. Raises ValueError for
    an empty value."""
    if not text.strip():
        raise ValueError("no database given")
    return text if is_postgres_url(text) else Path(text)


_SECRET_QUERY_KEYS = frozenset({"password", "sslpassword"})


def redact_database(db: Path | str) -> str:
    """`db` as logs and help may show it: a URL's password (`user:password@`, `?password=`) replaced by ***.
    Not read back by parse_database when it hid something; that is the point."""
    if isinstance(db, Path):
        return str(db)
    scheme, _, rest = db.partition("://")
    # The user info ends at the last @ before the query: a password may hold an unencoded @ or /, so this errs
    # towards hiding too much (a database name with an @) rather than showing a piece of a password.
    end = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    userinfo, at, after = rest[:end].rpartition("@")
    if at and ":" in userinfo:
        rest = userinfo.split(":", 1)[0] + ":***@" + after + rest[end:]
    path, qmark, query = rest.partition("?")
    if qmark:
        query, hash_, fragment = query.partition("#")
        items = [
            (key + "=***" if key.lower() in _SECRET_QUERY_KEYS else key + eq + value)
            for key, eq, value in (item.partition("=") for item in query.split("&"))
        ]
        rest = path + "?" + "&".join(items) + hash_ + fragment
    return f"{scheme}://{rest}"


Database = Annotated[Path | str, Unit(parse_database, redact_database)]

# "full": a 2xx survives power loss; "normal": it survives process crashes only.
Durability = Literal["full", "normal"]
# Every name uvicorn accepts (its LOG_LEVELS); the command line reads them in any case, as uvicorn did.
LogLevel = Literal["critical", "error", "warning", "info", "debug", "trace"]
# httptools (llhttp) is about 3x faster but knows a fixed list of ~46 methods (GET ... PROPFIND, PURGE, QUERY);
# h11 accepts any method token. See README "HTTP parser".
HttpParser = Literal["auto", "httptools", "h11"]

_OPTION = "hookscope.option"


@dataclass(frozen=True, slots=True)
class _Declared:
    help: str
    flag: str | None
    cli: bool


def option(help: str, *, flag: str | None = None) -> dict[str, _Declared]:
    """Metadata for a Settings field given by `--FLAG` and HOOKSCOPE_<FLAG>; the flag is the field name with
    dashes unless `flag` is given."""
    return {_OPTION: _Declared(help, flag, cli=True)}


def internal(help: str) -> dict[str, _Declared]:
    """Metadata for a Settings field that is no flag and no environment variable: set only by code (tests,
    embedders), because users have no reason to turn it."""
    return {_OPTION: _Declared(help, None, cli=False)}


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything `hookscope serve` can be told. Construction raises ValueError for a value out of range or not
    among its Literal's choices, so a Settings that exists is valid."""

    # Where it listens and who may use it.
    host: str = field(default="127.0.0.1", metadata=option("address to bind"))
    port: int = field(default=8080, metadata=option("port to listen on"))
    token: str | None = field(default=None, metadata=option(
        "access token for pages and API (generated when binding a non-loopback address)"))
    public_url: str | None = field(default=None, metadata=option(
        "base URL shown to users, e.g. https://hooks.example.com behind a proxy"))
    allowed_hosts: tuple[str, ...] = field(default=(), metadata=option(
        "extra Host name pages, API and websockets answer to, e.g. the name a reverse proxy forwards (repeatable); "
        "ingest answers any Host", flag="allowed-host"))
    trusted_proxies: tuple[str, ...] = field(default=(), metadata=option(
        "address or network whose X-Forwarded-For is believed (repeatable)", flag="trusted-proxy"))

    # Capture and storage.
    # A Path for SQLite, the URL text for PostgreSQL (parse_database); `backend` says which.
    db: Database = field(default=Path("hookscope.db"), metadata=option(
        "SQLite database file, or a PostgreSQL URL postgresql://USER@HOST:PORT/DBNAME (give the password in "
        "PGPASSWORD or ~/.pgpass rather than the URL)"))
    durability: Durability = field(default="full", metadata=option(
        "full: a 2xx survives power loss; normal: survives process crashes"))
    max_body: Size = field(default=25 * MIB, metadata=option("largest accepted body (e.g. 25MiB)"))
    # Memory stays bounded by (concurrent requests x this) instead of (concurrent requests x max_body).
    spill_threshold: Size = field(default=256 * 1024, metadata=internal(
        "bodies larger than this stream to a file beside the database instead of memory"))
    queue_size: int = field(default=10_000, metadata=option("capture write-queue size; when full, ingest answers 503"))

    # Retention.
    retention_count: int = field(default=10_000, metadata=option(
        "requests kept per endpoint, oldest pruned (0: no cap)"))
    retention_age: Duration = field(default=30 * 86400.0, metadata=option(
        "prune requests older than this (e.g. 30d, 12h; 'off')"))
    # None: app/store/base.py's default_retention_ceiling(retention_count).
    retention_ceiling: int | None = field(default=None, metadata=option(
        "captures kept per endpoint while a relay or forward target still owes them (default 10x --retention-count)"))
    janitor_interval: float = field(default=30.0, metadata=internal("seconds between retention passes"))

    # Server-side forwarding (app/delivery/).
    forward_allow: tuple[str, ...] = field(default=(), metadata=option(
        "extra hosts or networks forwarding may reach (repeatable)"))
    forward_retry: str = field(default="1s,60s,1h", metadata=option("forward retry schedule FIRST,CAP,GIVE_UP"))
    forward_timeout: float = field(default=10.0, metadata=option("seconds to wait for a forward target's answer"))
    relay_ping_interval: float = field(default=5.0, metadata=internal(
        "seconds between pings on a `hookscope forward` relay connection"))

    # Hardening for the open internet (app/server/http_guard.py).
    max_header_bytes: Size = field(default=64 * 1024, metadata=option(
        "largest request head (request line and headers): 431 past it; the request line alone may be at most "
        "16KiB (414)"))
    max_request_line: Size = field(default=16 * 1024, metadata=internal("largest request line: 414 past it"))
    header_timeout: Duration = field(default=10.0, metadata=option(
        "time a sender has to send the whole request head (then 408 and close)"))
    body_timeout: Duration = field(default=30.0, metadata=option(
        "longest wait for the next body byte (then 408 and close); also how long a websocket peer may leave our "
        "sends unread before it is dropped"))
    max_connections: int | None = field(default=None, metadata=option(
        "open connections served at once; more are refused with 503 (default: sized to the open-file limit)"))

    # The HTTP server itself.
    http: HttpParser = field(default="auto", metadata=option(
        "HTTP parser: httptools (fast, ~46 known methods) or h11 (any method token)"))
    access_log: bool = field(default=False, metadata=option("log every HTTP request (costs throughput)"))
    log_level: LogLevel = field(default="info", metadata=option("server log level"))

    def __post_init__(self) -> None:
        for option in OPTIONS:
            if option.choices and getattr(self, option.name) not in option.choices:
                raise ValueError(f"{option.name} must be {_either(option.choices)}")
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
        if isinstance(self.db, str) and not is_postgres_url(self.db):
            raise ValueError("db as text must be a postgresql:// URL (a SQLite file is a Path)")

    @property
    def backend(self) -> Backend:
        """Which store `db` names: "postgres" for a URL, "sqlite" for a file."""
        return "postgres" if isinstance(self.db, str) else "sqlite"


def _either(choices: tuple[str, ...]) -> str:
    quoted = [repr(c) for c in choices]
    return ", ".join(quoted[:-1]) + " or " + quoted[-1] if len(quoted) > 1 else quoted[0]


@dataclass(frozen=True, slots=True)
class Option:
    """A value as the command line and the environment see it: a Settings field's (derived from its declaration
    into OPTIONS), or one of the few options of a command that is not the server (`hookscope forward`)."""

    name: str  # the Settings field; also the argparse dest
    flag: str  # without the leading dashes: "max-body"
    help: str
    default: Any
    parse: Callable[[str], Any]  # one value from its text; raises ValueError
    show: Callable[[Any], str] = str  # one value as text parse reads back
    choices: tuple[str, ...] = ()  # a Literal's values, () when the value is open
    repeatable: bool = False  # the flag may be given several times, the environment lists values with commas
    cli: bool = True  # False: set only by code, no flag and no environment variable

    @property
    def env(self) -> str:
        return "HOOKSCOPE_" + self.flag.upper().replace("-", "_")

    def from_text(self, text: str) -> Any:
        """The value a flag's text stands for, checked against the choices. Raises ValueError."""
        value = self.parse(text)
        if self.choices and value not in self.choices:
            raise ValueError(f"invalid choice: {text!r} (choose from {', '.join(map(repr, self.choices))})")
        return value

    def from_env(self, text: str) -> Any:
        """The value of HOOKSCOPE_<FLAG>: a list of from_text values for a repeatable flag (comma-separated,
        empty items skipped), else one. Raises ValueError."""
        if self.repeatable:
            return [self.from_text(item) for item in text.split(",") if item]
        return self.from_text(text)

    def shown(self, value: Any) -> str | None:
        """`value` as help shows it; None when there is nothing to show (no value, empty list, off switch)."""
        if value is None or value is False or (self.repeatable and not value):
            return None
        if self.repeatable:
            return ",".join(self.show(v) for v in value)
        return self.show(value)


def _describe(name: str, hint: Any, declared: _Declared, default: Any) -> Option:
    """The Option of one field from its type. Raises TypeError for a type with no text form, at import, so a new
    field cannot be declared without one."""
    if get_origin(hint) is types.UnionType:  # `X | None`: optional, read as X
        hint = next(arg for arg in get_args(hint) if arg is not type(None))
    repeatable = get_origin(hint) is tuple
    if repeatable:
        hint = get_args(hint)[0]
    parse: Callable[[str], Any] = str
    show: Callable[[Any], str] = str
    choices: tuple[str, ...] = ()
    if get_origin(hint) is Annotated:
        unit = next(m for m in hint.__metadata__ if isinstance(m, Unit))
        parse, show = unit.parse, unit.show
    elif get_origin(hint) is Literal:
        choices = get_args(hint)
        parse = str.lower  # choices are lower case; uvicorn read log levels in any case
    elif hint is bool:
        parse = parse_bool
    elif hint in (int, float, Path):
        parse = hint
    elif hint is not str:
        raise TypeError(f"Settings.{name}: no text form for {hint!r}")
    flag = declared.flag or name.replace("_", "-")
    return Option(name, flag, declared.help, default, parse, show=show, choices=choices, repeatable=repeatable,
                  cli=declared.cli)


def _options() -> tuple[Option, ...]:
    hints = get_type_hints(Settings, include_extras=True)
    return tuple(
        _describe(f.name, hints[f.name], f.metadata[_OPTION], f.default) for f in dataclasses.fields(Settings)
    )


# Every Settings field, in declaration order (the order of `hookscope serve --help`).
OPTIONS: tuple[Option, ...] = _options()
