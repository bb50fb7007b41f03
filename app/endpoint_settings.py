"""An endpoint's feature settings (verification, re-signing, forward targets, passthrough, replay target): the
typed value every reader uses, the API input parsers that build it, and its stored JSON form.

Settings are parsed once, when written: `EndpointSettings.with_input` validates API input (PATCH semantics),
the store keeps `settings_to_json` in the endpoint's `options` column and decodes it with `settings_from_json`
when it loads the endpoint, so no delivery, capture or page parses settings again.

The stored form is the one earlier versions wrote (a JSON object keyed by setting name), so existing databases
read unchanged. Decoding is lenient, because a stored value may predate today's rules: it is used as stored,
without the API's validation; a value that cannot be decoded at all (a shape since changed) is not applied but
kept verbatim in `unreadable`, so the API can report it and a later write of another setting does not lose it.

Dependency direction: this module imports the feature parsers it needs (`app.delivery.resign`,
`app.providers`, `app.delivery.outgoing`); the features and the web layer import this module, never the
reverse.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from app.delivery.outgoing import TargetError, parse_target
from app.delivery.resign import Resigner, parse_resign
from app.providers import VerifyConfig, mask_secret
from app.unicode_safe import scrub

SettingName = Literal["verify", "forward_targets", "passthrough", "replay_target", "resign"]
# Every setting, in the order the API shows them (part of the endpoint's JSON shape) and validates them.
SETTING_NAMES: tuple[SettingName, ...] = get_args(SettingName)

MAX_FORWARD_TARGETS = 10
DEFAULT_PASSTHROUGH_TIMEOUT = 5.0
MAX_PASSTHROUGH_TIMEOUT = 30.0

# What a stored value of an older shape raises when decoded (a missing key, an unexpected field, a wrong type).
_UNDECODABLE = (ValueError, TypeError, KeyError, AttributeError)


@dataclass(frozen=True, slots=True)
class PassthroughSettings:
    """Answer the sender with the target's response when one comes within `timeout` seconds."""

    timeout: float = DEFAULT_PASSTHROUGH_TIMEOUT


@dataclass(frozen=True, slots=True)
class EndpointSettings:
    """An endpoint's feature settings; None means "not set".

    `forward_targets` may also be an empty tuple: set to an empty list, which the API shows back as `[]` and
    which forwards nowhere, like None. `resign` is the Resigner every delivery uses, built once when parsed.
    """

    verify: VerifyConfig | None = None
    forward_targets: tuple[str, ...] | None = None
    passthrough: PassthroughSettings | None = None
    replay_target: str | None = None
    resign: Resigner | None = None
    # Stored settings this version cannot use, as (name, stored JSON text): a known setting whose stored value
    # cannot be decoded, or a name this version does not know. Kept so rewriting the endpoint keeps them.
    unreadable: tuple[tuple[str, str], ...] = ()

    def with_input(self, data: Mapping[str, Any]) -> EndpointSettings:
        """These settings with API input applied, PATCH style: a setting given as null is removed, one not given
        is kept, any other value replaces it once valid (else ValueError with a message for the user, for the
        first invalid setting in SETTING_NAMES order). Secrets sent back masked, as the API shows them, keep
        the stored secret. Keys of `data` that are not settings are ignored (the caller checks them)."""
        verify, targets, passthrough, replay_target, resign = (
            self.verify, self.forward_targets, self.passthrough, self.replay_target, self.resign
        )
        if "verify" in data:
            verify = None if data["verify"] is None else parse_verify(data["verify"], self.verify)
        if "forward_targets" in data:
            value = data["forward_targets"]
            targets = None if value is None else parse_forward_targets(value)
        if "passthrough" in data:
            passthrough = None if data["passthrough"] is None else parse_passthrough(data["passthrough"])
        if "replay_target" in data:
            value = data["replay_target"]
            replay_target = None if value is None else parse_replay_target(value)
        if "resign" in data:
            resign = None if data["resign"] is None else parse_resign(data["resign"], self.resign)
        return EndpointSettings(
            verify=verify,
            forward_targets=targets,
            passthrough=passthrough,
            replay_target=replay_target,
            resign=resign,
            unreadable=tuple((name, raw) for name, raw in self.unreadable if name not in data),
        )

    def with_replay_target(self, target: str) -> EndpointSettings:
        """These settings remembering `target` (already checked by the caller) as the replay target."""
        return dataclasses.replace(
            self,
            replay_target=target,
            unreadable=tuple((name, raw) for name, raw in self.unreadable if name != "replay_target"),
        )

    def unreadable_names(self) -> tuple[SettingName, ...]:
        """The known settings whose stored value could not be decoded (the API reports them as errors)."""
        stored = {name for name, _ in self.unreadable}
        return tuple(name for name in SETTING_NAMES if name in stored)


# API input parsers: value as sent -> typed setting, or ValueError with a message for the user ---------------
def parse_verify(value: Any, previous: VerifyConfig | None) -> VerifyConfig:
    """Secrets sent back masked (as the API shows them) keep their stored value."""
    if isinstance(value, dict) and isinstance(value.get("secrets"), list) and previous is not None:
        known = {mask_secret(s): s for s in previous.secrets}
        value = {**value, "secrets": [known.get(s, s) if isinstance(s, str) else s for s in value["secrets"]]}
    return VerifyConfig.from_json(value)


