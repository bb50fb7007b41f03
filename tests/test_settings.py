import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any, get_args

import pytest
import uvicorn.config
from hypothesis import given
from hypothesis import strategies as st

from app.cli import build_parser, settings_from_args
from app.settings import (
    MIB,
    OPTIONS,
    HttpParser,
    LogLevel,
    Settings,
    format_duration,
    format_size,
    parse_duration,
    parse_size,
    redact_database,
)

# Every `hookscope serve` flag with its variable and the default its help shows, as users know them (README):
# derived from the Settings declaration now, so this pins the derivation to what was written by hand before.
SERVE_FLAGS = {
    "host": ("--host", "HOOKSCOPE_HOST", "127.0.0.1"),
    "port": ("--port", "HOOKSCOPE_PORT", "8080"),
    "token": ("--token", "HOOKSCOPE_TOKEN", None),
    "public_url": ("--public-url", "HOOKSCOPE_PUBLIC_URL", None),
    "allowed_hosts": ("--allowed-host", "HOOKSCOPE_ALLOWED_HOST", None),
    "trusted_proxies": ("--trusted-proxy", "HOOKSCOPE_TRUSTED_PROXY", None),
    "db": ("--db", "HOOKSCOPE_DB", "hookscope.db"),
    "durability": ("--durability", "HOOKSCOPE_DURABILITY", "full"),
    "max_body": ("--max-body", "HOOKSCOPE_MAX_BODY", "25MiB"),
    "queue_size": ("--queue-size", "HOOKSCOPE_QUEUE_SIZE", "10000"),
    "retention_count": ("--retention-count", "HOOKSCOPE_RETENTION_COUNT", "10000"),
    "retention_age": ("--retention-age", "HOOKSCOPE_RETENTION_AGE", "30d"),
    "retention_ceiling": ("--retention-ceiling", "HOOKSCOPE_RETENTION_CEILING", None),
    "forward_allow": ("--forward-allow", "HOOKSCOPE_FORWARD_ALLOW", None),
    "forward_retry": ("--forward-retry", "HOOKSCOPE_FORWARD_RETRY", "1s,60s,1h"),
    "forward_timeout": ("--forward-timeout", "HOOKSCOPE_FORWARD_TIMEOUT", "10.0"),
    "max_header_bytes": ("--max-header-bytes", "HOOKSCOPE_MAX_HEADER_BYTES", "64KiB"),
    "header_timeout": ("--header-timeout", "HOOKSCOPE_HEADER_TIMEOUT", "10s"),
    "body_timeout": ("--body-timeout", "HOOKSCOPE_BODY_TIMEOUT", "30s"),
    "max_connections": ("--max-connections", "HOOKSCOPE_MAX_CONNECTIONS", None),
    "http": ("--http", "HOOKSCOPE_HTTP", "auto"),
    "access_log": ("--access-log", "HOOKSCOPE_ACCESS_LOG", None),
    "log_level": ("--log-level", "HOOKSCOPE_LOG_LEVEL", "info"),
}

# For each flag: a text other than the default, and the Settings value it stands for.
SAMPLES: dict[str, tuple[str, Any]] = {
    "host": ("0.0.0.0", "0.0.0.0"),
    "port": ("9999", 9999),
    "token": ("s3cret", "s3cret"),
    "public_url": ("https://hooks.example.com", "https://hooks.example.com"),
    "allowed_hosts": ("a.example,b.example:8443", ("a.example", "b.example:8443")),
    "trusted_proxies": ("10.0.0.1,,10.1.0.0/16", ("10.0.0.1", "10.1.0.0/16")),
    "db": ("other.db", Path("other.db")),
    "durability": ("normal", "normal"),
    "max_body": ("1MiB", MIB),
    "queue_size": ("50", 50),
    "retention_count": ("0", 0),
    "retention_age": ("12h", 12 * 3600.0),
    "retention_ceiling": ("300", 300),
    "forward_allow": ("dev.example", ("dev.example",)),
    "forward_retry": ("50ms,100ms,400ms", "50ms,100ms,400ms"),
    "forward_timeout": ("2.5", 2.5),
    "max_header_bytes": ("8k", 8192),
    "header_timeout": ("250ms", 0.25),
    "body_timeout": ("2m", 120.0),
    "max_connections": ("64", 64),
    "http": ("h11", "h11"),
    "access_log": ("yes", True),
    "log_level": ("WARNING", "warning"),  # any case, as uvicorn read it
}

CLI_OPTIONS = [o for o in OPTIONS if o.cli]


def serve(argv: list[str], environ: dict[str, str] | None = None) -> Settings:
    return settings_from_args(build_parser(environ or {}).parse_args(["serve", *argv]))[0]


