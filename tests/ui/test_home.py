"""Home page: one-click endpoint creation and the endpoint list."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.support import LOCAL_TLS, ServerProcess
from tests.ui.conftest import Watch


@pytest.mark.fresh_server  # asserts the endpoint list holds only the endpoint it created
def test_create_endpoint_in_one_click(ui_server: ServerProcess, page: Page, watch: Watch) -> None:
    page.goto(ui_server.url + "/")
    expect(page.locator("#endpoints-empty")).to_be_visible()
    page.click("#create-endpoint")
    expect(page).to_have_url(re.compile(re.escape(ui_server.url) + r"/e/[A-Za-z0-9_-]+$"))
    endpoint_id = page.url.rsplit("/", 1)[1]
    expect(page.locator("#ingest-url")).to_have_text(f"{ui_server.url}/h/{endpoint_id}")
    expect(page.locator("#conn")).to_have_text("live")
    listed = httpx.get(ui_server.url + "/api/endpoints", trust_env=False, verify=LOCAL_TLS).json()["endpoints"]
    assert [e["id"] for e in listed] == [endpoint_id]
    watch.assert_clean()


@pytest.mark.fresh_server  # asserts the home page lists exactly its two endpoints
def test_lists_endpoints_with_counts_and_activity(ui_server: ServerProcess, page: Page, watch: Watch) -> None:
    hostile = httpx.post(ui_server.url + "/api/endpoints", json={"name": "<img src=x onerror=alert(1)>"},
                         trust_env=False, verify=LOCAL_TLS).json()
    quiet = httpx.post(ui_server.url + "/api/endpoints", json={"name": "quiet"},
        trust_env=False, verify=LOCAL_TLS).json()
    for _ in range(2):
        httpx.post(hostile["ingest_url"], content=b"x", trust_env=False, verify=LOCAL_TLS)
    page.goto(ui_server.url + "/")
    items = page.locator("#endpoint-list li")
    expect(items).to_have_count(2)
    busy = page.locator(f'#endpoint-list li[data-id="{hostile["id"]}"]')
    expect(busy.locator(".endpoint-link")).to_have_text("<img src=x onerror=alert(1)>")
    expect(busy.locator(".endpoint-count")).to_have_text("2 requests")
    expect(busy.locator(".endpoint-last")).to_contain_text("last ")
    idle = page.locator(f'#endpoint-list li[data-id="{quiet["id"]}"]')
    expect(idle.locator(".endpoint-count")).to_have_text("0 requests")
    expect(idle.locator(".endpoint-last")).to_have_text("no requests yet")
    assert page.locator("#endpoint-list img").count() == 0
    idle.locator(".endpoint-link").click()
    expect(page).to_have_url(f"{ui_server.url}/e/{quiet['id']}")
    watch.assert_clean()


def test_unknown_inspector_is_a_404_page(ui_server: ServerProcess, page: Page, watch: Watch) -> None:
    response = page.goto(ui_server.url + "/e/missing")
    assert response is not None and response.status == 404
    expect(page.locator("h1")).to_have_text("Not found")
    page.click("text=Back to your endpoints")
    expect(page).to_have_url(ui_server.url + "/")
    watch.assert_clean()
