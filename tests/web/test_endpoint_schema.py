"""The endpoint's JSON shape: settings shown in a fixed order, secrets masked, unreadable ones reported in place."""

from __future__ import annotations

import json
import logging

import pytest

from app.endpoint_settings import SETTING_NAMES, settings_from_json
from app.models import Endpoint, EndpointStats
from app.web.endpoint_schema import endpoint_json, parse_endpoint_input

BASE = "http://hookscope.test"


def _shown(options: str) -> dict[str, object]:
    return endpoint_json(Endpoint("ep1", "n", 0.0, settings=settings_from_json(options)), EndpointStats(), BASE)


def test_settings_follow_the_fixed_fields_in_setting_order_and_secrets_are_masked() -> None:
    fields = parse_endpoint_input({
        "resign": {"scheme": "github", "secret": "dev-secret-123"},
        "replay_target": "http://localhost:3000/r",
        "passthrough": True,
        "forward_targets": [],
        "verify": {"scheme": "github", "secrets": ["real-secret-456"]},
    }, None)
    assert fields.settings is not None
    shown = endpoint_json(Endpoint("ep1", "n", 0.0, settings=fields.settings), EndpointStats(), BASE)
    assert list(shown)[8:] == list(SETTING_NAMES)
    assert shown["forward_targets"] == []
    assert shown["passthrough"] == {"timeout": 5.0}
    assert "real-secret-456" not in json.dumps(shown) and "dev-secret-123" not in json.dumps(shown)


def test_settings_not_set_are_left_out() -> None:
    shown = _shown('{"replay_target": "http://localhost:3000/r"}')
    assert [k for k in SETTING_NAMES if k in shown] == ["replay_target"]


def test_a_stored_setting_that_cannot_be_read_or_shown_is_reported_in_place(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="hookscope.api")
    shown = _shown(json.dumps({
        "verify": {"scheme": "stripe", "renamed_field": 1},
        # Decodes (stored values are used as stored) but its public key cannot be derived for display.
        "resign": {"scheme": "discord", "secret": "not hex"},
        "forward_targets": ["http://localhost:3000/ok"],
    }))
    assert shown["verify"] == {"error": "the stored verify setting cannot be read; set it again"}
    assert shown["resign"] == {"error": "the stored resign setting cannot be read; set it again"}
    assert shown["forward_targets"] == ["http://localhost:3000/ok"]
    assert {"verify", "resign"} <= {r.args[1] for r in caplog.records if isinstance(r.args, tuple)}