def parse_forward_targets(value: Any) -> tuple[str, ...]:
    """A URL or a list of http(s) URLs (at most 10), deduplicated. Checked for shape here; the SSRF guard runs
    at connect time."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("forward_targets must be a list of URLs")
    if len(value) > MAX_FORWARD_TARGETS:
        raise ValueError(f"at most {MAX_FORWARD_TARGETS} forward targets")
    out: list[str] = []
    for url in value:
        try:
            parse_target(url)
        except TargetError as exc:
            raise ValueError(f"forward_targets: {exc}") from None
        if url.strip() not in out:
            out.append(url.strip())
    return tuple(out)


def parse_passthrough(value: Any) -> PassthroughSettings:
    """true -> a 5 s timeout; a number of seconds; or {"timeout": seconds}."""
    if value is True:
        return PassthroughSettings(DEFAULT_PASSTHROUGH_TIMEOUT)
    if isinstance(value, dict):
        unknown = set(value) - {"timeout"}
        if unknown:
            raise ValueError(f"unknown passthrough field(s): {', '.join(sorted(unknown))}")
        value = value.get("timeout", DEFAULT_PASSTHROUGH_TIMEOUT)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_PASSTHROUGH_TIMEOUT:
        raise ValueError(
            f"passthrough must be true, or a timeout in seconds (0 < timeout <= {MAX_PASSTHROUGH_TIMEOUT:g})"
        )
    return PassthroughSettings(float(value))


def parse_replay_target(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("replay_target must be a URL")
    try:
        parse_target(value)
    except TargetError as exc:
        raise ValueError(f"replay_target: {exc}") from None
    return value.strip()


# The stored form ---------------------------------------------------------------------------------------------
def settings_to_json(settings: EndpointSettings) -> str:
    """The JSON text kept in the endpoint's `options` column (the format earlier versions wrote)."""
    stored: dict[str, Any] = {}
    if settings.verify is not None:
        stored["verify"] = _verify_to_stored(settings.verify)
    if settings.forward_targets is not None:
        stored["forward_targets"] = list(settings.forward_targets)
    if settings.passthrough is not None:
        stored["passthrough"] = {"timeout": settings.passthrough.timeout}
    if settings.replay_target is not None:
        stored["replay_target"] = settings.replay_target
    if settings.resign is not None:
        stored["resign"] = _resign_to_stored(settings.resign)
    for name, raw in settings.unreadable:
        stored[name] = json.loads(raw)
    return json.dumps(stored)


def settings_from_json(text: str) -> EndpointSettings:
    """Decode the `options` column. Lone surrogates (stored by a version without the API's edge check) become
    U+FFFD, so nothing downstream meets text it cannot encode. A setting that cannot be decoded lands in
    `unreadable` instead of failing the endpoint; only text that is not a JSON object raises ValueError."""
    stored = scrub(json.loads(text))
    if not isinstance(stored, dict):
        raise ValueError("stored endpoint settings are not a JSON object")
    decoded: dict[str, Any] = {}
    unreadable: list[tuple[str, str]] = []
    for name, decode in _DECODERS:
        value = stored.get(name)
        if value is None:  # null is written by no version, but means the same: not set
            continue
        try:
            decoded[name] = decode(value)
        except _UNDECODABLE:
            unreadable.append((name, json.dumps(value)))
    unreadable.extend((name, json.dumps(value)) for name, value in stored.items() if name not in SETTING_NAMES)
    return EndpointSettings(**decoded, unreadable=tuple(unreadable))


def _verify_to_stored(config: VerifyConfig) -> dict[str, Any]:
    stored = dataclasses.asdict(config)
    stored["secrets"] = list(config.secrets)
    return stored


def _verify_from_stored(stored: Any) -> VerifyConfig:
    return VerifyConfig(**{**stored, "secrets": tuple(stored.get("secrets", ()))})


def _resign_to_stored(resigner: Resigner) -> dict[str, Any]:
    stored = dataclasses.asdict(resigner.config)
    del stored["secrets"]
    stored["secret"] = resigner.secret
    return stored


def _resign_from_stored(stored: Any) -> Resigner:
    fields = {k: v for k, v in stored.items() if k != "secret"}
    return Resigner(VerifyConfig(**{**fields, "secrets": (stored["secret"],)}), stored["secret"])


def _targets_from_stored(stored: Any) -> tuple[str, ...]:
    if not isinstance(stored, list) or not all(isinstance(t, str) for t in stored):
        raise ValueError("forward_targets is not a list of URLs")
    return tuple(stored)


def _passthrough_from_stored(stored: Any) -> PassthroughSettings:
    timeout = stored.get("timeout", DEFAULT_PASSTHROUGH_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise ValueError("passthrough.timeout is not a number")
    return PassthroughSettings(float(timeout))


def _replay_target_from_stored(stored: Any) -> str:
    if not isinstance(stored, str):
        raise ValueError("replay_target is not a URL")
    return stored


# Stored value -> typed value, one per setting: the field of EndpointSettings each name fills.
_DECODERS: tuple[tuple[SettingName, Callable[[Any], object]], ...] = (
    ("verify", _verify_from_stored),
    ("forward_targets", _targets_from_stored),
    ("passthrough", _passthrough_from_stored),
    ("replay_target", _replay_target_from_stored),
    ("resign", _resign_from_stored),
)
