"""Forwarding UI in a real browser: replay and edit-and-replay, re-signing, server-side forwards with their
deliveries and manual retry, and the relays strip. Targets are tiny recording HTTP servers in a thread."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import stripe
from playwright.sync_api import Page, expect

from tests.delivery.relayproc import RelayProcess
from tests.support import LOCAL_TLS, ServerProcess, free_port
from tests.ui.conftest import Watch
from tests.ui.test_provider_ui import (
    STRIPE_SECRET,
    create_endpoint,
    mount,
    patch_endpoint,
    select,
    send_stripe,
    stripe_event,
)

DEV_SECRET = "whsec_dev_secret_for_my_laptop_42"


class Target:
    """Records every request (method, path, headers in order, body bytes) and answers 200 "ok"; with a `gate`, only
    once the gate is set (the request is recorded first)."""

    def __init__(self, port: int = 0, gate: threading.Event | None = None) -> None:
        self.received: list[tuple[str, str, list[tuple[str, str]], bytes]] = []
        self.got = threading.Event()
        self.changed = threading.Condition()
        target = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                with target.changed:
                    target.received.append((self.command, self.path, list(self.headers.items()), body))
                    target.changed.notify_all()
                target.got.set()
                if gate is not None:
                    gate.wait(30)
                self.send_response(200)
                self.send_header("content-type", "text/plain")
                self.send_header("x-target", "recorder")
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            do_PUT = do_PATCH = do_GET = do_DELETE = do_POST

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def received_count(self, count: int, timeout: float) -> bool:
        """Wait until `count` requests arrived; False after `timeout` seconds."""
        with self.changed:
            return self.changed.wait_for(lambda: len(self.received) >= count, timeout)

    def header(self, index: int, name: str) -> list[str]:
        return [v for n, v in self.received[index][2] if n.lower() == name]


@pytest.fixture
def target() -> Iterator[Target]:
    t = Target()
    yield t
    t.close()


def capture(srv: ServerProcess, ep_id: str, body: bytes, headers: list[tuple[str, str]], path: str = "") -> int:
    resp = httpx.post(f"{srv.url}/h/{ep_id}{path}", content=body, headers=headers, trust_env=False, verify=LOCAL_TLS)
    assert resp.status_code == 200, resp.text
    rid: int = resp.json()["request_id"]
    return rid


def delivery_rows(page: Page):  # type: ignore[no-untyped-def]
    return page.locator("#detail-forwarding [data-panel=deliveries] tbody tr[data-delivery-id]")


def test_replay_asks_for_a_target_once_then_remembers_it(ui_server: ServerProcess, page: Page, watch: Watch,
                                                          target: Target) -> None:
    ep = create_endpoint(ui_server)
    body = b'{"a": 1}\x00\xff\xfe binary tail'
    rid = capture(ui_server, ep["id"], body, [("content-type", "application/octet-stream"), ("x-dup", "1"),
                                                ("x-dup", "2")])
    mount(page, ui_server, ep["id"])
    select(page, rid)
    panel = page.locator("#detail-forwarding [data-panel=replay]")
    expect(page.locator("#detail-forwarding [data-panel=deliveries] .hs-empty")).to_have_text("No deliveries yet.")

    panel.get_by_role("button", name="Replay", exact=True).click()
    expect(panel.locator(".hs-msg")).to_contain_text("No replay target yet")
    panel.locator("input.hs-replay-target").fill(target.url + "/hook")
    panel.get_by_role("button", name="Send").click()

    first = delivery_rows(page).first
    expect(first.locator(".hs-state")).to_have_text("delivered")
    expect(first.locator(".hs-status")).to_have_text("200")
    expect(first).to_contain_text("replay")
    assert target.received[0][3] == body
    assert target.received[0][1] == "/hook"
    assert target.header(0, "x-dup") == ["1", "2"]
    expect(panel.locator(".hs-replay-current")).to_have_text(f"to {target.url}/hook")

    # The second replay goes to the remembered target without asking.
    expect(panel.locator("input.hs-replay-target")).to_be_hidden()
    panel.get_by_role("button", name="Replay", exact=True).click()
    expect(delivery_rows(page)).to_have_count(2)
    assert len(target.received) == 2 and target.received[1][3] == body

    # Details show the target's response headers and body as text.
    first.get_by_role("button", name="Details").click()
    details = page.locator("#detail-forwarding tr.hs-delivery-details")
    expect(details.locator(".hs-resp-body")).to_have_text("ok")
    expect(details.locator(".hs-resp-headers")).to_contain_text("x-target: recorder")
    watch.assert_clean()


def test_edit_and_replay_sends_the_edited_request(ui_server: ServerProcess, page: Page, watch: Watch,
                                                  target: Target) -> None:
    ep = create_endpoint(ui_server)
    patch_endpoint(ui_server, ep["id"], replay_target=target.url)
    rid = capture(ui_server, ep["id"], b'{"amount": 10}', [("content-type", "application/json"),
                                                           ("x-custom", "one"), ("x-keep", "kept")], path="/orders")
    mount(page, ui_server, ep["id"])
    select(page, rid)
    page.get_by_role("button", name="Edit and replay").click()
    dialog = page.locator("dialog.hs-edit-dialog")
    expect(dialog.locator("input[name=method]")).to_have_value("POST")
    expect(dialog.locator("input[name=path]")).to_have_value("/orders")
    headers = dialog.locator("textarea[name=headers]")
    expect(headers).to_have_value(re.compile(r"^x-custom: one$", re.M))
    headers.fill((headers.input_value()).replace("x-custom: one", "x-custom: edited"))
    dialog.locator("textarea[name=body]").fill('{"amount": 99}')
    dialog.get_by_role("button", name="Replay").click()
    expect(dialog).to_have_count(0)

    expect(delivery_rows(page).locator(".hs-status")).to_have_text("200")
    method, path, _headers, got_body = target.received[0]
    assert (method, path, got_body) == ("POST", "/orders", b'{"amount": 99}')
    assert target.header(0, "x-custom") == ["edited"]
    assert target.header(0, "x-keep") == ["kept"]
    assert target.header(0, "content-length") == ["14"]
    watch.assert_clean()


def test_replay_to_a_private_address_shows_the_ssrf_refusal(ui_server: ServerProcess, page: Page,
                                                            watch: Watch) -> None:
    ep = create_endpoint(ui_server)
    rid = capture(ui_server, ep["id"], b"x", [])
    mount(page, ui_server, ep["id"])
    select(page, rid)
    panel = page.locator("#detail-forwarding [data-panel=replay]")
    panel.get_by_role("button", name="Replay", exact=True).click()
    panel.locator("input.hs-replay-target").fill("http://10.0.0.1/hook")
    panel.get_by_role("button", name="Send").click()
    expect(panel.locator(".hs-msg-error")).to_contain_text("refused")
    expect(panel.locator(".hs-msg-error")).to_contain_text("--forward-allow 10.0.0.1")
    expect(delivery_rows(page).locator(".hs-state")).to_have_text("failed")
    # Not a URL at all: the API's validation message is shown, nothing is recorded.
    panel.locator("button.hs-replay-change").click()
    panel.locator("input.hs-replay-target").fill("ftp://example")
    panel.get_by_role("button", name="Send").click()
    expect(panel.locator(".hs-msg-error")).to_contain_text("Replay refused")
    expect(delivery_rows(page)).to_have_count(1)
    watch.assert_clean()


def test_resign_settings_and_resigned_edit_replay(ui_server: ServerProcess, page: Page, watch: Watch,
                                                  target: Target) -> None:
    ep = create_endpoint(ui_server)
    patch_endpoint(ui_server, ep["id"], verify={"scheme": "stripe", "secrets": [STRIPE_SECRET]},
                   replay_target=target.url)
    rid = send_stripe(ui_server, ep["id"], stripe_event("evt_resign"))
    mount(page, ui_server, ep["id"])

    page.click(".hs-settings-button")
    dialog = page.locator("dialog.hs-settings-dialog")
    dialog.locator("select[name=resign-scheme]").select_option("stripe")
    dialog.locator("input[name=resign-secret]").fill(DEV_SECRET)
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_have_count(0)
    page.click(".hs-settings-button")
    expect(dialog.locator(".hs-resign-note")).to_have_text(
        "Forwards and replays are re-signed with the dev secret whsec_dev_…p_42 (stripe) — not the provider's secret.")
    expect(dialog.locator("input[name=resign-secret]")).to_have_value("whsec_dev_…p_42")
    dialog.get_by_role("button", name="Cancel").click()

    select(page, rid)
    page.get_by_role("button", name="Edit and replay").click()
    edit = page.locator("dialog.hs-edit-dialog")
    box = edit.locator("input[name=resign]")
    expect(box).to_be_checked()
    edited = stripe_event("evt_resign", "invoice.voided")
    edit.locator("textarea[name=body]").fill(edited.decode())
    edit.get_by_role("button", name="Replay").click()
    expect(delivery_rows(page).locator(".hs-status")).to_have_text("200")
    assert target.received[0][3] == edited
    [sig] = target.header(0, "stripe-signature")
    stripe.WebhookSignature.verify_header(edited.decode(), sig, DEV_SECRET, tolerance=300)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(edited.decode(), sig, STRIPE_SECRET, tolerance=300)

    # Unticked: sent with the captured (provider) signature.
    page.get_by_role("button", name="Edit and replay").click()
    edit.locator("input[name=resign]").uncheck()
    edit.get_by_role("button", name="Replay").click()
    expect(delivery_rows(page)).to_have_count(2)
    expect(delivery_rows(page).nth(1).locator(".hs-status")).to_have_text("200")
    [original] = target.header(1, "stripe-signature")
    stripe.WebhookSignature.verify_header(target.received[1][3].decode(), original, STRIPE_SECRET, tolerance=300)
    watch.assert_clean()


def test_forward_target_from_settings_delivers_and_shows_in_panel(ui_server: ServerProcess, page: Page,
                                                                  watch: Watch, target: Target) -> None:
    ep = create_endpoint(ui_server)
    mount(page, ui_server, ep["id"])
    page.click(".hs-settings-button")
    dialog = page.locator("dialog.hs-settings-dialog")
    dialog.locator("input[name=forward-targets-new]").fill(target.url + "/fwd")
    dialog.get_by_role("button", name="Add target").click()
    expect(dialog.locator("[data-list=forward-targets] li")).to_have_count(1)
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_have_count(0)
    assert page.evaluate("window.__ctx.endpoint.forward_targets") == [target.url + "/fwd"]

    rid = capture(ui_server, ep["id"], b"forward me", [("content-type", "text/plain")])
    select(page, rid)
    row = delivery_rows(page).first
    expect(row.locator(".hs-state")).to_have_text("delivered")
    expect(row).to_contain_text("forward")
    expect(row.locator(".hs-target")).to_have_text(target.url + "/fwd")
    assert target.received[0][3] == b"forward me"
    strip = page.locator("#endpoint-panels [data-strip=forwarding]")
    expect(strip).to_contain_text(f"acked #{rid}")
    watch.assert_clean()


def test_dead_delivery_shows_retry_and_retry_delivers(tmp_path: Path, page: Page, watch: Watch) -> None:
    port = free_port()
    with ServerProcess(tmp_path / "dead.db", env={"HOOKSCOPE_FORWARD_RETRY": "50ms,100ms,400ms"}) as srv:
        ep = create_endpoint(srv)
        patch_endpoint(srv, ep["id"], forward_targets=[f"http://127.0.0.1:{port}/down"])
        rid = capture(srv, ep["id"], b"late", [])
        mount(page, srv, ep["id"])
        select(page, rid)
        row = delivery_rows(page).first
        # Pending while retried (delivery frames update the row), then dead once the short schedule gives up.
        expect(row.locator(".hs-state")).to_have_text("dead", timeout=15_000)
        expect(row.locator(".hs-error")).not_to_be_empty()
        retry = row.get_by_role("button", name="Retry")
        expect(retry).to_be_visible()
        up = Target(port)
        try:
            retry.click()
            expect(row.locator(".hs-state")).to_have_text("delivered")
            expect(row.locator(".hs-status")).to_have_text("200")
            expect(row.get_by_role("button", name="Retry")).to_have_count(0)
            assert up.received[0][3] == b"late"
        finally:
            up.close()
    watch.assert_clean()


def test_relays_strip_shows_a_connected_relay_and_its_acked_id(ui_server: ServerProcess, page: Page, watch: Watch,
                                                               target: Target, tmp_path: Path) -> None:
    ep = create_endpoint(ui_server)
    relay = RelayProcess(f"{ui_server.url}/h/{ep['id']}", [target.url], "laptop", tmp_path / "relay.log").start()
    try:
        mount(page, ui_server, ep["id"])
        chip = page.locator('#endpoint-panels [data-relay="laptop"]')
        expect(chip.locator(".hs-relay-state")).to_have_text("connected", timeout=15_000)
        rid = capture(ui_server, ep["id"], b"via relay", [])
        assert target.got.wait(15)
        expect(chip.locator(".hs-relay-acked")).to_have_text(f"acked #{rid}", timeout=15_000)
        expect(chip.locator(".hs-relay-pending")).to_have_text("0 pending")
        select(page, rid)
        expect(delivery_rows(page).first).to_contain_text("relay (laptop)")
        expect(delivery_rows(page).first.get_by_role("button", name="Retry")).to_have_count(0)
    finally:
        relay.stop()
    expect(chip.locator(".hs-relay-state")).to_have_text("disconnected", timeout=15_000)
    watch.assert_clean()


def test_deliveries_follow_live_frames_without_polling(ui_server: ServerProcess, page: Page, watch: Watch) -> None:
    """The open deliveries panel loads once, then changes only through the live socket's delivery frames."""
    gate = threading.Event()
    held = Target(gate=gate)
    try:
        ep = create_endpoint(ui_server)
        patch_endpoint(ui_server, ep["id"], forward_targets=[held.url + "/held"])
        rid = capture(ui_server, ep["id"], b"held at the target", [])
        other = capture(ui_server, ep["id"], b"another request", [])
        assert held.got.wait(15)  # the forward of `rid` is in flight: the target answers once the gate opens
        loads: list[str] = []
        page.on("request", lambda r: loads.append(r.url) if r.url.endswith("/deliveries") else None)
        page.goto(f"{ui_server.url}/e/{ep['id']}")
        expect(page.locator("#conn")).to_have_text("live")
        page.locator(f'#request-list li[data-id="{rid}"]').click()
        panel = page.locator("#detail-forwarding [data-panel=deliveries]")
        expect(panel.locator("tbody tr").first).to_be_visible()  # queued or pending
        expect(panel.locator("tbody")).not_to_contain_text("delivered")
        gate.set()
        row = delivery_rows(page)
        expect(row.locator(".hs-state")).to_have_text("delivered")
        expect(row.locator(".hs-status")).to_have_text("200")
        expect(panel.locator("tr.hs-state-queued")).to_have_count(0)
        # The other request's forward is delivered too; its frames never reach this request's panel.
        assert held.received_count(2, timeout=15)
        page.locator(f'#request-list li[data-id="{other}"]').click()
        expect(page.locator(f'#detail-forwarding [data-request-id="{other}"]')).to_have_count(1)
        expect(delivery_rows(page).locator(".hs-state")).to_have_text("delivered")
        assert loads == [f"{ui_server.url}/api/requests/{rid}/deliveries",
                         f"{ui_server.url}/api/requests/{other}/deliveries"]
    finally:
        gate.set()
        held.close()
    watch.assert_clean()


