"""Provider awareness end to end: requests signed by official libraries, captured by a real server."""

from __future__ import annotations

import time
from dataclasses import replace

import httpx
import pytest
import stripe

from app.settings import Settings
from tests.providers.signers import CASES, Case
from tests.support import create_endpoint, live_server

STRIPE_SECRET = "whsec_dGVzdHNlY3JldGZvcmhvb2tzY29wZQ0001"


def _stripe_request(event_id: str, secret: str = STRIPE_SECRET, ts: int | None = None) -> tuple[dict[str, str], bytes]:
    body = (f'{{"id": "{event_id}", "object": "event", "type": "invoice.paid", "data": {{"object": {{}}}}}}').encode()
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), secret, timestamp=ts or int(time.time()))
    return {"stripe-signature": header, "content-type": "application/json"}, body


async def _capture(client: httpx.AsyncClient, ep: dict, headers: dict[str, str], body: bytes) -> dict:  # type: ignore[type-arg]
    resp = await client.post(f"/h/{ep['id']}", content=body, headers=headers)
    assert resp.status_code == 200
    return (await client.get(f"/api/requests/{resp.headers['x-hookscope-request-id']}")).json()  # type: ignore[no-any-return]


async def test_stripe_signed_by_official_library_is_valid(client: httpx.AsyncClient) -> None:
    ep = await create_endpoint(client, verify={"scheme": "stripe", "secrets": [STRIPE_SECRET]})
    assert ep["verify"]["secrets"] == ["whsec_…0001"]  # never shown back in full
    headers, body = _stripe_request("evt_1")
    got = await _capture(client, ep, headers, body)
    assert (got["provider"], got["event_type"], got["event_id"]) == ("stripe", "invoice.paid", "evt_1")
    assert got["verification"]["status"] == "valid"

    tampered = await _capture(client, ep, headers, body.replace(b"invoice.paid", b"invoice.void"))
    assert tampered["verification"] == {"status": "invalid", "reason": tampered["verification"]["reason"]}
    assert "mismatch" in tampered["verification"]["reason"]

    stale_headers, stale_body = _stripe_request("evt_2", ts=int(time.time()) - 3600)
    stale = await _capture(client, ep, stale_headers, stale_body)
    assert stale["verification"]["status"] == "invalid" and "tolerance" in stale["verification"]["reason"]

    missing = await _capture(client, ep, {"content-type": "application/json"}, body)
    assert missing["verification"]["status"] == "invalid" and "Stripe-Signature" in missing["verification"]["reason"]

    invalid = (await client.get(f"/api/endpoints/{ep['id']}/requests", params={"verification": "invalid"})).json()
    assert sorted(r["id"] for r in invalid["requests"]) == sorted([tampered["id"], stale["id"], missing["id"]])


async def test_unconfigured_and_unknown_sender(client: httpx.AsyncClient) -> None:
    ep = await create_endpoint(client)
    got = await _capture(client, ep, {"content-type": "text/plain"}, b"hello")
    assert got["provider"] is None and got["event_id"] is None
    assert got["verification"]["status"] == "unconfigured"


async def test_duplicates_over_provider_retries(client: httpx.AsyncClient) -> None:
    ep = await create_endpoint(client, verify={"scheme": "stripe", "secrets": [STRIPE_SECRET]})
    first = await _capture(client, ep, *_stripe_request("evt_retry"))
    retry = await _capture(client, ep, *_stripe_request("evt_retry", ts=int(time.time()) + 1))  # new signature
    other = await _capture(client, ep, *_stripe_request("evt_other"))
    assert first["duplicate_of"] is None and other["duplicate_of"] is None
    assert retry["duplicate_of"] == first["id"] and retry["verification"]["status"] == "valid"
    dups = (await client.get(f"/api/endpoints/{ep['id']}/requests", params={"duplicate": "true"})).json()
    assert [r["id"] for r in dups["requests"]] == [retry["id"]]
    # The same event id on another endpoint is not a duplicate.
    ep2 = await create_endpoint(client)
    assert (await _capture(client, ep2, *_stripe_request("evt_retry")))["duplicate_of"] is None


