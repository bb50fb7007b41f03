import subprocess
import sys

import pytest

from app.cli import build_parser, settings_from_args
from app.settings import MIB, parse_duration, parse_size


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


def test_environment_sets_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOKSCOPE_PORT", "9999")
    monkeypatch.setenv("HOOKSCOPE_MAX_BODY", "1MiB")
    monkeypatch.setenv("HOOKSCOPE_DURABILITY", "normal")
    settings, _ = settings_from_args(build_parser().parse_args(["serve"]))
    assert (settings.port, settings.max_body, settings.durability) == (9999, MIB, "normal")
    settings, _ = settings_from_args(build_parser().parse_args(["serve", "--port", "1234"]))
    assert settings.port == 1234  # a flag beats the environment


def test_help_lists_subcommands() -> None:
    out = subprocess.run([sys.executable, "-m", "app", "--help"], capture_output=True, text=True, check=True).stdout
    assert "serve" in out
