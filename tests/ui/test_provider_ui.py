"""Provider UI in a real browser: verification settings, verdict and duplicate badges, the signature helper.

The panels are driven through their module contract (static/js/context.md) on a bare same-origin page: `mount`
builds the endpoint header, a list of rows with requestBadges and the per-request panels, with a ctx like the
inspector's, and routes the live socket's delivery and verdict frames to the panels shown, as the inspector does.
That keeps these tests independent of the page shell's layout.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
import stripe
from playwright.sync_api import Page, expect

from tests.support import LOCAL_TLS, ServerProcess
from tests.ui.conftest import Watch

STRIPE_SECRET = "whsec_test_0123456789abcdefABCDEF"

HARNESS = """
async (epId) => {
  const m = await import("/static/js/panels/index.js");
  const api = await import("/static/js/lib/api.js");
  const { el } = await import("/static/js/lib/dom.js");
  const { requestBadges } = await import("/static/js/badges.js");
  const { LiveConnection } = await import("/static/js/live.js");
  const ep = await api.getJSON(`/api/endpoints/${epId}`);
  const head = el("div", { id: "endpoint-panels" });
  const list = el("ol", { id: "request-list" });
  const detail = el("div", { id: "detail-forwarding" });
  document.body.replaceChildren(head, list, detail);
  let panels = null;
  const ctx = {
    endpoint: ep, endpointId: epId, previewLimit: 262144, toasts: [],
    setEndpoint(e) { ctx.endpoint = e; },
    loadFullBody: (rid) => api.getJSON(`/api/requests/${rid}`),
    toast(message) { ctx.toasts.push(message); },
    async select(rid) {
      const req = rid === null ? null : await api.getJSON(`/api/requests/${rid}?max_body=262144`);
      if (panels) panels.stop();
      panels = m.renderRequestPanels(detail, req, ctx);
    },
    async refreshList() {
      const data = await api.getJSON(`/api/endpoints/${epId}/requests`);
      list.replaceChildren(...data.requests.map((s) =>
        el("li", { class: "row", dataset: { id: s.id } }, "#" + s.id + " ", requestBadges(s))));
    },
  };
  window.__ctx = ctx;
  m.mountEndpointPanels(head, ep, ctx);
  await ctx.refreshList();
  // Frames are routed once the stream is live, so nothing a test does after mount() can be missed.
  await new Promise((resolve, reject) => {
    setTimeout(() => reject(new Error("the live socket did not sync")), 10000);
    new LiveConnection(epId, null, {
      onRequests() {},
      onState(state) { if (state === "live") resolve(); },
      onResynced() { if (panels) panels.reload(); },
      onDelivery(d) { if (panels) panels.delivery(d); },
      onVerdicts(v) { if (panels) panels.verdicts(v); },
    }).start();
  });
}
"""


def create_endpoint(srv: ServerProcess, **fields: Any) -> dict[str, Any]:
    resp = httpx.post(srv.url + "/api/endpoints", json=fields, trust_env=False, verify=LOCAL_TLS)
    assert resp.status_code == 201, resp.text
    data: dict[str, Any] = resp.json()
    return data


def patch_endpoint(srv: ServerProcess, ep_id: str, **fields: Any) -> dict[str, Any]:
    resp = httpx.patch(f"{srv.url}/api/endpoints/{ep_id}", json=fields, trust_env=False, verify=LOCAL_TLS)
    assert resp.status_code == 200, resp.text
    data: dict[str, Any] = resp.json()
    return data


def mount(page: Page, srv: ServerProcess, ep_id: str) -> None:
    page.goto(srv.url + "/login")
    page.evaluate(HARNESS, ep_id)
    expect(page.locator("#endpoint-panels .hs-settings-button")).to_be_visible()


def refresh_list(page: Page) -> None:
    page.evaluate("window.__ctx.refreshList()")


def select(page: Page, rid: int | None) -> None:
    page.evaluate("(rid) => window.__ctx.select(rid)", rid)


def stripe_event(event_id: str, event_type: str = "invoice.paid") -> bytes:
    return json.dumps({"id": event_id, "object": "event", "type": event_type, "data": {"object": {}}}).encode()


def send_stripe(srv: ServerProcess, ep_id: str, body: bytes, secret: str = STRIPE_SECRET) -> int:
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), secret, timestamp=int(time.time()))
    resp = httpx.post(f"{srv.url}/h/{ep_id}/stripe", content=body, trust_env=False, verify=LOCAL_TLS,
                      headers={"content-type": "application/json", "stripe-signature": header})
    assert resp.status_code == 200, resp.text
    rid: int = resp.json()["request_id"]
    return rid


def row(page: Page, rid: int):  # type: ignore[no-untyped-def]
    return page.locator(f'#request-list li[data-id="{rid}"]')


def test_verification_settings_badges_and_masked_secret(ui_server: ServerProcess, page: Page, watch: Watch) -> None:
    ep = create_endpoint(ui_server, name="stripe dev")
    mount(page, ui_server, ep["id"])

    page.click(".hs-settings-button")
    dialog = page.locator("dialog.hs-settings-dialog")
    expect(dialog).to_be_visible()
    dialog.locator("select[name=verify-scheme]").select_option("stripe")
    dialog.locator("input[name=verify-secrets-new]").fill(STRIPE_SECRET)
    dialog.get_by_role("button", name="Add secret").click()
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_have_count(0)
    assert page.evaluate("window.__ctx.endpoint.verify.scheme") == "stripe"

    valid = send_stripe(ui_server, ep["id"], stripe_event("evt_valid_1"))
    invalid = send_stripe(ui_server, ep["id"], stripe_event("evt_bad_1"), secret="whsec_not_the_right_one")
    refresh_list(page)

    ok_badge = row(page, valid).locator("[data-badge=valid]")
    expect(ok_badge).to_have_text("✓ valid")
    bad_badge = row(page, invalid).locator("[data-badge=invalid]")
    expect(bad_badge).to_have_text("✗ invalid")
    expect(bad_badge).to_have_attribute("title", "signature mismatch")
    expect(row(page, valid).locator("[data-badge=provider]")).to_have_text("stripe")
    expect(row(page, valid).locator("[data-badge=event]")).to_have_text("invoice.paid")
    expect(row(page, valid).locator("[data-badge=invalid]")).to_have_count(0)

    # The list filter is the page shell's; the API behind it returns only the invalid one.
    listed = httpx.get(f"{ui_server.url}/api/endpoints/{ep['id']}/requests?verification=invalid",
        trust_env=False, verify=LOCAL_TLS)
    assert [r["id"] for r in listed.json()["requests"]] == [invalid]

    # After a reload the saved secret only ever appears masked, and saving again keeps it.
    mount(page, ui_server, ep["id"])
    page.click(".hs-settings-button")
    secrets = page.locator("dialog.hs-settings-dialog [data-list=verify-secrets] li code")
    expect(secrets).to_have_count(1)
    shown = secrets.first.text_content() or ""
    assert "…" in shown and shown != STRIPE_SECRET and STRIPE_SECRET not in page.content()
    page.locator("dialog.hs-settings-dialog").get_by_role("button", name="Save").click()
    expect(page.locator("dialog.hs-settings-dialog")).to_have_count(0)
    again = send_stripe(ui_server, ep["id"], stripe_event("evt_valid_2"))
    refresh_list(page)
    expect(row(page, again).locator("[data-badge=valid]")).to_be_visible()
    watch.assert_clean()


def test_duplicate_badge_and_signature_helper(ui_server: ServerProcess, page: Page, watch: Watch) -> None:
    ep = create_endpoint(ui_server)
    patch_endpoint(ui_server, ep["id"], verify={"scheme": "stripe", "secrets": [STRIPE_SECRET]})
    first = send_stripe(ui_server, ep["id"], stripe_event("evt_dup"))
    second = send_stripe(ui_server, ep["id"], stripe_event("evt_dup"))
    body = stripe_event("evt_wrong")
    wrong = send_stripe(ui_server, ep["id"], body, secret="whsec_other")
    mount(page, ui_server, ep["id"])

    expect(row(page, second).locator("[data-badge=duplicate]")).to_have_text(f"duplicate of #{first}")
    expect(row(page, first).locator("[data-badge=duplicate]")).to_have_count(0)

    select(page, wrong)
    helper = page.locator("#detail-forwarding [data-panel=signature]")
    expect(helper.locator("summary")).to_have_text("Signature: why invalid?")
    helper.locator("summary").click()
    received = helper.locator(".hs-sig-received li")
    expect(received).to_have_count(1)
    expected = helper.locator(".hs-sig-expected")
    expect(expected).to_be_visible()
    signed = helper.locator("pre.hs-sig-string")
    expect(signed).to_contain_text(body.decode())
    text = signed.text_content() or ""
    timestamp = text.split(".", 1)[0]
    # The helper's expected signature is the one Stripe's library computes over the shown string.
    assert expected.text_content() == stripe.WebhookSignature._compute_signature(f"{timestamp}.{body.decode()}",
                                                                                  STRIPE_SECRET)
    assert received.first.text_content() != expected.text_content()
    expect(helper).to_contain_text("signature mismatch")
    expect(helper.locator("dd", has_text="…CDEF")).to_have_text("whsec_test_…CDEF")
    assert STRIPE_SECRET not in page.content()

    # No verification configured for an unverified request: no helper at all.
    select(page, None)
    expect(page.locator("#detail-forwarding [data-panel]")).to_have_count(0)
    watch.assert_clean()


def test_badges_render_hostile_values_as_text(ui_server: ServerProcess, page: Page, watch: Watch) -> None:
    ep = create_endpoint(ui_server)
    evil = '<img src=x onerror="alert(1)">'
    send_stripe(ui_server, ep["id"], stripe_event('evt_"><script>alert(2)</script>', evil))
    mount(page, ui_server, ep["id"])
    badge = page.locator("#request-list [data-badge=event]")
    expect(badge).to_have_text(evil)
    expect(page.locator("#request-list img")).to_have_count(0)
    expect(page.locator("#request-list [data-badge=valid], #request-list [data-badge=invalid]")).to_have_count(0)
    watch.assert_clean()


@pytest.mark.parametrize("scheme", ["hmac"])
def test_settings_shows_api_validation_errors_inline(ui_server: ServerProcess, page: Page, watch: Watch,
                                                     scheme: str) -> None:
    ep = create_endpoint(ui_server)
    mount(page, ui_server, ep["id"])
    page.click(".hs-settings-button")
    dialog = page.locator("dialog.hs-settings-dialog")
    expect(dialog.locator("input[name=hmac-header]")).to_be_hidden()
    dialog.locator("select[name=verify-scheme]").select_option(scheme)
    expect(dialog.locator("input[name=hmac-header]")).to_be_visible()
    dialog.locator("input[name=verify-secrets-new]").fill("s3cret")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog.locator(".hs-msg-error")).to_contain_text("verify.header")
    expect(dialog).to_be_visible()
    dialog.locator("input[name=hmac-header]").fill("X-Acme-Signature")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_have_count(0)
    shown = httpx.get(f"{ui_server.url}/api/endpoints/{ep['id']}", trust_env=False, verify=LOCAL_TLS).json()["verify"]
    assert shown["scheme"] == "hmac" and shown["header"] == "X-Acme-Signature"
    watch.assert_clean()


def test_panels_on_the_inspector_page(ui_server: ServerProcess, page: Page, watch: Watch) -> None:
    """The real page shell calls the entry points: badges in its list, panels under the detail, settings on top."""
    ep = create_endpoint(ui_server, name="shell")
    first = send_stripe(ui_server, ep["id"], stripe_event("evt_shell"))
    dup = send_stripe(ui_server, ep["id"], stripe_event("evt_shell"), secret="whsec_wrong")
    page.goto(f"{ui_server.url}/e/{ep['id']}")
    dup_row = page.locator(f'#request-list [data-id="{dup}"]')
    expect(dup_row.locator("[data-badge=duplicate]")).to_have_text(f"duplicate of #{first}")
    dup_row.click()
    panels = page.locator("#detail-forwarding")
    expect(panels.locator("[data-panel=replay]")).to_be_visible()
    expect(panels.locator("[data-panel=deliveries] .hs-empty")).to_have_text("No deliveries yet.")
    expect(panels.locator("[data-panel=signature]")).to_have_count(0)

    # Configuring verification re-checks stored verdicts: the selected request gets its signature helper.
    page.locator("#endpoint-panels .hs-settings-button").click()
    dialog = page.locator("dialog.hs-settings-dialog")
    dialog.locator("input[name=name]").fill("renamed <b>shell</b>")
    dialog.locator("select[name=verify-scheme]").select_option("stripe")
    dialog.locator("input[name=verify-secrets-new]").fill(STRIPE_SECRET)
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_have_count(0)
    expect(page.locator("#ep-name")).to_have_text("renamed <b>shell</b>")
    expect(panels.locator("[data-panel=signature] summary")).to_have_text("Signature: why invalid?")
    # The list's badges follow the recomputed verdicts at once, without a reload.
    dup_row = page.locator(f'#request-list [data-id="{dup}"]')
    expect(dup_row.locator("[data-badge=invalid]")).to_have_attribute("title", "signature mismatch")
    expect(page.locator(f'#request-list [data-id="{first}"] [data-badge=valid]')).to_have_text("✓ valid")

    page.reload()
    dup_row = page.locator(f'#request-list [data-id="{dup}"]')
    expect(dup_row.locator("[data-badge=invalid]")).to_have_attribute("title", "signature mismatch")
    expect(page.locator(f'#request-list [data-id="{first}"] [data-badge=valid]')).to_have_text("✓ valid")
    watch.assert_clean()


def test_request_badges_for_summaries(ui_server: ServerProcess, page: Page, watch: Watch) -> None:
    page.goto(ui_server.url + "/login")
    shown = page.evaluate("""async () => {
      const { requestBadges } = await import("/static/js/badges.js");
      const texts = (s) => requestBadges(s).map((b) => [b.dataset.badge, b.textContent, b.title]);
      return {
        plain: texts({ id: 1, verification: { status: "unconfigured", reason: "" } }),
        rejected: texts({ id: 2, rejected: "body_too_large", verification: { status: "unconfigured" } }),
        valid: texts({ id: 3, provider: "github", event_type: "push", event_id: "d-1", duplicate_of: 1,
                       verification: { status: "valid", reason: "signature valid (secret 2 of 2, x…y)" } }),
      };
    }""")
    assert shown["plain"] == []
    assert shown["rejected"] == [["rejected", "413 rejected", "body too large"]]
    assert shown["valid"] == [
        ["provider", "github", ""],
        ["event", "push", "event id d-1"],
        ["valid", "✓ valid", "signature valid (secret 2 of 2, x…y)"],
        ["duplicate", "duplicate of #1", "same event id as request #1: d-1"],
    ]
    watch.assert_clean()
