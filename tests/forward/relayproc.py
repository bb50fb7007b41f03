"""`python -m app forward ...` as a real subprocess (for kill -9)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO

from tests.support import REPO


class RelayProcess:
    def __init__(self, endpoint_url: str, to: list[str], name: str, log: Path, extra: list[str] | None = None,
                 token: str | None = None) -> None:
        self.cmd = [sys.executable, "-m", "app", "forward", endpoint_url, "--name", name, "--no-color",
                    *[a for t in to for a in ("--to", t)], *(extra or [])]
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKSCOPE_")}
        if token:
            self.env["HOOKSCOPE_TOKEN"] = token
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self._out: IO[bytes] | None = None

    def start(self, extra: list[str] | None = None) -> RelayProcess:
        self._out = self.log.open("ab")
        self.proc = subprocess.Popen([*self.cmd, *(extra or [])], cwd=REPO, env=self.env, stdout=self._out,
                                     stderr=subprocess.STDOUT)
        return self

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self._out is not None:
            self._out.close()
        return self.proc.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace")
