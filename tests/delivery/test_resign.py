"""Re-signing on forward, relay and replay: the dev server's official verifier accepts what hookscope sends."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import stripe
from slack_sdk.signature import SignatureVerifier
from standardwebhooks.webhooks import Webhook as StdWebhook

from tests.delivery.relayproc import RelayProcess, wait_relay
from tests.delivery.target import Received, RecordingTarget
from tests.support import LiveServer, create_endpoint, wait_until

PROVIDER_SECRET = "whsec_cHJvdmlkZXJzZWNyZXRwcm92aWRlcnNlY3JldA"
DEV_SECRET = "whsec_ZGV2c2VjcmV0ZGV2c2VjcmV0ZGV2c2VjcmV0"


def _stripe_capture(event_id: str) -> tuple[dict[str, str], bytes]:
    body = b'{"id": "' + event_id.encode() + b'", "object": "event", "type": "invoice.paid"}'
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), PROVIDER_SECRET,
                                                               timestamp=int(time.time()))
    return {"stripe-signature": header, "content-type": "application/json", "x-keep": "1"}, body


def _assert_stripe_dev_valid(got: Received) -> None:
    header = (got.header(b"stripe-signature") or b"").decode()
    # The official verifier with the dev secret accepts it; with the provider's secret it would not.
    assert stripe.WebhookSignature.verify_header(got.body.decode(), header, DEV_SECRET, tolerance=300)
    try:
        stripe.WebhookSignature.verify_header(got.body.decode(), header, PROVIDER_SECRET, tolerance=300)
    except stripe.SignatureVerificationError:
        pass
    else:
        raise AssertionError("still signed with the provider's secret")
    assert got.header(b"x-keep") == b"1"


async def test_forward_is_resigned_for_the_dev_server(client: httpx.AsyncClient, target: RecordingTarget) -> None:
    ep = await create_endpoint(
        client, forward_targets=[target.url + "/hooks"], resign={"scheme": "stripe", "secret": DEV_SECRET}
    )
    assert ep["resign"]["secret"] == "whsec_…cmV0" and "dev secret" in ep["resign"]["signs_with"]
    headers, body = _stripe_capture("evt_fwd")
    await client.post(f"/h/{ep['id']}", content=body, headers=headers)
    await wait_until(lambda: target.count >= 1, timeout=20)
    _assert_stripe_dev_valid(target.received[0])
    # The capture itself is untouched and still verifies against the provider's secret.
    verify = {"scheme": "stripe", "secrets": [PROVIDER_SECRET]}
    await client.patch(f"/api/endpoints/{ep['id']}", json={"verify": verify})
    listing = (await client.get(f"/api/endpoints/{ep['id']}/requests")).json()["requests"]
    assert listing[0]["verification"]["status"] == "valid"


async def test_replay_resigns_edited_body(client: httpx.AsyncClient, target: RecordingTarget) -> None:
    ep = await create_endpoint(client)
    signing_secret = "8f742231b10e8888abcd99yyyzzz85a5"
    body = b'{"type":"event_callback","event_id":"Ev1","event":{"type":"app_mention"}}'
    resp = await client.post(f"/h/{ep['id']}", content=body, headers={"content-type": "application/json"})
    rid = resp.headers["x-hookscope-request-id"]
    edited = '{"type":"event_callback","event_id":"Ev1","event":{"type":"message"}}'
    delivery = await client.post(
        f"/api/requests/{rid}/replay",
        json={"target": target.url, "body": edited, "resign": {"scheme": "slack", "secret": signing_secret}},
    )
    assert delivery.status_code == 201, delivery.text
    assert "slack" in delivery.json()["sent"]["resigned_with"]
    got = target.received[-1]
    verifier = SignatureVerifier(signing_secret)
    headers = {n.decode(): v.decode() for n, v in got.headers}
    assert got.body == edited.encode()
    assert verifier.is_valid_request(got.body, headers)
    # "resign": false sends it as captured (no signature at all here).
    await client.post(f"/api/requests/{rid}/replay", json={"target": target.url, "resign": False})
    assert target.received[-1].header(b"x-slack-signature") is None


async def test_relay_delivery_is_resigned(server: LiveServer, client: httpx.AsyncClient, target: RecordingTarget,
                                          tmp_path: Path) -> None:
    ep = await create_endpoint(client, resign={"scheme": "standard-webhooks", "secret": DEV_SECRET})
    relay = RelayProcess(f"{server.url}/h/{ep['id']}", [target.url], "resign", tmp_path / "relay.log")
    relay.start()
    try:
        await wait_relay(client, ep["id"], "resign")
        body = b'{"type":"user.created","data":{"id":"u1"}}'
        wh = StdWebhook(PROVIDER_SECRET)
        msg_id, ts = "msg_1", int(time.time())
        signature = wh.sign(msg_id, datetime.fromtimestamp(ts, UTC), body.decode())
        await client.post(f"/h/{ep['id']}", content=body,
                          headers={"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": signature})
        await wait_until(lambda: target.count >= 1, timeout=20)
    finally:
        relay.stop()
    got = target.received[0]
    headers = {n.decode(): v.decode() for n, v in got.headers}
    # The official verifier raises on a bad signature and returns the parsed payload on a good one.
    assert StdWebhook(DEV_SECRET).verify(got.body, headers) == json.loads(body)


async def test_bad_resign_settings_are_400(client: httpx.AsyncClient) -> None:
    for bad in [{"scheme": "stripe"}, {"scheme": "nope", "secret": "x"}, "stripe",
                {"scheme": "discord", "secret": "not-hex"}]:
        resp = await client.post("/api/endpoints", json={"resign": bad})
        assert resp.status_code == 400, bad
