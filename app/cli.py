"""The `hookscope` command. Each flag can also be set as HOOKSCOPE_<FLAG> in the environment."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from app import __version__
from app.settings import Settings, is_loopback_host, parse_duration, parse_size


def _env(name: str) -> str | None:
    return os.environ.get("HOOKSCOPE_" + name.upper().replace("-", "_"))


def _add(
    parser: argparse.ArgumentParser,
    flag: str,
    help: str,
    default: Any = None,
    type: Callable[[str], Any] = str,
    **kw: Any,
) -> None:
    """A flag whose default comes from HOOKSCOPE_<FLAG> when set."""
    env = _env(flag)
    if env is not None:
        try:
            default = type(env) if kw.get("action") != "append" else [type(v) for v in env.split(",") if v]
        except ValueError as exc:
            raise SystemExit(f"hookscope: HOOKSCOPE_{flag.upper().replace('-', '_')}: {exc}") from None
    shown = f" (env HOOKSCOPE_{flag.upper().replace('-', '_')}"
    shown += f"; default {default})" if default not in (None, [], False) else ")"
    parser.add_argument(f"--{flag}", default=default, type=type, help=help + shown, **kw)


def _bool(text: str) -> bool:
    if text.lower() in {"1", "true", "yes", "on"}:
        return True
    if text.lower() in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {text!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hookscope",
        description="Self-hostable webhook inspector: capture, inspect live, forward to localhost.",
    )
    parser.add_argument("--version", action="version", version=f"hookscope {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = sub.add_parser("serve", help="run the server (capture URLs, inspector pages, API)")
    _add(serve, "host", "address to bind", "127.0.0.1")
    _add(serve, "port", "port to listen on", 8080, int)
    _add(serve, "db", "SQLite database file", "hookscope.db", Path)
    _add(serve, "token", "access token for pages and API (generated when binding a non-loopback address)")
    _add(serve, "public-url", "base URL shown to users, e.g. https://hooks.example.com behind a proxy")
    _add(serve, "max-body", "largest accepted body (e.g. 25MiB)", "25MiB", parse_size)
    _add(serve, "durability", "full: a 2xx survives power loss; normal: survives process crashes", "full",
         choices=["full", "normal"])
    _add(serve, "trusted-proxy", "address or network whose X-Forwarded-For is believed (repeatable)", [],
         action="append")
    _add(serve, "retention-count", "requests kept per endpoint, oldest pruned (0: no cap)", 10_000, int)
    _add(serve, "retention-age", "prune requests older than this (e.g. 30d, 12h; 'off')", "30d", parse_duration)
    _add(serve, "queue-size", "capture write-queue size; when full, ingest answers 503", 10_000, int)
    _add(serve, "forward-allow", "extra hosts or networks forwarding may reach (repeatable)", [], action="append")
    _add(serve, "http", "HTTP parser: httptools (fast, ~46 known methods) or h11 (any method token)", "auto",
         choices=["auto", "httptools", "h11"])
    _add(serve, "forward-retry", "forward retry schedule FIRST,CAP,GIVE_UP", "1s,60s,1h")
    _add(serve, "forward-timeout", "seconds to wait for a forward target's answer", 10.0, float)
    _add(serve, "max-header-bytes", "largest request head (request line and headers): 431 past it; the request "
         "line alone may be at most 16KiB (414)", "64KiB", parse_size)
    _add(serve, "header-timeout", "time a sender has to send the whole request head (then 408 and close)", "10s",
         parse_duration)
    _add(serve, "body-timeout", "longest wait for the next body byte (then 408 and close); "
         "also how long a websocket peer may leave our sends unread before it is dropped", "30s", parse_duration)
    _add(serve, "max-connections", "open connections served at once; more are refused with 503 (default: sized "
         "to the open-file limit)", None, int)
    _add(serve, "allowed-host", "extra Host name pages, API and websockets answer to, e.g. the name a reverse "
         "proxy forwards (repeatable); ingest answers any Host", [], action="append")
    _add(serve, "retention-ceiling", "captures kept per endpoint while a relay or forward target still owes them "
         "(default 10x --retention-count)", None, int)
    _add(serve, "access-log", "log every HTTP request (costs throughput)", False, _bool)
    _add(serve, "log-level", "debug, info, warning, error", "info")
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
    _add(fwd, "token", "the server's access token")
    _add(fwd, "name", "relay name; the server keeps its position (default: user@hostname)")
    fwd.add_argument("--from", dest="start", default=None, metavar="now|all|ID",
                     help="where to start instead of resuming: now, all, or a request id")
    _add(fwd, "retry-for", "keep retrying an unreachable target this long before skipping", "1h", parse_duration)
    fwd.add_argument("--quiet", action="store_true", help="no line per request")
    fwd.add_argument("--color", dest="color", action="store_true", default=None, help="force colour")
    fwd.add_argument("--no-color", dest="color", action="store_false", help="no colour")
    fwd.set_defaults(func=run_forward)
    return parser


def run_forward(args: argparse.Namespace) -> int:
    from app.client import relay as relay_client

    retry_for = args.retry_for if isinstance(args.retry_for, float) else parse_duration(args.retry_for)
    try:
        options = relay_client.build_options(
            args.endpoint_url, args.to, args.token, args.name, args.start, retry_for, args.quiet, args.color
        )
    except ValueError as exc:
        print(f"hookscope forward: {exc}", file=sys.stderr)
        return 2
    return relay_client.run(options)


def settings_from_args(args: argparse.Namespace) -> tuple[Settings, bool]:
    """Returns the settings and whether the token was generated here."""
    token = args.token or None
    generated = False
    if token is None and not is_loopback_host(args.host):
        token = secrets.token_urlsafe(24)
        generated = True
    settings = Settings(
        host=args.host,
        port=args.port,
        db=args.db,
        token=token,
        public_url=args.public_url,
        max_body=args.max_body if isinstance(args.max_body, int) else parse_size(args.max_body),
        durability=args.durability,
        trusted_proxies=tuple(args.trusted_proxy),
        retention_count=args.retention_count,
        retention_age=args.retention_age if isinstance(args.retention_age, float)
        else parse_duration(args.retention_age),
        queue_size=args.queue_size,
        forward_allow=tuple(args.forward_allow),
        http=args.http,
        forward_retry=args.forward_retry,
        forward_timeout=args.forward_timeout,
        access_log=args.access_log,
        log_level=args.log_level,
        max_header_bytes=args.max_header_bytes if isinstance(args.max_header_bytes, int)
        else parse_size(args.max_header_bytes),
        header_timeout=_seconds(args.header_timeout),
        body_timeout=_seconds(args.body_timeout),
        max_connections=args.max_connections,
        allowed_hosts=tuple(args.allowed_host),
        retention_ceiling=args.retention_ceiling,
    )
    return settings, generated


def _seconds(value: float | str) -> float:
    return value if isinstance(value, float) else parse_duration(value)


def _check_forwarding(settings: Settings) -> None:
    from app.delivery.retry import RetryPolicy
    from app.delivery.ssrf import ForwardPolicy

    ForwardPolicy.from_allow(settings.forward_allow)
    RetryPolicy.parse(settings.forward_retry)


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.ingest.clientaddr import parse_networks
    from app.main import create_app
    from app.server.log_redact import install_redaction
    from app.store.errors import StorageUnavailable, claim_storage

    try:
        parse_networks(args.trusted_proxy)
        settings, generated = settings_from_args(args)
        _check_forwarding(settings)
    except ValueError as exc:
        print(f"hookscope: {exc}", file=sys.stderr)
        return 2
    app = create_app(settings)
    try:
        claim_storage(app.store)  # before uvicorn: a second server or a read-only file stops here, status 1
    except StorageUnavailable as exc:
        print(f"hookscope: {exc}", file=sys.stderr)
        return 1
    shown_host = f"[{settings.host}]" if ":" in settings.host else settings.host
    url = settings.public_url or f"http://{shown_host}:{settings.port}"
    print(f"hookscope {__version__}: open {url} (database {settings.db}, durability {settings.durability})",
          flush=True)
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
