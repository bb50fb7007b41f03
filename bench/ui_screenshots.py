#!/usr/bin/env python3
"""Screenshots for the docs: home and the inspector with a JSON request selected, light and dark, desktop
(1280x800) and phone (390x844), written to docs/screenshots/*.png.

Seeds a fresh server with realistic captures: a Stripe event, a GitHub push, a form post and a binary upload.

    python bench/ui_screenshots.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
from playwright.sync_api import expect, sync_playwright  # noqa: E402

from tests.support import ServerProcess  # noqa: E402
from tests.ui.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

STRIPE = {
    "id": "evt_1PqK2LJ8xZ7aB3cD4eF5gH6i", "object": "event", "api_version": "2024-06-20", "created": 1717000000,
    "type": "invoice.paid", "livemode": False,
    "data": {"object": {"id": "in_1PqK2K", "object": "invoice", "amount_paid": 4200, "currency": "eur",
                        "customer": "cus_Q1w2E3r4", "status": "paid",
                        "lines": {"data": [{"description": "Pro plan", "amount": 4200}]}}},
}
GITHUB = {"ref": "refs/heads/main", "before": "4f1c0a9", "after": "9b2e7d1",
          "repository": {"full_name": "octo/hookscope", "private": False},
          "pusher": {"name": "octocat"}, "commits": [{"id": "9b2e7d1", "message": "Fix the parser"}]}


STRIPE_SECRET = "whsec_screenshots_only"


def seed(srv: ServerProcess) -> dict[str, str]:
    c = httpx.Client(base_url=srv.url, trust_env=False)
    shop = c.post("/api/endpoints", json={"name": "shop staging"}).json()
    c.post("/api/endpoints", json={"name": "ci notifications"})
    h = f"/h/{shop['id']}"
    c.post(f"{h}/upload", content=bytes(range(256)) * 40, headers={"content-type": "application/octet-stream"})
    c.post(f"{h}/forms/contact", content=b"name=Ada+Lovelace&email=ada%40example.com&message=Hello",
           headers={"content-type": "application/x-www-form-urlencoded"})
    c.post(f"{h}/github", content=json.dumps(GITHUB).encode(),
           headers={"content-type": "application/json", "x-github-event": "push",
                    "x-github-delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958", "user-agent": "GitHub-Hookshot/5"})
    c.get(f"{h}/health?probe=1")
    c.patch(f"/api/endpoints/{shop['id']}", json={"verify": {"scheme": "stripe", "secrets": [STRIPE_SECRET]}})
    body = json.dumps(STRIPE, indent=2).encode()
    headers = {"content-type": "application/json", "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)"}
    # The same event twice (a provider retry, signed afresh), then once with a forged signature.
    for secret in (STRIPE_SECRET, STRIPE_SECRET, "whsec_forged"):
        stamp = str(int(time.time()))
        sig = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        c.post(f"{h}/stripe?account=acct_42", content=body,
               headers={**headers, "stripe-signature": f"t={stamp},v1={sig}"})
    return shop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, ServerProcess(Path(tmp) / "shots.db") as srv, \
            sync_playwright() as pw:
        shop = seed(srv)
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        for scheme in ("light", "dark"):
            for device, viewport in (("desktop", (1280, 800)), ("phone", (390, 844))):
                context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]},
                                              color_scheme=scheme, is_mobile=device == "phone",
                                              device_scale_factor=1)
                page = context.new_page()
                page.goto(srv.url + "/")
                expect(page.locator("#endpoint-list li")).to_have_count(2)
                page.screenshot(path=str(args.out / f"home-{scheme}-{device}.png"))
                page.goto(f"{srv.url}/e/{shop['id']}")
                expect(page.locator("#conn")).to_have_attribute("data-state", "live")
                page.locator("#request-list li.row").first.click()
                expect(page.locator("#detail-main")).to_have_attribute("data-request-id", str(
                    page.locator("#request-list li.row").first.get_attribute("data-id")))
                page.screenshot(path=str(args.out / f"inspector-{scheme}-{device}.png"))
                if device == "desktop":
                    page.locator("#detail-main .body-views").scroll_into_view_if_needed()
                    page.screenshot(path=str(args.out / f"inspector-body-{scheme}-{device}.png"))
                    page.locator("#endpoint-panels .hs-settings-button").click()
                    expect(page.locator("dialog.hs-settings-dialog")).to_be_visible()
                    page.screenshot(path=str(args.out / f"settings-{scheme}-{device}.png"))
                    page.keyboard.press("Escape")
                if device == "phone":
                    page.click("#back")
                    page.screenshot(path=str(args.out / f"inspector-list-{scheme}-{device}.png"))
                context.close()
                print(f"{scheme} {device}: done")
        browser.close()
    print(f"screenshots in {args.out}")


if __name__ == "__main__":
    main()
