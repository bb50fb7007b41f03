"""Fixtures for the provider tests: request builder and the npm-based GitHub signer."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

HERE = Path(__file__).parent
NPM_TIMEOUT_S = 300
NODE_TIMEOUT_S = 30

Octokit = Callable[..., object]


@pytest.fixture(scope="session")
def octokit_dir() -> Path:
    """tests/providers with node_modules installed (``npm ci``, once per session)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        if os.environ.get("HOOKSCOPE_REQUIRE_NODE"):
            pytest.fail("node/npm are required here (HOOKSCOPE_REQUIRE_NODE is set)")
        pytest.skip(
            "node/npm not installed: the official GitHub signer is an npm package"
        )
    if not (HERE / "node_modules" / "@octokit" / "webhooks-methods").is_dir():
        try:
            subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"],
                cwd=HERE,
                check=True,
                capture_output=True,
                timeout=NPM_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"npm ci took longer than {NPM_TIMEOUT_S} s")
        except subprocess.CalledProcessError as err:
            pytest.fail(f"npm ci failed: {err.stderr.decode(errors='replace')[-2000:]}")
    return HERE


@pytest.fixture(scope="session")
def octokit(octokit_dir: Path) -> Octokit:
    """Call @octokit/webhooks-methods: ``octokit("sign", secret=..., payload=b"...")``."""
    node = shutil.which("node")
    assert node is not None

    def call(op: str, *, payload: bytes, **fields: object) -> object:
        request = {
            "op": op,
            "payload_b64": base64.b64encode(payload).decode(),
            **fields,
        }
        done = subprocess.run(
            [node, str(octokit_dir / "octokit.mjs")],
            input=json.dumps(request).encode(),
            capture_output=True,
            check=True,
            timeout=NODE_TIMEOUT_S,
            cwd=octokit_dir,
        )
        return json.loads(done.stdout)["result"]

    return call
