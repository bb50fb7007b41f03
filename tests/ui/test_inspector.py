"""The inspector page: filters, pause, delete, clear, keyboard, unread title, theme, phone layout, load more."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support import LOCAL_TLS, ServerProcess
from tests.ui.conftest import Watch, watch_context


@pytest.fixture
def http(ui_server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=ui_server.url, trust_env=False, verify=LOCAL_TLS) as c:
        yield c


@pytest.fixture
def ep(http: httpx.Client) -> dict[str, Any]:
    resp = http.post("/api/endpoints", json={"name": "inspector test"})
    assert resp.status_code == 201
    data: dict[str, Any] = resp.json()
    return data


def send(http: httpx.Client, ep: dict[str, Any], path: str, body: bytes = b"", method: str = "POST",
         headers: dict[str, str] | None = None) -> int:
    resp = http.request(method, f"/h/{ep['id']}/{path}", content=body, headers=headers)
    assert resp.status_code == 200, resp.text
    rid: int = resp.json()["request_id"]
    return rid


def open_inspector(page: Page, srv: ServerProcess, ep: dict[str, Any]) -> None:
    page.goto(f"{srv.url}/e/{ep['id']}")
    expect(page.locator("#conn")).to_have_text("live")


def rows(page: Page) -> Any:
    return page.locator("#request-list li.row")


def row(page: Page, rid: int) -> Any:
    return page.locator(f'#request-list li[data-id="{rid}"]')


def test_ingest_url_and_curl_example_shown(ui_server: ServerProcess, page: Page, ep: dict[str, Any],
                                           watch: Watch) -> None:
    open_inspector(page, ui_server, ep)
    expect(page.locator("#ingest-url")).to_have_text(ep["ingest_url"])
    page.click(".curl-example summary")
    expect(page.locator("#curl-example")).to_contain_text(f"curl -X POST '{ep['ingest_url']}/test'")
    expect(page.locator("#list-empty")).to_be_visible()
    watch.assert_clean()


def test_method_filter_applies_to_list_and_live_rows(ui_server: ServerProcess, page: Page, http: httpx.Client,
                                                     ep: dict[str, Any], watch: Watch) -> None:
    get_id = send(http, ep, "a", method="GET")
    post_id = send(http, ep, "b")
    open_inspector(page, ui_server, ep)
    expect(rows(page)).to_have_count(2)
    page.select_option("#f-method", "POST")
    expect(rows(page)).to_have_count(1)
    expect(row(page, post_id)).to_be_visible()
    expect(row(page, get_id)).to_have_count(0)
    live_get = send(http, ep, "c", method="GET")
    live_post = send(http, ep, "d")
    # Frames are handled in order and the method check is synchronous: once /d is shown, /c was judged.
    expect(row(page, live_post)).to_be_visible(timeout=1000)
    expect(row(page, live_get)).to_have_count(0)
    page.select_option("#f-method", "")
    expect(rows(page)).to_have_count(4)
    watch.assert_clean()


def test_text_filter_queries_the_api_and_rechecks_live_rows(ui_server: ServerProcess, page: Page,
                                                            http: httpx.Client, ep: dict[str, Any],
                                                            watch: Watch) -> None:
    send(http, ep, "fruit", b'{"fruit": "apple"}')
    banana = send(http, ep, "fruit", b'{"fruit": "banana"}')
    open_inspector(page, ui_server, ep)
    expect(rows(page)).to_have_count(2)
    page.fill("#f-q", "banana")
    expect(rows(page)).to_have_count(1)
    expect(row(page, banana)).to_be_visible()
    with page.expect_response(lambda r: "/requests?" in r.url and "after=" in r.url):
        cherry = send(http, ep, "fruit", b'{"fruit": "cherry"}')
    split = send(http, ep, "fruit", b'{"fruit": "banana split"}')
    expect(row(page, split)).to_be_visible(timeout=2000)
    expect(row(page, cherry)).to_have_count(0)
    expect(rows(page)).to_have_count(2)
    page.fill("#f-q", "")
    expect(rows(page)).to_have_count(4)
    watch.assert_clean()


def test_verification_and_duplicate_filters_reach_the_api(ui_server: ServerProcess, page: Page,
                                                           http: httpx.Client, ep: dict[str, Any],
                                                           watch: Watch) -> None:
    send(http, ep, "x")
    open_inspector(page, ui_server, ep)
    expect(rows(page)).to_have_count(1)
    with page.expect_request(lambda r: "verification=invalid" in r.url):
        page.select_option("#f-verification", "invalid")
    expect(rows(page)).to_have_count(0)
    expect(page.locator("#list-empty")).to_have_text("No requests match the filters.")
    page.select_option("#f-verification", "unconfigured")
    expect(rows(page)).to_have_count(1)
    with page.expect_request(lambda r: "duplicate=true" in r.url):
        page.check("#f-duplicate")
    expect(rows(page)).to_have_count(0)
    send(http, ep, "y")  # not a duplicate: stays hidden
    page.uncheck("#f-duplicate")
    expect(rows(page)).to_have_count(2)
    watch.assert_clean()


def test_pause_counts_arrivals_and_resume_inserts_them(ui_server: ServerProcess, page: Page, http: httpx.Client,
                                                        ep: dict[str, Any], watch: Watch) -> None:
    open_inspector(page, ui_server, ep)
    page.click("#pause")
    expect(page.locator("#pause")).to_have_text("Resume")
    expect(page.locator("#conn")).to_have_text("paused")
    ids = [send(http, ep, f"p{i}") for i in range(3)]
    expect(page.locator("#new-count")).to_have_text("3 new")
    expect(rows(page)).to_have_count(0)
    page.click("#new-count")
    expect(rows(page)).to_have_count(3)
    expect(page.locator("#new-count")).to_be_hidden()
    expect(page.locator("#conn")).to_have_text("live")
    for rid in ids:
        expect(row(page, rid)).to_be_visible()
    watch.assert_clean()


def test_select_then_delete_one(ui_server: ServerProcess, page: Page, http: httpx.Client, ep: dict[str, Any],
                                watch: Watch) -> None:
    keep = send(http, ep, "keep")
    doomed = send(http, ep, "doomed")
    open_inspector(page, ui_server, ep)
    row(page, doomed).click()
    expect(row(page, doomed)).to_have_class("row selected")
    expect(page.locator("#detail-main")).to_have_attribute("data-request-id", str(doomed))
    page.locator("#detail-main .delete-request").click()
    page.locator("#detail-main .confirm-delete").click()
    expect(row(page, doomed)).to_have_count(0)
    expect(row(page, keep)).to_be_visible()
    assert http.get(f"/api/requests/{doomed}").status_code == 404
    assert http.get(f"/api/requests/{keep}").status_code == 200
    watch.assert_clean()


def test_clear_all_uses_an_in_page_confirm(ui_server: ServerProcess, page: Page, http: httpx.Client,
                                           ep: dict[str, Any], watch: Watch) -> None:
    for i in range(3):
        send(http, ep, f"c{i}")
    open_inspector(page, ui_server, ep)
    expect(rows(page)).to_have_count(3)
    page.click("#clear-all")
    expect(page.locator("#confirm-dialog")).to_be_visible()
    page.click("#confirm-cancel")
    expect(page.locator("#confirm-dialog")).to_be_hidden()
    expect(rows(page)).to_have_count(3)
    page.click("#clear-all")
    page.click("#confirm-ok")
    expect(rows(page)).to_have_count(0)
    assert http.get(f"/api/endpoints/{ep['id']}").json()["request_count"] == 0
    after = send(http, ep, "after-clear")
    expect(row(page, after)).to_be_visible()
    watch.assert_clean()  # includes: no native confirm() dialog


def test_keyboard_j_k_slash_escape(ui_server: ServerProcess, page: Page, http: httpx.Client, ep: dict[str, Any],
                                   watch: Watch) -> None:
    oldest, middle, newest = (send(http, ep, f"k{i}") for i in range(3))
    open_inspector(page, ui_server, ep)
    expect(rows(page)).to_have_count(3)
    detail = page.locator("#detail-main")
    page.keyboard.press("j")
    expect(detail).to_have_attribute("data-request-id", str(newest))
    page.keyboard.press("j")
    expect(detail).to_have_attribute("data-request-id", str(middle))
    page.keyboard.press("j")
    expect(detail).to_have_attribute("data-request-id", str(oldest))
    page.keyboard.press("j")  # stays at the end
    expect(row(page, oldest)).to_have_class("row selected")
    page.keyboard.press("k")
    expect(detail).to_have_attribute("data-request-id", str(middle))
    page.keyboard.press("/")
    expect(page.locator("#f-q")).to_be_focused()
    page.keyboard.type("jk")  # typing in the search box does not move the selection
    expect(page.locator("#f-q")).to_have_value("jk")
    page.keyboard.press("Escape")
    expect(page.locator("#f-q")).not_to_be_focused()
    expect(row(page, middle)).to_have_class("row selected")
    watch.assert_clean()


HIDE = """() => {
  Object.defineProperty(document, "visibilityState", {configurable: true, get: () => "hidden"});
  document.hasFocus = () => false;
  document.dispatchEvent(new Event("visibilitychange"));
}"""
SHOW = """() => {
  delete document.visibilityState;
  delete document.hasFocus;
  document.dispatchEvent(new Event("visibilitychange"));
}"""


def test_unread_count_in_title_while_hidden(ui_server: ServerProcess, page: Page, http: httpx.Client,
                                            ep: dict[str, Any], watch: Watch) -> None:
    open_inspector(page, ui_server, ep)
    expect(page).to_have_title("hookscope · inspector test")
    first = send(http, ep, "seen")
    expect(row(page, first)).to_be_visible()
    expect(page).to_have_title("hookscope · inspector test")  # visible and focused: nothing unread
    page.evaluate(HIDE)
    for i in range(3):
        send(http, ep, f"unseen{i}")
    expect(page).to_have_title("(3) hookscope · inspector test")
    expect(rows(page)).to_have_count(4)
    page.evaluate(SHOW)
    expect(page).to_have_title("hookscope · inspector test")
    watch.assert_clean()


def test_theme_toggle_persists(ui_server: ServerProcess, page: Page, ep: dict[str, Any], watch: Watch) -> None:
    page.emulate_media(color_scheme="light")
    open_inspector(page, ui_server, ep)
    light_bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
    page.click("#theme-toggle")
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    dark_bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert dark_bg != light_bg
    page.reload()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == dark_bg
    page.goto(ui_server.url + "/")
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    page.click("#theme-toggle")
    expect(page.locator("html")).to_have_attribute("data-theme", "light")
    page.goto(f"{ui_server.url}/e/{ep['id']}")
    expect(page.locator("html")).to_have_attribute("data-theme", "light")
    watch.assert_clean()


def test_dark_by_default_when_the_system_prefers_it(ui_server: ServerProcess, page: Page,
                                                    ep: dict[str, Any]) -> None:
    page.emulate_media(color_scheme="dark")
    open_inspector(page, ui_server, ep)
    expect(page.locator("#theme-toggle")).to_have_text("Light")
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(18, 19, 23)"


def test_phone_layout_list_then_detail_with_back(ui_server: ServerProcess, browser: Browser, http: httpx.Client,
                                                 ep: dict[str, Any]) -> None:
    watch = Watch()
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    watch_context(context, watch)
    try:
        page = context.new_page()
        rid = send(http, ep, "phone", b'{"a": 1}', headers={"content-type": "application/json"})
        open_inspector(page, ui_server, ep)
        expect(row(page, rid)).to_be_visible()
        expect(page.locator("#detail")).to_be_hidden()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        row(page, rid).tap()
        expect(page.locator("#detail")).to_be_visible()
        expect(page.locator("#back")).to_be_visible()
        expect(page.locator("#request-list")).to_be_hidden()
        expect(page.locator("#detail-main")).to_have_attribute("data-request-id", str(rid))
        page.locator("#back").tap()
        expect(page.locator("#request-list")).to_be_visible()
        expect(page.locator("#detail")).to_be_hidden()
        watch.assert_clean()
    finally:
        context.close()


def test_load_more_pages_with_keyset(ui_server: ServerProcess, page: Page, http: httpx.Client,
                                     ep: dict[str, Any], watch: Watch) -> None:
    ids = [send(http, ep, f"n{i}") for i in range(230)]
    listed: list[str] = []
    page.on("request", lambda r: listed.append(r.url) if "/requests?" in r.url else None)
    open_inspector(page, ui_server, ep)
    expect(rows(page)).to_have_count(100)
    more = page.locator("#load-more")
    expect(more).to_be_visible()
    more.click()
    expect(rows(page)).to_have_count(200)
    more.click()
    expect(rows(page)).to_have_count(230)
    expect(more).to_be_hidden()
    shown = page.eval_on_selector_all("#request-list li.row", "els => els.map(e => Number(e.dataset.id))")
    assert shown == sorted(ids, reverse=True)
    assert any(f"before={ids[-100]}" in url for url in listed)
    assert any(f"before={ids[-200]}" in url for url in listed)
    assert all("limit=100" in url for url in listed)
    watch.assert_clean()


def test_hostile_captured_data_is_text(ui_server: ServerProcess, page: Page, http: httpx.Client,
                                       ep: dict[str, Any], watch: Watch) -> None:
    rid = send(http, ep, "%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E?q=<script>alert(2)</script>",
               b"<script>alert(3)</script>",
               headers={"content-type": "text/html<img src=x onerror=alert(4)>"})
    open_inspector(page, ui_server, ep)
    expect(row(page, rid)).to_be_visible()
    expect(row(page, rid).locator(".ctype")).to_have_text("text/html<img src=x onerror=alert(4)>")
    assert page.locator("#request-list img, #request-list script").count() == 0
    row(page, rid).click()
    expect(page.locator("#detail-main")).to_have_attribute("data-request-id", str(rid))
    live = send(http, ep, "<svg onload=alert(5)>")
    expect(row(page, live)).to_be_visible()
    assert page.locator("#request-list svg").count() == 0
    watch.assert_clean()


def test_row_cap_drops_oldest_rows_but_keeps_the_selected_one(ui_server: ServerProcess, page: Page,
                                                               watch: Watch) -> None:
    # The cap is a property of the list module; filling a real endpoint with 1,000+ captures would only slow this.
    page.goto(ui_server.url + "/login")
    result = page.evaluate("""async () => {
      const { RequestList, ROW_CAP } = await import("/static/js/list.js");
      const ol = document.createElement("ol");
      document.body.appendChild(ol);
      const list = new RequestList(ol, { onSelect: () => {}, onChange: () => {} });
      const summary = (id) => ({ id, seq: id, method: "POST", path: "/p" + id, query: "",
        received_at: new Date().toISOString(),
        body_size: 1, content_type: "text/plain", client: "127.0.0.1", rejected: null, provider: null,
        event_type: null, event_id: null, verification: { status: "unconfigured", reason: "" }, duplicate_of: null });
      const older = [];
      for (let id = 600; id >= 1; id--) older.push(summary(id));
      list.addPage(older);
      list.markSelected(1);
      const live = [];
      for (let id = 601; id <= 1100; id++) live.push(summary(id));
      list.addLive(live);
      list.flush();
      const ids = [...ol.children].map((li) => Number(li.dataset.id));
      return { cap: ROW_CAP, size: list.size, dom: ids.length, first: ids[0], last: ids[ids.length - 1],
               hasSelected: ids.includes(1), has101: ids.includes(101), has102: ids.includes(102),
               trimmed: list.trimmed };
    }""")
    assert result["cap"] == 1000
    assert result["size"] == result["dom"] == 1000
    assert result["first"] == 1100 and result["last"] == 1  # newest on top; the selected oldest row survives
    # 1,100 rows, cap 1,000: rows 2..101 dropped (the selected row 1 is kept), 102 is the oldest unselected left.
    assert result["hasSelected"] and not result["has101"] and result["has102"]
    assert result["trimmed"] is True
    watch.assert_clean()
