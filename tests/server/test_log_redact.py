"""Tokens never reach the logs: uvicorn's access and websocket lines, and our own lines with URLs."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.server.log_redact import RedactTokens, redact
from tests.support import LOCAL_TLS, ServerProcess


def test_redact_rewrites_token_parameters_only() -> None:
    assert redact("GET /h/x?token=s3cret&a=1 HTTP/1.1") == "GET /h/x?token=[redacted]&a=1 HTTP/1.1"
    assert redact("/h/x?a=1&TOKEN=s3cret") == "/h/x?a=1&TOKEN=[redacted]"
    assert redact("http://dev/hook?access_token=abc#frag") == "http://dev/hook?access_token=[redacted]#frag"
    assert redact("/h/x?tokens=1&mytoken=2") == "/h/x?tokens=1&mytoken=2"
    assert redact("no url here") == "no url here"


def test_filter_rewrites_message_and_arguments() -> None:
    record = logging.LogRecord("hookscope.forward", logging.WARNING, __file__, 1,
                               "sending to %s failed (%s)", ("http://t/?token=abc", 5), None)
    assert RedactTokens().filter(record)
    assert record.getMessage() == "sending to http://t/?token=[redacted] failed (5)"


def test_server_access_log_never_shows_the_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real `hookscope serve --access-log true`: uvicorn writes access lines to stdout and websocket lines to
    stderr; both are collected (ServerProcess sends stdout nowhere, so the child's stdout is redirected here)."""
    out = (tmp_path / "stdout.log").open("wb")
    real_popen = subprocess.Popen

    def popen(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        return real_popen(*args, **{**kwargs, "stdout": out})

    monkeypatch.setattr(subprocess, "Popen", popen)
    secret = "s3cret-token-value"
    srv = ServerProcess(tmp_path / "h.db", ["--access-log", "true", "--token", secret, "--log-level", "info"])
    with srv, httpx.Client(base_url=srv.url, trust_env=False, verify=LOCAL_TLS, timeout=10,
                           headers={"authorization": f"Bearer {secret}"}) as client:
        ep = client.post("/api/endpoints").json()["id"]
        with client.stream("GET", f"/h/{ep}?token={secret}", headers={"accept": "text/event-stream"}) as resp:
            assert resp.status_code == 200
            next(resp.iter_lines())
        assert client.get(f"/healthz?a=1&token={secret}").status_code == 200
        srv.stop()
        assert srv.proc is not None and srv.proc.stderr is not None
        stderr = srv.proc.stderr.read().decode()
    out.close()
    logged = (tmp_path / "stdout.log").read_text() + stderr
    assert f"/h/{ep}?token=[redacted]" in logged, logged
    assert "/healthz?a=1&token=[redacted]" in logged
    assert secret not in logged
