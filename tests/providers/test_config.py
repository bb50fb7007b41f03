"""Verify-config parsing, JSON round trip and secret masking."""

from __future__ import annotations

import pytest

from app.providers import VerifyConfig, mask_secret
from app.providers.config import ConfigError


@pytest.mark.parametrize(
    ("secret", "hint"),
    [
        ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_…LaSw"),
        (
            "pdl_ntfset_01hbpjmytsa32fhr36nqgc3kgb_WvRO0eL4Bj9rgYYIBZY6wZhG4EHy9jzh",
            "pdl_ntfset_…9jzh",
        ),
        ("8f742231b10e8888abcd99yyyzzz85a5", "…85a5"),
        ("mysecret", "…"),
        ("", "…"),
    ],
)
def test_mask_secret(secret: str, hint: str) -> None:
    assert mask_secret(secret) == hint


def test_round_trip_masks_secrets() -> None:
    config = VerifyConfig.from_json(
        {
            "scheme": "stripe",
            "secrets": ["whsec_abcdefghijklmnop1234"],
            "tolerance": 600,
        }
    )
    assert config == VerifyConfig("stripe", ("whsec_abcdefghijklmnop1234",), 600)
    assert config.to_json() == {
        "scheme": "stripe",
        "secrets": ["whsec_…1234"],
        "tolerance": 600,
    }


def test_hmac_round_trip() -> None:
    data = {
        "scheme": "hmac",
        "secrets": ["s"],
        "header": "X-Sig",
        "algorithm": "sha1",
        "encoding": "base64",
        "prefix": "sha1=",
        "template": "{timestamp}.{body}",
        "timestamp_header": "X-Ts",
    }
    out = VerifyConfig.from_json(data).to_json()
    assert out["header"] == "X-Sig" and out["template"] == "{timestamp}.{body}"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "must be an object"),
        ({"scheme": "nope"}, "verify.scheme must be one of"),
        ({"scheme": "stripe", "secret": "x"}, "unknown verify field(s): secret"),
        ({"scheme": "stripe", "secrets": "x"}, "list of non-empty strings"),
        ({"scheme": "stripe", "secrets": [""]}, "list of non-empty strings"),
        ({"scheme": "stripe", "tolerance": -1}, "tolerance"),
        ({"scheme": "stripe", "tolerance": True}, "tolerance"),
        ({"scheme": "svix", "secrets": ["whsec_!!!"]}, "secret 1 is not a whsec_"),
        ({"scheme": "discord", "secrets": ["abc"]}, "Discord public key"),
        ({"scheme": "hmac"}, "verify.header"),
        (
            {"scheme": "hmac", "header": "X", "template": "{ts}.{body}"},
            "not supported: ts",
        ),
        (
            {"scheme": "hmac", "header": "X", "template": "{timestamp}.{body}"},
            "timestamp_header",
        ),
        ({"scheme": "hmac", "header": "X", "template": "{id}.{body}"}, "id_header"),
        ({"scheme": "hmac", "header": "X", "algorithm": "md5"}, "algorithm"),
        ({"scheme": "stripe", "secrets": ["s"] * 11}, "at most"),
    ],
)
def test_invalid_configs(data: object, message: str) -> None:
    with pytest.raises(ConfigError, match=None) as err:
        VerifyConfig.from_json(data)
    assert message in str(err.value)
    assert isinstance(err.value, ValueError)
