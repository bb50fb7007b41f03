"""EndpointSettings: API input parsing (PATCH semantics, masked secrets, error messages) and the stored JSON
form, which must stay the one earlier versions wrote."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.delivery.resign import Resigner
from app.endpoint_settings import (
    SETTING_NAMES,
    EndpointSettings,
    PassthroughSettings,
    settings_from_json,
    settings_to_json,
)
from app.providers import VerifyConfig, mask_secret

WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
DISCORD_SEED = "11" * 32
_HMAC_DEFAULTS: dict[str, Any] = {
    "tolerance": None, "header": None, "algorithm": "sha256", "encoding": "hex", "prefix": "", "template": "{body}",
    "timestamp_header": None, "id_header": None, "url": None,
}

# The `options` column as the previous version wrote it (its keys in the order a PATCH history left them).
OLD_STORED: dict[str, Any] = {
    "forward_targets": ["http://localhost:3000/hooks", "https://dev.example/in"],
    "verify": {"scheme": "svix", "secrets": [WHSEC], **_HMAC_DEFAULTS},
    "replay_target": "http://localhost:3000/replay",
    "passthrough": {"timeout": 2.5},
    "resign": {"scheme": "github", **_HMAC_DEFAULTS, "secret": "dev-secret"},
}


def _input(data: dict[str, Any], existing: EndpointSettings | None = None) -> EndpointSettings:
    return (existing or EndpointSettings()).with_input(data)


def test_settings_written_by_the_previous_version_decode_to_typed_values() -> None:
    settings = settings_from_json(json.dumps(OLD_STORED))
    assert settings == EndpointSettings(
        verify=VerifyConfig(scheme="svix", secrets=(WHSEC,)),
        forward_targets=("http://localhost:3000/hooks", "https://dev.example/in"),
        passthrough=PassthroughSettings(2.5),
        replay_target="http://localhost:3000/replay",
        resign=Resigner(VerifyConfig(scheme="github", secrets=("dev-secret",)), "dev-secret"),
    )
    assert json.loads(settings_to_json(settings)) == OLD_STORED


def test_parsed_input_is_stored_in_the_previous_format_and_reads_back_equal() -> None:
    settings = _input({
        "verify": {"scheme": "svix", "secrets": [WHSEC]},
        "forward_targets": ["http://localhost:3000/hooks", "https://dev.example/in", "http://localhost:3000/hooks"],
        "passthrough": {"timeout": 2.5},
        "replay_target": "http://localhost:3000/replay",
        "resign": {"scheme": "github", "secret": "dev-secret"},
    })
    assert json.loads(settings_to_json(settings)) == OLD_STORED
    assert settings_from_json(settings_to_json(settings)) == settings


def test_unset_settings_store_as_an_empty_object_and_an_empty_target_list_is_kept() -> None:
    assert settings_to_json(EndpointSettings()) == "{}"
    assert settings_from_json("{}") == EndpointSettings()
    empty = _input({"forward_targets": []})
    assert empty.forward_targets == ()
    assert json.loads(settings_to_json(empty)) == {"forward_targets": []}
    assert settings_from_json(settings_to_json(empty)) == empty


@pytest.mark.parametrize(
    ("value", "stored"),
    [(True, {"timeout": 5.0}), (7, {"timeout": 7.0}), ({}, {"timeout": 5.0}), ({"timeout": 0.5}, {"timeout": 0.5})],
)
def test_passthrough_forms(value: Any, stored: dict[str, float]) -> None:
    assert json.loads(settings_to_json(_input({"passthrough": value}))) == {"passthrough": stored}


def test_patch_keeps_absent_settings_removes_null_ones_and_replaces_given_ones() -> None:
    stored = settings_from_json(json.dumps(OLD_STORED))
    patched = stored.with_input({"passthrough": None, "replay_target": "http://other:1/"})
    assert patched.passthrough is None
    assert patched.replay_target == "http://other:1/"
    assert (patched.verify, patched.resign, patched.forward_targets) == (
        stored.verify, stored.resign, stored.forward_targets
    )
    assert stored.with_input({}) == stored


def test_secrets_sent_back_masked_keep_the_stored_ones() -> None:
    stored = _input({
        "verify": {"scheme": "stripe", "secrets": ["whsec_first_secret_01", "whsec_second_secret_2"]},
        "resign": {"scheme": "stripe", "secret": "whsec_dev_secret_000"},
    })
    assert stored.verify is not None and stored.resign is not None
    shown = [mask_secret(s) for s in stored.verify.secrets]
    patched = stored.with_input({
        "verify": {"scheme": "stripe", "secrets": [shown[1], "whsec_brand_new_0003"]},
        "resign": {"scheme": "stripe", "secret": mask_secret(stored.resign.secret)},
    })
    assert patched.verify is not None and patched.resign is not None
    assert patched.verify.secrets == ("whsec_second_secret_2", "whsec_brand_new_0003")
    assert patched.resign.secret == "whsec_dev_secret_000"
    # Without a stored secret to match, the masked text is taken as the new secret.
    assert _input({"resign": {"scheme": "github", "secret": shown[0]}}).resign == Resigner(
        VerifyConfig(scheme="github", secrets=(shown[0],)), shown[0]
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"verify": 1}, "verify must be an object"),
        ({"verify": {"scheme": "hmac", "secrets": ["x"]}}, "hmac scheme needs a signature header name (verify.header)"),
        ({"forward_targets": 5}, "forward_targets must be a list of URLs"),
        ({"forward_targets": ["ftp://x"]}, "forward_targets: target must be an http:// or https:// URL, not 'ftp://x'"),
        ({"forward_targets": [f"http://a/{i}" for i in range(11)]}, "at most 10 forward targets"),
        ({"passthrough": False}, "passthrough must be true, or a timeout in seconds (0 < timeout <= 30)"),
        ({"passthrough": 31}, "passthrough must be true, or a timeout in seconds (0 < timeout <= 30)"),
        ({"passthrough": {"timeout": 1, "x": 1}}, "unknown passthrough field(s): x"),
        ({"replay_target": 3}, "replay_target must be a URL"),
        ({"replay_target": "nope"}, "replay_target: target must be an http:// or https:// URL, not 'nope'"),
        ({"resign": 1}, 'resign must be an object: {"scheme": ..., "secret": ...}'),
        ({"resign": {"scheme": "github"}}, "resign.secret must be the dev secret your server verifies with"),
        ({"resign": {"scheme": "hmac", "secret": "x"}}, "hmac scheme needs a signature header name (resign.header)"),
        ({"resign": {"scheme": "discord", "secret": "z" * 64}},
         "secret 1 is not a Discord public key (64 hex characters)"),
        # Settings are checked in SETTING_NAMES order: the first invalid one is reported.
        ({"resign": 1, "passthrough": 0, "forward_targets": 5}, "forward_targets must be a list of URLs"),
    ],
)
def test_invalid_input_is_refused_with_a_message_for_the_user(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        _input(data)
    assert str(caught.value) == message


def test_stored_values_today_s_rules_refuse_are_used_as_stored() -> None:
    # No secrets and no header: the API would refuse it now, but a stored one still decodes.
    stored = {"verify": {"scheme": "hmac", "secrets": [], **_HMAC_DEFAULTS}}
    settings = settings_from_json(json.dumps(stored))
    assert settings.verify == VerifyConfig(scheme="hmac")
    assert settings.unreadable == ()


def test_undecodable_and_unknown_settings_are_kept_verbatim_until_replaced() -> None:
    stored = {
        "verify": {"scheme": "stripe", "secrets": [], "renamed_field": 1},
        "resign": {"scheme": "github"},
        "forward_targets": ["http://a/", 5],
        "passthrough": {"timeout": "soon"},
        "replay_target": ["http://a/"],
        "from_a_newer_version": {"x": [1, 2]},
    }
    settings = settings_from_json(json.dumps(stored))
    assert (settings.verify, settings.resign, settings.forward_targets, settings.passthrough,
            settings.replay_target) == (None, None, None, None, None)
    assert settings.unreadable_names() == SETTING_NAMES
    assert json.loads(settings_to_json(settings)) == stored
    patched = settings.with_input({"resign": None, "replay_target": "http://b/"})
    assert "resign" not in patched.unreadable_names() and "replay_target" not in patched.unreadable_names()
    assert json.loads(settings_to_json(patched)) == {
        **{k: v for k, v in stored.items() if k not in ("resign", "replay_target")}, "replay_target": "http://b/"
    }
    remembered = settings.with_replay_target("http://c/")
    assert remembered.replay_target == "http://c/" and "replay_target" not in remembered.unreadable_names()


def test_lone_surrogates_stored_by_an_older_version_are_repaired_on_decode() -> None:
    text = json.dumps({"forward_targets": ["http://a/\ud800"], "verify": {"scheme": "github", "secrets": ["s\udfff"]}})
    settings = settings_from_json(text)
    assert settings.forward_targets == ("http://a/\ufffd",)
    assert settings.verify is not None and settings.verify.secrets == ("s\ufffd",)


@pytest.mark.parametrize("text", ["[]", "null", "not json"])
def test_an_options_column_that_is_not_an_object_is_an_error(text: str) -> None:
    with pytest.raises(ValueError):
        settings_from_json(text)


def test_stored_null_means_not_set() -> None:
    assert settings_from_json('{"verify": null, "forward_targets": null}') == EndpointSettings()


def test_discord_resign_secret_is_a_seed() -> None:
    settings = _input({"resign": {"scheme": "discord", "secret": DISCORD_SEED}})
    assert settings.resign is not None and settings.resign.secret == DISCORD_SEED