def test_replay_shown_replays_what_the_filters_show_in_capture_order(ui_server: ServerProcess, page: Page,
                                                                      watch: Watch, target: Target) -> None:
    ep = create_endpoint(ui_server, name="bulk")
    posts = [capture(ui_server, ep["id"], f"post {i}".encode(), [("content-type", "text/plain")], f"/p{i}")
             for i in range(3)]
    httpx.get(f"{ui_server.url}/h/{ep['id']}/skipped", trust_env=False, verify=LOCAL_TLS)
    page.goto(f"{ui_server.url}/e/{ep['id']}")
    expect(page.locator("#request-list li.row")).to_have_count(4)
    page.select_option("#f-method", "POST")
    expect(page.locator("#request-list li.row")).to_have_count(3)

    page.click("#replay-shown")
    dialog = page.locator("dialog.bulk-replay-dialog")
    expect(dialog).to_contain_text("method POST")
    dialog.locator("input[name=bulk-target]").fill("http://10.0.0.1/")
    dialog.get_by_role("button", name="Replay").click()
    expect(page.locator(".toast")).to_contain_text("0 delivered, 3 not")  # refused by the SSRF guard, as data
    page.click("#replay-shown")
    dialog.locator("input[name=bulk-target]").fill(target.url + "/bulk")
    dialog.get_by_role("button", name="Replay").click()
    expect(page.locator(".toast").last).to_contain_text("Replayed 3 request(s): 3 delivered")
    assert [(m, p, body) for m, p, _, body in target.received] == [
        ("POST", f"/bulk/p{i}", f"post {i}".encode()) for i in range(3)
    ]
    # The target is remembered for the next replay.
    saved = httpx.get(f"{ui_server.url}/api/endpoints/{ep['id']}", trust_env=False, verify=LOCAL_TLS).json()
    assert saved["replay_target"] == target.url + "/bulk"
    page.locator(f'#request-list li[data-id="{posts[0]}"]').click()
    expect(delivery_rows(page)).to_have_count(2)
    watch.assert_clean()