def test_sizes_and_durations() -> None:
    assert parse_size("25MiB") == 25 * MIB
    assert parse_size("512k") == 512 * 1024
    assert parse_size("1048576") == MIB
    assert parse_duration("30d") == 30 * 86400
    assert parse_duration("250ms") == 0.25
    assert parse_duration("off") == 0
    for bad in ["", "MiB", "-1"]:
        with pytest.raises(ValueError):
            parse_size(bad)


@given(st.integers(min_value=0, max_value=2**40))
def test_a_shown_size_reads_back(size: int) -> None:
    assert parse_size(format_size(size)) == size


@given(st.integers(min_value=0, max_value=10**7).map(lambda ms: ms / 1000))
def test_a_shown_duration_reads_back(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)


def test_every_flag_is_derived_from_the_declaration() -> None:
    assert {o.name for o in CLI_OPTIONS} == set(SERVE_FLAGS) == set(SAMPLES)
    for option in CLI_OPTIONS:
        flag, env, default = SERVE_FLAGS[option.name]
        assert (f"--{option.flag}", option.env, option.shown(option.default)) == (flag, env, default)
    # The rest are set by code only: no flag, no variable.
    internal = {f.name for f in fields(Settings)} - set(SERVE_FLAGS)
    assert internal == {"spill_threshold", "janitor_interval", "relay_ping_interval", "max_request_line"}
    with pytest.raises(SystemExit):
        build_parser({}).parse_args(["serve", "--janitor-interval", "1"])
    assert serve([], {"HOOKSCOPE_JANITOR_INTERVAL": "1", "HOOKSCOPE_SPILL_THRESHOLD": "1"}) == Settings()


def test_serve_help_shows_each_flag_with_its_help_variable_and_default() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKSCOPE_")}
    out = subprocess.run([sys.executable, "-m", "app", "serve", "--help"], capture_output=True, text=True,
                         check=True, env={**env, "COLUMNS": "100"}).stdout
    text = " ".join(out.split())  # argparse wraps lines at spaces
    for option in CLI_OPTIONS:
        flag, env_name, default = SERVE_FLAGS[option.name]
        shown = f"{option.help} (env {env_name}" + (f"; default {default})" if default else ")")
        assert f"{flag} " in text and " ".join(shown.split()) in text, option.name
    assert "--janitor-interval" not in text and "HOOKSCOPE_SPILL_THRESHOLD" not in text


