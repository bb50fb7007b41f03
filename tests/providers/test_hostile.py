"""Detection, verification and explanation never raise on hostile input."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.providers import SCHEMES, SignedRequest, VerifyConfig, detect, explain, verify
from app.providers.payload import MAX_FIELD_CHARS, MAX_PARSE_BYTES
from tests.providers.helpers import make

INTERESTING_HEADERS = [
    "stripe-signature", "x-github-event", "x-github-delivery", "x-hub-signature-256", "x-hub-signature",
    "webhook-id", "webhook-timestamp", "webhook-signature", "svix-id", "svix-timestamp", "svix-signature",
    "x-shopify-topic", "x-shopify-hmac-sha256", "x-slack-signature", "x-slack-request-timestamp",
    "x-twilio-signature", "x-twilio-webhooks-signature-settings", "x-square-hmacsha256-signature",
    "paddle-signature", "linear-signature", "linear-delivery", "x-gitlab-event", "x-gitlab-token",
    "x-zm-signature", "x-zm-request-timestamp", "x-signature-ed25519", "x-signature-timestamp",
    "content-type", "x-acme-signature", "x-acme-timestamp",
]  # fmt: skip

header_values = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=255), max_size=200),
    st.sampled_from(
        [
            "t=1,v1=00",
            "v1,AAAA",
            "v0=zz",
            "ts=1;h1=",
            "sha256=",
            "=,=,=",
            "v1,",
            "  ",
            "9" * 30,
        ]
    ),
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
bodies = st.one_of(
    st.binary(max_size=500),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {
            "type": json_values,
            "id": json_values,
            "event": json_values,
            "action": json_values,
            "data": json_values,
        }
    ).map(lambda v: json.dumps(v).encode()),
)
requests = st.builds(
    make,
    headers=st.lists(
        st.tuples(st.sampled_from(INTERESTING_HEADERS), header_values), max_size=8
    ),
    body=bodies,
    url=st.one_of(
        st.just("https://h.test/p?bodySHA256=00"),
        st.text(max_size=40),
        st.just("http://[::1:80/x"),
    ),
)
configs = st.builds(
    VerifyConfig,
    scheme=st.sampled_from(SCHEMES),
    secrets=st.lists(
        st.sampled_from(["s", "whsec_AAAA", "whsec_!!", "00" * 32, "é"]), max_size=2
    ).map(tuple),
    tolerance=st.none() | st.integers(min_value=0, max_value=1000),
    header=st.just("x-acme-signature"),
    timestamp_header=st.none() | st.just("x-acme-timestamp"),
    template=st.sampled_from(["{body}", "{timestamp}.{body}", "{nope}"]),
)


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(req=requests, config=configs, now=st.floats(min_value=0, max_value=4e9))
def test_never_raises(req: SignedRequest, config: VerifyConfig, now: float) -> None:
    detected = detect(req)
    for value in (detected.event_type, detected.event_id):
        assert value is None or len(value) <= MAX_FIELD_CHARS
    assert verify(req, config, now).status in ("valid", "invalid", "unconfigured")
    explain(req, config, now).to_json()


def test_deep_nesting_and_huge_bodies() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    huge = (
        b'{"type":"x","id":"evt_1","object":"event","pad":"'
        + b"a" * MAX_PARSE_BYTES
        + b'"}'
    )
    for body in (
        deep,
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        huge,
        b"\xff\xfe\x00",
        b"9" * 10_000,
    ):
        for headers in (
            {"Stripe-Signature": "t=1,v1=00"},
            {"X-GitHub-Event": "x"},
            {"svix-id": "a", "svix-signature": "v1,x"},
            {},
        ):
            req = make(headers, body)
            assert detect(req).event_type in (None, "x")
            for scheme in SCHEMES:
                verify(req, VerifyConfig(scheme, ("whsec_AAAA",), header="x"), 0)


def test_wrong_json_types_are_ignored() -> None:
    body = json.dumps({"id": {"nested": 1}, "object": "event", "type": ["list"]})
    assert detect(make({"Stripe-Signature": "x"}, body)).event_type is None
    body = json.dumps({"type": True, "id": 1.5})
    assert detect(make({"X-Signature-Ed25519": "x"}, body)).event_id is None


def test_long_fields_are_truncated() -> None:
    body = json.dumps(
        {"id": "evt_" + "x" * 10_000, "object": "event", "type": "y" * 10_000}
    )
    found = detect(make({"Stripe-Signature": "x"}, body))
    assert found.event_id is not None and len(found.event_id) == MAX_FIELD_CHARS