async def test_rotation_and_recompute_on_secret_change(client: httpx.AsyncClient) -> None:
    ep = await create_endpoint(client, verify={"scheme": "stripe", "secrets": ["whsec_old_secret_000000001"]})
    got = await _capture(client, ep, *_stripe_request("evt_a"))
    assert got["verification"]["status"] == "invalid"
    # Add the right secret (rotation): the masked old one, sent back as shown, keeps its stored value.
    shown = (await client.get(f"/api/endpoints/{ep['id']}")).json()["verify"]
    patched = await client.patch(
        f"/api/endpoints/{ep['id']}",
        json={"verify": {**shown, "secrets": [*shown["secrets"], STRIPE_SECRET]}},
    )
    assert patched.status_code == 200, patched.text
    again = (await client.get(f"/api/requests/{got['id']}")).json()
    assert again["verification"]["status"] == "valid" and "secret 2 of 2" in again["verification"]["reason"]
    # Rotate the right secret out: verdicts follow.
    await client.patch(f"/api/endpoints/{ep['id']}", json={"verify": {"scheme": "stripe", "secrets": ["whsec_x"]}})
    assert (await client.get(f"/api/requests/{got['id']}")).json()["verification"]["status"] == "invalid"
    await client.patch(f"/api/endpoints/{ep['id']}", json={"verify": None})
    assert (await client.get(f"/api/requests/{got['id']}")).json()["verification"]["status"] == "unconfigured"


async def test_signature_helper_shows_expected_and_signed_string(client: httpx.AsyncClient) -> None:
    ep = await create_endpoint(client)
    headers, body = _stripe_request("evt_h")
    got = await _capture(client, ep, headers, body)
    assert (await client.get(f"/api/requests/{got['id']}/signature")).status_code == 409
    await client.patch(f"/api/endpoints/{ep['id']}", json={"verify": {"scheme": "stripe", "secrets": ["whsec_wrong"]}})
    help_ = (await client.get(f"/api/requests/{got['id']}/signature")).json()
    ts = headers["stripe-signature"].split(",")[0][2:]
    assert help_["signed_string"] == f"{ts}.{body.decode()}"
    assert help_["expected"] and help_["expected"] not in help_["received"]
    assert "whsec_wrong" not in str(help_)


async def test_bad_verify_config_is_400(client: httpx.AsyncClient) -> None:
    for bad in [{"scheme": "nope"}, {"scheme": "stripe", "secrets": "x"}, "stripe", {"scheme": "hmac"}]:
        resp = await client.post("/api/endpoints", json={"verify": bad})
        assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_endpoint"


@pytest.mark.parametrize("case", [c for c in CASES if c.official], ids=lambda c: c.name)
async def test_every_official_signer_is_valid_through_the_server(settings: Settings, case: Case) -> None:
    """The provider tests sign with official libraries; here each signed request goes through real capture."""
    signed = case.sign(case.secret, int(time.time()))
    url = httpx.URL(signed.url)
    # Schemes that sign the URL (Twilio, Square) need the public URL the provider called.
    public = f"{url.scheme}://{url.host}"
    async with live_server(replace(settings, public_url=public)) as srv, srv.client() as client:
        config = {**case.config}
        if case.scheme in ("twilio", "square"):
            config["url"] = signed.url  # the provider signed its dashboard URL, as behind a proxy
        ep = await create_endpoint(client, verify={"scheme": case.scheme, "secrets": [case.secret], **config})
        target = f"/h/{ep['id']}" + (f"?{url.query.decode()}" if url.query else "")
        resp = await client.post(target, content=signed.body, headers=signed.headers)
        got = (await client.get(f"/api/requests/{resp.headers['x-hookscope-request-id']}")).json()
        assert got["verification"]["status"] == "valid", got["verification"]
        assert got["provider"] is not None