def test_help_shows_the_default_the_environment_set(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser({"HOOKSCOPE_MAX_BODY": "1MiB", "HOOKSCOPE_FORWARD_ALLOW": "a,b"}).parse_args(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(env HOOKSCOPE_MAX_BODY; default 1MiB)" in text and "(env HOOKSCOPE_FORWARD_ALLOW; default a,b)" in text


@pytest.mark.parametrize("option", CLI_OPTIONS, ids=lambda o: o.name)
def test_each_flag_and_its_variable_set_the_field(option: Any) -> None:
    text, value = SAMPLES[option.name]
    assert getattr(Settings(), option.name) != value
    flag_args = [arg for item in text.split(",") if item for arg in (f"--{option.flag}", item)] \
        if option.repeatable else [f"--{option.flag}", text]
    assert getattr(serve(flag_args), option.name) == value
    assert getattr(serve([], {option.env: text}), option.name) == value


def test_a_flag_beats_the_environment_and_lists_add_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOKSCOPE_PORT", "9999")
    monkeypatch.setenv("HOOKSCOPE_MAX_BODY", "1MiB")
    monkeypatch.setenv("HOOKSCOPE_DURABILITY", "normal")
    monkeypatch.setenv("HOOKSCOPE_TRUSTED_PROXY", "10.0.0.1")
    settings, _ = settings_from_args(build_parser().parse_args(["serve"]))
    assert (settings.port, settings.max_body, settings.durability) == (9999, MIB, "normal")
    settings, _ = settings_from_args(build_parser().parse_args(["serve", "--port", "1234", "--max-body", "2MiB",
                                                                "--trusted-proxy", "10.0.0.2"]))
    assert (settings.port, settings.max_body) == (1234, 2 * MIB)  # a flag beats the environment
    assert settings.trusted_proxies == ("10.0.0.1", "10.0.0.2")  # a repeated flag adds to the listed ones


@pytest.mark.parametrize(("env", "text", "reason"), [
    ("HOOKSCOPE_PORT", "eighty", "invalid literal for int()"),
    ("HOOKSCOPE_MAX_BODY", "lots", "not a size: 'lots'"),
    ("HOOKSCOPE_RETENTION_AGE", "forever", "not a duration: 'forever'"),
    ("HOOKSCOPE_ACCESS_LOG", "maybe", "not a boolean: 'maybe'"),
    ("HOOKSCOPE_DURABILITY", "fast", "invalid choice: 'fast' (choose from 'full', 'normal')"),
    ("HOOKSCOPE_RETRY_FOR", "soon", "not a duration: 'soon'"),  # `hookscope forward`'s, read the same way
])
def test_a_bad_variable_names_itself(env: str, text: str, reason: str) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser({env: text})
    assert str(exc.value.code).startswith(f"hookscope: {env}: {reason}")


def test_closed_choices_come_from_their_literals() -> None:
    assert {o.name: o.choices for o in OPTIONS if o.choices} == {
        "durability": ("full", "normal"), "http": get_args(HttpParser), "log_level": get_args(LogLevel)}
    # Every parser and log level uvicorn takes, and nothing it would refuse at start.
    assert set(get_args(LogLevel)) == set(uvicorn.config.LOG_LEVELS)
    assert set(get_args(HttpParser)) <= set(uvicorn.config.HTTP_PROTOCOLS)
    for option in OPTIONS:
        if not option.choices:
            continue
        with pytest.raises(SystemExit) as exc:
            build_parser({}).parse_args(["serve", f"--{option.flag}", "bogus"])
        assert exc.value.code == 2
        with pytest.raises(ValueError, match=f"^{option.name} must be "):
            Settings(**{option.name: "bogus"})
        for choice in option.choices:
            assert getattr(serve([f"--{option.flag}", choice.upper()]), option.name) == choice


def test_settings_refuse_out_of_range_values() -> None:
    with pytest.raises(ValueError, match="durability must be 'full' or 'normal'"):
        Settings(durability="fast")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="http must be 'auto', 'httptools' or 'h11'"):
        Settings(http="fast")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 1"):
        Settings(max_connections=0)
    with pytest.raises(ValueError, match="must not be negative"):
        Settings(retention_ceiling=-1)


def test_forward_reads_its_variables() -> None:
    args = build_parser({"HOOKSCOPE_RETRY_FOR": "5m", "HOOKSCOPE_NAME": "ci"}).parse_args(
        ["forward", "http://127.0.0.1:8080/h/x", "--to", "http://127.0.0.1:3000"])
    assert (args.retry_for, args.name, args.token) == (300.0, "ci", None)
    assert build_parser({}).parse_args(["forward", "http://h/h/x", "--retry-for", "10s"]).retry_for == 10.0


def test_help_lists_subcommands() -> None:
    out = subprocess.run([sys.executable, "-m", "app", "--help"], capture_output=True, text=True, check=True).stdout
    assert "serve" in out


@pytest.mark.parametrize(("text", "db", "backend"), [
    ("hookscope.db", Path("hookscope.db"), "sqlite"),
    ("/var/lib/hookscope/h.db", Path("/var/lib/hookscope/h.db"), "sqlite"),
    ("postgresql://hs@db.internal:5432/hookscope", "postgresql://hs@db.internal:5432/hookscope", "postgres"),
    ("postgres://hs@db/hookscope?sslmode=require", "postgres://hs@db/hookscope?sslmode=require", "postgres"),
    ("PostgreSQL://hs@db/hookscope", "PostgreSQL://hs@db/hookscope", "postgres"),
    # A file whose name merely mentions postgres is still a file.
    ("postgres.db", Path("postgres.db"), "sqlite"),
])
def test_db_is_a_sqlite_file_or_a_postgres_url(text: str, db: Path | str, backend: str) -> None:
    for settings in (serve(["--db", text]), serve([], {"HOOKSCOPE_DB": text})):
        assert (settings.db, settings.backend) == (db, backend)
    assert Settings(db=db).backend == backend


def test_db_refuses_an_empty_value_and_text_that_is_no_url() -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser({"HOOKSCOPE_DB": " "})
    assert str(exc.value.code).startswith("hookscope: HOOKSCOPE_DB: no database given")
    with pytest.raises(ValueError, match="postgresql:// URL"):
        Settings(db="hookscope.db")  # a file is a Path, so `backend` is never a guess


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://hs:hunter2@db:5432/hookscope", "postgresql://hs:***@db:5432/hookscope"),
    ("postgresql://hs:hun@ter/2@db/hookscope?sslmode=require", "postgresql://hs:***@db/hookscope?sslmode=require"),
    ("postgresql://hs:p%40ss@db/x#frag", "postgresql://hs:***@db/x#frag"),
    ("postgresql://hs@db/x?sslmode=require&password=hunter2", "postgresql://hs@db/x?sslmode=require&password=***"),
    ("postgres:///x?host=/run/postgresql&SSLPassword=hunter2", "postgres:///x?host=/run/postgresql&SSLPassword=***"),
    ("postgresql://hs@db1:5432,db2:5433/x", "postgresql://hs@db1:5432,db2:5433/x"),  # nothing to hide
])
def test_a_database_url_is_shown_without_its_password(url: str, shown: str) -> None:
    assert redact_database(url) == shown
    assert redact_database(Path("hookscope.db")) == "hookscope.db"


def test_help_never_shows_the_password_the_environment_set(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser({"HOOKSCOPE_DB": "postgresql://hs:hunter2@db/hookscope"}).parse_args(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(env HOOKSCOPE_DB; default postgresql://hs:***@db/hookscope)" in text and "hunter2" not in text
