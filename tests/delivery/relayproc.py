"""`python -m app forward ...` as a real subprocess (for kill -9)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx

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


async def wait_relay(client: httpx.AsyncClient, ep_id: str, name: str, connected: bool = True,
                     timeout: float = 15.0) -> None:
    """Wait until the server reports relay `name` as connected (or disconnected)."""
    deadline = time.monotonic() + timeout
    while True:
        relays = (await client.get(f"/api/endpoints/{ep_id}/relays")).json()["relays"]
        if any(r["name"] == name and r["connected"] == connected for r in relays):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"relay {name} not connected={connected}")
        await asyncio.sleep(0.01)
