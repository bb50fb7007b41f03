"""Live updates in the browser: rows appear without reload, a server restart loses or repeats nothing, and what
changes elsewhere (deletes, retention, endpoint settings, the endpoint's deletion) reaches an open page."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, expect

from app.settings import Settings
from tests.support import LOCAL_TLS, ServerProcess
from tests.ui.conftest import ThreadServer, Watch, thread_server
from tests.ui.test_provider_ui import STRIPE_SECRET, send_stripe, stripe_event


def new_endpoint(srv: ServerProcess | ThreadServer) -> dict[str, Any]:
    resp = httpx.post(srv.url + "/api/endpoints", json={"name": "live"}, trust_env=False, verify=LOCAL_TLS)
    assert resp.status_code == 201
    data: dict[str, Any] = resp.json()
    return data


def send(ep: dict[str, Any], path: str, body: bytes = b"{}") -> int:
    resp = httpx.post(f"{ep['ingest_url']}/{path}", content=body, trust_env=False, verify=LOCAL_TLS,
                      headers={"content-type": "application/json"})
    assert resp.status_code == 200, resp.text
    rid: int = resp.json()["request_id"]
    return rid


def row_ids(page: Page) -> list[int]:
    ids: list[int] = page.eval_on_selector_all("#request-list li.row", "els => els.map(e => Number(e.dataset.id))")
    return ids


def in_front(page: Page) -> Page:
    """Make `page` the active tab, as the user acting in it would. Headless Chromium gives a background tab almost
    no animation frames, and every Playwright action (and a live row's insertion) waits for frames: ~2 s a click."""
    page.bring_to_front()
    return page


def test_request_appears_within_one_second_without_reload(ui_server: ServerProcess, page: Page,
                                                          watch: Watch) -> None:
    ep = new_endpoint(ui_server)
    page.goto(f"{ui_server.url}/e/{ep['id']}")
    expect(page.locator("#conn")).to_have_text("live")
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    rid = send(ep, "first?x=1", b'{"type": "invoice.paid"}')
    row = page.locator(f'#request-list li[data-id="{rid}"]')
    expect(row).to_be_visible(timeout=1000)
    expect(row).to_have_class("row fresh")
    expect(row.locator(".method")).to_have_text("POST")
    expect(row.locator(".path")).to_have_text("/first?x=1")
    rid2 = send(ep, "second")
    expect(page.locator(f'#request-list li[data-id="{rid2}"]')).to_be_visible(timeout=1000)
    assert row_ids(page) == [rid2, rid]
    assert navigations == []
    watch.assert_clean()


@pytest.mark.fresh_server  # stops and restarts the server
def test_server_restart_shows_each_request_exactly_once(ui_server: ServerProcess, page: Page,
                                                        watch: Watch) -> None:
    ep = new_endpoint(ui_server)
    first = [send(ep, f"before{i}") for i in range(2)]
    page.goto(f"{ui_server.url}/e/{ep['id']}")
    expect(page.locator("#request-list li.row")).to_have_count(2)
    expect(page.locator("#conn")).to_have_text("live")
    # Paused: arrivals are counted and held, then the server goes away.
    page.click("#pause")
    expect(page.locator("#conn")).to_have_text("paused")
    held = [send(ep, f"held{i}") for i in range(2)]
    expect(page.locator("#new-count")).to_have_text("2 new")
    ui_server.stop()
    expect(page.locator("#conn")).to_have_text("reconnecting")
    ui_server.start()  # same port and database
    after = [send(ep, f"after{i}") for i in range(3)]
    expect(page.locator("#conn")).to_have_text("paused", timeout=15_000)
    expect(page.locator("#new-count")).to_have_text("5 new")
    page.click("#pause")  # resume
    expect(page.locator("#conn")).to_have_text("live")
    expect(page.locator("#request-list li.row")).to_have_count(7)
    more = send(ep, "live-again")
    expect(page.locator(f'#request-list li[data-id="{more}"]')).to_be_visible(timeout=1000)
    ids = row_ids(page)
    assert sorted(ids, reverse=True) == ids
    assert sorted(ids) == sorted([*first, *held, *after, more])
    watch.assert_clean()


@pytest.mark.fresh_server  # stops and restarts the server
def test_restart_while_live_backfills_what_was_missed(ui_server: ServerProcess, page: Page, watch: Watch) -> None:
    ep = new_endpoint(ui_server)
    page.goto(f"{ui_server.url}/e/{ep['id']}")
    expect(page.locator("#conn")).to_have_text("live")
    ui_server.stop()
    expect(page.locator("#conn")).to_have_text("reconnecting")
    ui_server.start()
    sent = [send(ep, f"r{i}") for i in range(4)]
    expect(page.locator("#request-list li.row")).to_have_count(4, timeout=15_000)
    expect(page.locator("#conn")).to_have_text("live")
    assert row_ids(page) == sorted(sent, reverse=True)
    watch.assert_clean()


def test_deletes_in_one_tab_reach_the_other(ui_server: ServerProcess, context: BrowserContext,
                                             watch: Watch) -> None:
    ep = new_endpoint(ui_server)
    ids = [send(ep, f"r{i}") for i in range(3)]
    here, there = context.new_page(), context.new_page()
    for p in (here, there):
        p.goto(f"{ui_server.url}/e/{ep['id']}")
        expect(p.locator("#request-list li.row")).to_have_count(3)
        expect(p.locator("#conn")).to_have_text("live")
    in_front(there).locator(f'#request-list li[data-id="{ids[1]}"]').click()
    expect(there.locator("#detail-main")).to_have_attribute("data-request-id", str(ids[1]))

    in_front(here).locator(f'#request-list li[data-id="{ids[1]}"]').click()
    here.locator("#detail-main .delete-request").click()
    here.locator("#detail-main .confirm-delete").click()
    expect(in_front(there).locator("#request-list li.row")).to_have_count(2)
    assert row_ids(there) == [ids[2], ids[0]]
    expect(there.locator("#detail-main")).to_contain_text("This request was deleted.")

    in_front(here).click("#clear-all")
    here.click("#confirm-ok")
    expect(in_front(there).locator("#request-list li.row")).to_have_count(0)
    later = send(ep, "later")
    expect(there.locator(f'#request-list li[data-id="{later}"]')).to_be_visible()
    watch.assert_clean()


def test_pruned_rows_leave_an_open_page(tmp_path: Path, page: Page, watch: Watch) -> None:
    # Retention keeps 3 requests per endpoint and runs every 0.1 s instead of every 30 s.
    with thread_server(Settings(db=tmp_path / "prune.db", retention_count=3, janitor_interval=0.1)) as srv:
        ep = new_endpoint(srv)
        first = [send(ep, f"r{i}") for i in range(3)]
        page.goto(f"{srv.url}/e/{ep['id']}")
        expect(page.locator("#request-list li.row")).to_have_count(3)
        expect(page.locator("#conn")).to_have_text("live")
        page.locator(f'#request-list li[data-id="{first[0]}"]').click()
        expect(page.locator("#detail-main")).to_have_attribute("data-request-id", str(first[0]))
        later = [send(ep, f"later{i}") for i in range(2)]
        expect(page.locator(f'#request-list li[data-id="{later[1]}"]')).to_be_visible()
        # The two oldest are pruned: their rows go, the open one says why.
        expect(page.locator("#request-list li.row")).to_have_count(3)
        assert row_ids(page) == [later[1], later[0], first[2]]
        expect(page.locator("#detail-main")).to_contain_text("removed by retention")
        expect(page.locator("#detail-main")).not_to_have_attribute("data-request-id", str(first[0]))
    watch.assert_clean()


def test_endpoint_settings_changed_elsewhere_reach_an_open_page(ui_server: ServerProcess, page: Page,
                                                                watch: Watch) -> None:
    ep = new_endpoint(ui_server)
    rid = send_stripe(ui_server, ep["id"], stripe_event("evt_elsewhere"))
    page.goto(f"{ui_server.url}/e/{ep['id']}")
    expect(page.locator("#conn")).to_have_text("live")
    row = page.locator(f'#request-list li[data-id="{rid}"]')
    row.click()
    expect(page.locator("#detail-main")).to_have_attribute("data-request-id", str(rid))
    expect(row.locator("[data-badge=provider]")).to_have_text("stripe")
    expect(row.locator("[data-badge=valid]")).to_have_count(0)
    expect(page.locator("#detail-forwarding [data-panel=signature]")).to_have_count(0)

    # Another tab, or a script, changes the settings through the API.
    resp = httpx.patch(f"{ui_server.url}/api/endpoints/{ep['id']}", trust_env=False, verify=LOCAL_TLS,
                       json={"name": "renamed elsewhere", "verify": {"scheme": "stripe", "secrets": [STRIPE_SECRET]}})
    assert resp.status_code == 200, resp.text
    expect(page.locator("#ep-name")).to_have_text("renamed elsewhere")
    expect(page).to_have_title(re.compile(r"· renamed elsewhere$"))
    # The re-checked verdict reaches the row, the open detail and its signature helper.
    expect(row.locator("[data-badge=valid]")).to_have_text("✓ valid")
    expect(page.locator("#detail-main .detail-overview [data-badge=valid]")).to_have_text("✓ valid")
    expect(page.locator("#detail-forwarding [data-panel=signature] summary")).to_have_text("Signature: why valid?")
    page.locator("#endpoint-panels .hs-settings-button").click()
    dialog = page.locator("dialog.hs-settings-dialog")
    expect(dialog.locator("input[name=name]")).to_have_value("renamed elsewhere")
    expect(dialog.locator("select[name=verify-scheme]")).to_have_value("stripe")
    watch.assert_clean()


def test_deleting_the_endpoint_is_shown_in_an_open_page(ui_server: ServerProcess, page: Page, watch: Watch) -> None:
    ep = new_endpoint(ui_server)
    send(ep, "before")
    page.goto(f"{ui_server.url}/e/{ep['id']}")
    expect(page.locator("#conn")).to_have_text("live")
    resp = httpx.delete(f"{ui_server.url}/api/endpoints/{ep['id']}", trust_env=False, verify=LOCAL_TLS)
    assert resp.status_code in (200, 204), resp.text
    expect(page.locator("#endpoint-gone")).to_contain_text("This endpoint was deleted")
    expect(page.locator("#conn")).to_have_text("endpoint deleted")
    watch.assert_clean()
