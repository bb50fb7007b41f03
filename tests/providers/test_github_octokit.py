"""GitHub signatures made and checked by @octokit/webhooks-methods (npm)."""

from __future__ import annotations

import time

from app.providers import VerifyConfig, resign, verify
from tests.providers.conftest import Octokit
from tests.providers.helpers import make

BODY = '{"action":"opened","issue":{"number":1,"title":"Ünïcode ✓"}}'.encode()


def test_octokit_signature_is_valid(octokit: Octokit) -> None:
    signature = octokit("sign", secret="mysecret", payload=BODY)
    assert isinstance(signature, str) and signature.startswith("sha256=")
    req = make({"X-GitHub-Event": "issues", "X-Hub-Signature-256": signature}, BODY)
    assert verify(req, VerifyConfig("github", ("mysecret",)), 0).status == "valid"
    assert (
        verify(req, VerifyConfig("github", ("other",)), 0).reason
        == "signature mismatch"
    )
    tampered = make({"X-Hub-Signature-256": signature}, BODY + b" ")
    assert (
        verify(tampered, VerifyConfig("github", ("mysecret",)), 0).reason
        == "signature mismatch"
    )


def test_octokit_published_vector(octokit: Octokit) -> None:
    expected = "sha256=4864d2759938a15468b5df9ade20bf161da9b4f737ea61794142f3484236bda3"
    assert octokit("sign", secret="mysecret", payload=b'{"foo":"bar"}') == expected


def test_resigned_github_passes_octokit_verify(octokit: Octokit) -> None:
    captured = [
        ("X-GitHub-Event", "issues"),
        ("X-Hub-Signature-256", "sha256=" + "0" * 64),
        ("X-Hub-Signature", "sha1=00"),
    ]
    out = dict(
        resign(
            "github",
            "dev-secret",
            "POST",
            "http://127.0.0.1:3000/gh",
            captured,
            BODY,
            time.time(),
        )
    )
    assert (
        octokit(
            "verify",
            secret="dev-secret",
            payload=BODY,
            signature=out["X-Hub-Signature-256"],
        )
        is True
    )
    assert (
        octokit(
            "verifyWithFallback",
            secret="old",
            payload=BODY,
            signature=out["X-Hub-Signature-256"],
            additional=["dev-secret"],
        )
        is True
    )
    assert out["X-Hub-Signature"].startswith("sha1=")
