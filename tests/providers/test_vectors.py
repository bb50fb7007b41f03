"""Every published test vector from shared/signatures.md verifies."""

from __future__ import annotations

import pytest

from app.providers import VerifyConfig, explain, verify
from tests.providers.helpers import make

TWILIO_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
    "Caller": "+14158675309",
}
FORM = "application/x-www-form-urlencoded"


def _form(params: dict[str, str]) -> bytes:
    from urllib.parse import urlencode

    return urlencode(params).encode()


def test_stripe_fixed_vector() -> None:
    body = '{"id":"evt_test_webhook","object":"event"}'
    header = "t=1700000000,v1=d95c6b7477fbd7e9f90b1b0ef5f9c7ac25abca5382460e0d988c2b2a5b71b990"
    req = make({"Stripe-Signature": header}, body)
    verdict = verify(
        req, VerifyConfig("stripe", ("whsec_test_secret",)), now=1700000000
    )
    assert verdict.status == "valid", verdict


@pytest.mark.parametrize(
    ("body", "signature"),
    [
        (
            '{"foo":"bar"}',
            "sha256=4864d2759938a15468b5df9ade20bf161da9b4f737ea61794142f3484236bda3",
        ),
        (
            '{\n  "foo": "bar"\n}\n',
            "sha256=e3eccac34c43c7dc1cbb905488b1b81347fcc700a7b025697a9d07862256023f",
        ),
    ],
)
def test_github_octokit_vectors(body: str, signature: str) -> None:
    req = make({"X-Hub-Signature-256": signature}, body)
    assert verify(req, VerifyConfig("github", ("mysecret",)), 0).status == "valid"


def test_github_docs_vector() -> None:
    sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    req = make({"X-Hub-Signature-256": sig}, "Hello, World!")
    assert (
        verify(req, VerifyConfig("github", ("It's a Secret to Everybody",)), 0).status
        == "valid"
    )


SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.mark.parametrize("family", ["webhook", "svix"])
@pytest.mark.parametrize("scheme", ["standard-webhooks", "svix", "clerk", "resend"])
def test_standard_webhooks_vector(family: str, scheme: str) -> None:
    headers = {
        f"{family}-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        f"{family}-timestamp": "1614265330",
        f"{family}-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }
    req = make(headers, '{"test": 2432232314}')
    assert verify(req, VerifyConfig(scheme, (SW_SECRET,)), 1614265330).status == "valid"
    explanation = explain(req, VerifyConfig(scheme, (SW_SECRET,)), 1614265330)
    assert explanation.expected == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert (
        explanation.signed_payload
        == b'msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{"test": 2432232314}'
    )


def test_standard_webhooks_negative_vector() -> None:
    headers = {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=",
    }
    verdict = verify(
        make(headers, '{"test": 2432232314}'),
        VerifyConfig("standard-webhooks", (SW_SECRET,)),
        1614265330,
    )
    assert (verdict.status, verdict.reason) == ("invalid", "signature mismatch")


SLACK_BODY = (
    "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
    "&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
    "&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
    "&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)


def test_slack_vector() -> None:
    headers = {
        "X-Slack-Request-Timestamp": "1531420618",
        "X-Slack-Signature": "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
        "Content-Type": FORM,
    }
    req = make(headers, SLACK_BODY)
    assert (
        verify(
            req,
            VerifyConfig("slack", ("8f742231b10e8888abcd99yyyzzz85a5",)),
            1531420618,
        ).status
        == "valid"
    )


@pytest.mark.parametrize(
    ("url", "signature"),
    [
        ("https://mycompany.com/myapp.php?foo=1&bar=2", "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        # Signed with :443 while we received the URL without a port, and back.
        (
            "https://mycompany.com:443/myapp.php?foo=1&bar=2",
            "RSOYDt4T1cUTdK1PDd93/VVr8B8=",
        ),
        ("https://mycompany.com/myapp.php?foo=1&bar=2", "kvajT1Ptam85bY51eRf/AJRuM3w="),
        (
            "https://mycompany.com:443/myapp.php?foo=1&bar=2",
            "kvajT1Ptam85bY51eRf/AJRuM3w=",
        ),
        (
            "http://mycompany.com:80/myapp.php?foo=1&bar=2",
            "0ZXoZLH/DfblKGATFgpif+LLRf4=",
        ),
        ("http://mycompany.com/myapp.php?foo=1&bar=2", "0ZXoZLH/DfblKGATFgpif+LLRf4="),
        (
            "http://mycompany.com:1234/myapp.php?foo=1&bar=2",
            "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=",
        ),
    ],
)
def test_twilio_vectors(url: str, signature: str) -> None:
    req = make(
        {"X-Twilio-Signature": signature, "Content-Type": FORM},
        _form(TWILIO_PARAMS),
        url=url,
    )
    assert verify(req, VerifyConfig("twilio", ("12345",)), 0).status == "valid"


def test_twilio_duplicate_params_vector() -> None:
    body = b"Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234"
    req = make(
        {"X-Twilio-Signature": "IK+Dwps556ElfBT0I3Rgjkr1wJU=", "Content-Type": FORM},
        body,
        url="https://mycompany.com/myapp.php?foo=1&bar=2",
    )
    assert verify(req, VerifyConfig("twilio", ("12345",)), 0).status == "valid"


def test_twilio_json_body_vector() -> None:
    body = '{"property": "value", "boolean": true}'
    url = (
        "https://mycompany.com/myapp.php?foo=1&bar=2"
        "&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
    )
    req = make(
        {
            "X-Twilio-Signature": "a9nBmqA0ju/hNViExpshrM61xv4=",
            "Content-Type": "application/json",
        },
        body,
        url=url,
    )
    assert verify(req, VerifyConfig("twilio", ("12345",)), 0).status == "valid"
    tampered = make(
        {
            "X-Twilio-Signature": "a9nBmqA0ju/hNViExpshrM61xv4=",
            "Content-Type": "application/json",
        },
        body.replace("value", "other"),
        url=url,
    )
    verdict = verify(tampered, VerifyConfig("twilio", ("12345",)), 0)
    assert verdict.status == "invalid"
    assert "bodySHA256" in verdict.reason


def test_twilio_sha256_variant_vector() -> None:
    headers = {
        "X-Twilio-Signature": "033hgUJA9M/hXIZsYjwkerEP/DBm35nEri5FhCYjA5s=",
        "X-Twilio-Webhooks-Signature-Settings": "key=KS123,algorithm=HMAC_SHA256",
        "Content-Type": FORM,
    }
    req = make(
        headers, _form(TWILIO_PARAMS), url="https://mycompany.com/myapp.php?foo=1&bar=2"
    )
    assert verify(req, VerifyConfig("twilio", ("12345",)), 0).status == "valid"


@pytest.mark.parametrize(
    ("body", "key", "url", "signature"),
    [
        (
            (
                '{"merchant_id":"MLEFBHHSJGVHD","type":"webhooks.test_notification",'
                '"event_id":"ac3ac95b-f97d-458c-a6e6-18981597e05f","created_at":"2022-07-13T20:30:59.037339943Z",'
                '"data":{"type":"webhooks","id":"bc368e64-01aa-407e-b46e-3231809b1129"}}'
            ),
            "Ibxx_5AKakO-3qeNVR61Dw",
            "https://webhook.site/679a4f3a-dcfa-49ee-bac5-9d0edad886b9",
            "GF4YkrJgGBDZ9NIYbNXBnMzqb2HoL4RW/S6vkZ9/2N4=",
        ),
        (
            '{"data":{"type":"webhooks","id":">id<"}}',
            "signature-key",
            "https://webhook.site/webhooks",
            "Cxt7+aTi4rKgcA0bC4g9EHdVtLSDWdqccmL5MvihU4U=",
        ),
    ],
)
def test_square_vectors(body: str, key: str, url: str, signature: str) -> None:
    req = make({"x-square-hmacsha256-signature": signature}, body, url=url)
    assert verify(req, VerifyConfig("square", (key,)), 0).status == "valid"
    # Behind a proxy we see another URL; verify.url restores the public one.
    proxied = make(
        {"x-square-hmacsha256-signature": signature},
        body,
        url="http://127.0.0.1:8000/in/x",
    )
    assert verify(proxied, VerifyConfig("square", (key,)), 0).status == "invalid"
    assert verify(proxied, VerifyConfig("square", (key,), url=url), 0).status == "valid"


PADDLE_SECRETS = (
    "pdl_ntf_01hbpjmytsa32fhr36nqgc3kgb_TjIG2BXbm83HPXqNfziwe506sBEdqL/4",
    "pdl_ntf_01hbpjmytsa32fhr36nqgc3kgb_vB/yIOnTOCWIvpBadM5jzBZPHc7OmdSo",
    "pdl_ntf_01hbpjmytsa32fhr36nqgc3kgb_WvRO0eL4Bj9rgYYIBZY6wZhG4EHy9jzh",
)
PADDLE_HEADER = "ts=1696195954;h1=dummy;h1=d96299976a6eb066f484d7fde011ac56fc32b38fc9940bc419d6e537fdc6ef02"


def test_paddle_vector_with_rotation() -> None:
    req = make({"Paddle-Signature": PADDLE_HEADER}, "hello-world")
    verdict = verify(req, VerifyConfig("paddle", PADDLE_SECRETS), 1696195954)
    assert verdict.status == "valid"
    assert verdict.matched_secret == 2
    for wrong in PADDLE_SECRETS[:2]:
        assert (
            verify(req, VerifyConfig("paddle", (wrong,)), 1696195954).reason
            == "signature mismatch"
        )


def test_discord_vector() -> None:
    headers = {
        "X-Signature-Ed25519": "c1098e97d711377f30225d53d94b89d43537f92e5b3afaddc590781b1f9f9d4b"
        "2eeab335d370be3b9a090bc61a85b86448bc140dcd195f1569c2bff181257607",
        "X-Signature-Timestamp": "1700000000",
    }
    key = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
    assert (
        verify(make(headers, '{"type":1}'), VerifyConfig("discord", (key,)), 0).status
        == "valid"
    )
    assert (
        verify(make(headers, '{"type":2}'), VerifyConfig("discord", (key,)), 0).reason
        == "signature mismatch"
    )


def test_discord_seed_gives_published_public_key() -> None:
    from app.providers import public_key_for_seed

    seed = bytes(range(32)).hex()
    assert (
        public_key_for_seed(seed)
        == "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
    )
