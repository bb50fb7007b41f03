"""The `hookscope` command. Each flag can also be set as HOOKSCOPE_<FLAG> in the environment.

`hookscope serve` is derived from app/settings.py's OPTIONS: its flags, their environment variables, help lines
and parsers all come from the Settings declaration, so nothing here repeats a default or a help text.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from app import __version__
from app.settings import (
    OPTIONS,
    Option,
    Settings,
    format_duration,
    is_loopback_host,
    parse_duration,
    redact_database,
)

# `hookscope forward` options: the relay client's, not server Settings, read from the environment the same way.
_FORWARD_OPTIONS = (
    Option("token", "token", "the server's access token", default=None, parse=str),
    Option("name", "name", "relay name; the server keeps its position (default: user@hostname)", default=None,
           parse=str),
    Option("retry_for", "retry-for", "keep retrying an unreachable target this long before skipping",
           default=3600.0, parse=parse_duration, show=format_duration),
)


def _add_option(parser: argparse.ArgumentParser, option: Option, environ: Mapping[str, str]) -> None:
    """`--FLAG` for `option`, its default taken from HOOKSCOPE_<FLAG> when that is set. A bad environment value
    exits here with `hookscope: HOOKSCOPE_<FLAG>: <reason>`."""
    default = option.default
    text = environ.get(option.env)
    if text is not None:
        try:
            default = option.from_env(text)
        except ValueError as exc:
            raise SystemExit(f"hookscope: {option.env}: {exc}") from None
    shown = option.shown(default)
    note = f" (env {option.env}" + (f"; default {shown})" if shown is not None else ")")
    help_text = (option.help + note).replace("%", "%%")  # argparse formats help with %
    kwargs: dict[str, Any] = {"dest": option.name, "type": option.parse, "help": help_text}
    if option.choices:
        kwargs["choices"] = option.choices
    else:
        kwargs["metavar"] = option.flag.upper().replace("-", "_")
    if option.repeatable:
        # argparse's append extends a copy of this list: flags add to what the environment listed.
        kwargs.update(action="append", default=list(default))
    else:
        kwargs["default"] = default
    parser.add_argument(f"--{option.flag}", **kwargs)


def build_parser(environ: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    """The `hookscope` parser; flag defaults come from `environ` (os.environ when None). Raises SystemExit for a
    bad HOOKSCOPE_* value."""
    if environ is None:
        environ = os.environ
    parser = argparse.ArgumentParser(
        prog="hookscope",
        description="Self-hostable webhook inspector: capture, inspect live, forward to localhost.",
    )
    parser.add_argument("--version", action="version", version=f"hookscope {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = sub.add_parser("serve", help="run the server (capture URLs, inspector pages, API)")
    for option in OPTIONS:
        if option.cli:
            _add_option(serve, option, environ)
    serve.set_defaults(func=run_serve)

    fwd = sub.add_parser(
        "forward",
        help="relay an endpoint's requests to a local server (resumes where it left off)",
        description="Receive every request captured by ENDPOINT_URL (its /h/ID URL) and send it to --to, "
        "in capture order. Routes: --to URL, or --to MATCH=URL with MATCH path:/prefix, header:Name[:value] "
        "or json:field.path[:value]; the first match wins.",
    )
    fwd.add_argument("endpoint_url", help="the endpoint's capture URL, e.g. https://hooks.example.com/h/ID")
    fwd.add_argument("--to", action="append", default=[], metavar="[MATCH=]URL", help="target (repeatable)")
    for option in _FORWARD_OPTIONS:
        _add_option(fwd, option, environ)
    fwd.add_argument("--from", dest="start", default=None, metavar="now|all|ID",
                     help="where to start instead of resuming: now, all, or a position (seq; on SQLite the request id)")
    fwd.add_argument("--quiet", action="store_true", help="no line per request")
    fwd.add_argument("--color", dest="color", action="store_true", default=None, help="force colour")
    fwd.add_argument("--no-color", dest="color", action="store_false", help="no colour")
    fwd.set_defaults(func=run_forward)
    return parser


def run_forward(args: argparse.Namespace) -> int:
    from app.client import relay as relay_client

    try:
        options = relay_client.build_options(
            args.endpoint_url, args.to, args.token, args.name, args.start, args.retry_for, args.quiet, args.color
        )
    except ValueError as exc:
        print(f"hookscope forward: {exc}", file=sys.stderr)
        return 2
    return relay_client.run(options)


def settings_from_args(args: argparse.Namespace) -> tuple[Settings, bool]:
    """Returns the settings and whether the token was generated here (no token while binding a non-loopback
    address). Raises ValueError when Settings refuses a value."""
    values: dict[str, Any] = {}
    for option in OPTIONS:
        if option.cli:
            value = getattr(args, option.name)
            values[option.name] = tuple(value) if option.repeatable else value
    values["token"] = values["token"] or None  # HOOKSCOPE_TOKEN= (empty) means no token
    generated = False
    if values["token"] is None and not is_loopback_host(values["host"]):
        values["token"] = secrets.token_urlsafe(24)
        generated = True
    return Settings(**values), generated


def _check(settings: Settings) -> None:
    """Refuse, before anything starts, the values that only their consumers parse. Raises ValueError."""
    from app.delivery.retry import RetryPolicy
    from app.delivery.ssrf import ForwardPolicy
    from app.ingest.clientaddr import parse_networks

    parse_networks(settings.trusted_proxies)
    ForwardPolicy.from_allow(settings.forward_allow)
    RetryPolicy.parse(settings.forward_retry)


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.main import create_app
    from app.server.log_redact import install_redaction
    from app.store.errors import StorageUnavailable

    try:
        settings, generated = settings_from_args(args)
        _check(settings)
    except ValueError as exc:
        print(f"hookscope: {exc}", file=sys.stderr)
        return 2
    app = create_app(settings)
    try:
        # Before uvicorn: a second server on the SQLite file, a read-only file, an unreachable or too-new PostgreSQL
        # database stops here, status 1.
        app.services.store.claim()
    except StorageUnavailable as exc:
        # A store names its database in the message; should one quote the URL whole, its password stays hidden.
        print(f"hookscope: {str(exc).replace(str(settings.db), redact_database(settings.db))}", file=sys.stderr)
        return 1
    shown_host = f"[{settings.host}]" if ":" in settings.host else settings.host
    url = settings.public_url or f"http://{shown_host}:{settings.port}"
    # Never a password in the log: the URL's is replaced by *** (app/settings.py redact_database).
    print(f"hookscope {__version__}: open {url} (database {redact_database(settings.db)}, durability "
          f"{settings.durability})", flush=True)
    if generated:
        print(f"hookscope: bound to {settings.host} with no --token; generated one: {settings.token}", flush=True)
    from app.server.http_guard import raise_open_file_limit, uvicorn_config

    # Before the config: the default --max-connections is sized to the limit in force.
    raise_open_file_limit()
    config = uvicorn_config(app, settings)
    install_redaction()  # after the config: uvicorn.Config sets up the log handlers it filters
    uvicorn.Server(config).run()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    return func(args)


if __name__ == "__main__":
    sys.exit(main())
