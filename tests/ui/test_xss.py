"""Hostile captures in every view of the detail pane: nothing runs, nothing loads from elsewhere, and the payloads
are shown as text. Payloads (tests/ui/xss_corpus.py) set window.__xss, open dialogs or fetch evil.example; the
`watch` fixture records dialogs, page errors and foreign requests."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, expect

from tests.ui.conftest import Inspector, Watch
from tests.ui.test_curl import send_raw
from tests.ui.xss_corpus import (
    HEADER_NAMES,
    HEADER_PAYLOADS,
    HTML_BODY,
    PAYLOADS,
    SVG_BODY,
    VISIBLE_MARKS,
    XML_BODY,
)

TEXT = "\n".join(PAYLOADS)


def view_everything(page: Page, inspector: Inspector, rid: int) -> None:
    """Open the request and show every view it has, including expanded trees and the curl command."""
    inspector.open(page, rid)
    detail = page.locator("#detail-main")
    tabs = detail.locator(".body-tab")
    for i in range(tabs.count()):
        button = tabs.nth(i)
        view = button.get_attribute("data-view")
        button.click()
        panel = detail.locator(f".body-panel .view-{view}")
        expect(panel).to_be_visible()
        if view == "json" and detail.locator(".j-expand-all").count():
            detail.locator(".j-expand-all").click()
        if view == "multipart":
            expect(panel.locator(".multipart-fields, .empty")).to_be_visible()
    detail.locator(".copy-curl").click()
    expect(detail.locator(".curl-command")).to_be_visible()
    # Any <img> (ours or, if something went wrong, an injected one) has fired load/error by now.
    page.wait_for_function("() => [...document.images].every((i) => i.complete)")


def assert_nothing_ran(page: Page, watch: Watch) -> None:
    assert page.evaluate("window.__xss") is None
    injected = ", ".join(
        f"#detail-main {sel}"
        for sel in ["script", "iframe", "object", "embed", "svg", "img:not(.image-preview)", "[onerror]", "[onload]",
                    "style", "link"]
    )
    assert page.evaluate("(sel) => document.querySelectorAll(sel).length", injected) == 0
    watch.assert_clean()


def assert_visible(page: Page, marks: list[str]) -> None:
    for mark in marks:
        expect(page.locator("#detail-main")).to_contain_text(mark)


def test_headers_path_and_query(page: Page, inspector: Inspector, watch: Watch) -> None:
    headers = [(b"Host", b"h"), (b"Content-Type", b'text/plain; x="<img src=x onerror=alert(20)>"')]
    headers += [(name, b"<script>window.__xss=1</script>") for name in HEADER_NAMES]
    headers += [(f"x-p{i}".encode(), value) for i, value in enumerate(HEADER_PAYLOADS)]
    headers += [(b"x-latin1", b"<svg onload=alert(21)>\xe9\xff")]
    query = "&".join(f"{quote(p)}={quote(p)}" for p in PAYLOADS) + "&raw=<script>window.__xss=1</script>{{7*7}}"
    path = "/%3Cscript%3Ewindow.__xss=1%3C/script%3E/\"><svg%20onload=alert(22)>/{{7*7}}/javascript:alert(23)"
    rid = send_raw(inspector, "POST", f"{path}?{query}", [*headers, (b"Content-Length", b"5")], b"hello")
    view_everything(page, inspector, rid)
    assert_visible(page, VISIBLE_MARKS)
    expect(page.locator("#detail-main .detail-title")).to_contain_text('"><svg%20onload=alert(22)>')
    expect(page.locator("#detail-main .headers-table")).to_contain_text("x-'&`|~^!#$%*+.")
    assert_nothing_ran(page, watch)


BODIES: list[tuple[str, bytes]] = [
    ("application/json", json.dumps({p: [p, {"k": p}] for p in PAYLOADS}).encode()),
    ("application/x-www-form-urlencoded", "&".join(f"{quote(p)}={quote(p)}" for p in PAYLOADS).encode()),
    ("application/xml", XML_BODY.encode()),
    ("text/html", HTML_BODY.encode() + TEXT.encode()),
    ("text/plain", TEXT.encode()),
    ("application/octet-stream", b"\x00\xff" + TEXT.encode() + b"\x80"),
    ("application/javascript", b"window.__xss=1;alert(24)\n" + TEXT.encode()),
    ("<script>alert(25)</script>", TEXT.encode()),
]


@pytest.mark.parametrize("content_type, body", BODIES, ids=[c for c, _ in BODIES])
def test_bodies_in_every_view(page: Page, inspector: Inspector, watch: Watch, content_type: str, body: bytes) -> None:
    rid = inspector.send(headers=[("content-type", content_type)], body=body)
    view_everything(page, inspector, rid)
    if content_type != "application/octet-stream":
        # The text view holds the body verbatim (an XML body has no payload list: its own marks are checked);
        # a form's payloads are percent-encoded, so they show decoded in the form table.
        view = "form" if "urlencoded" in content_type else "text"
        page.locator(f'#detail-main .body-tab[data-view="{view}"]').click()
        marks = ["<h:script>window.__xss=1</h:script>"] if "xml" in content_type else VISIBLE_MARKS
        assert_visible(page, marks)
    assert_nothing_ran(page, watch)


def test_multipart_names_filenames_and_types(page: Page, inspector: Inspector, watch: Watch) -> None:
    boundary = "xss-boundary"
    parts = []
    for i, p in enumerate(PAYLOADS):
        safe = p.replace('"', "%22").replace("\r", "").replace("\n", "")
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{safe}"\r\n\r\n{p}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="f{i}"; filename="{safe}"\r\n'
            f"Content-Type: {safe}\r\n\r\n{p}\r\n"
        )
    body = ("".join(parts) + f"--{boundary}--\r\n").encode()
    rid = inspector.send(headers=[("content-type", f"multipart/form-data; boundary={boundary}")], body=body)
    view_everything(page, inspector, rid)
    page.locator('#detail-main .body-tab[data-view="multipart"]').click()
    table = page.locator("#detail-main .multipart-fields")
    expect(table.locator("tbody tr")).to_have_count(2 * len(PAYLOADS))
    expect(table).to_contain_text("<script>window.__xss=1</script>")
    expect(table.locator(".mp-filename").first).to_have_text("<script>window.__xss=1</script>")
    for href in table.locator(".mp-download").evaluate_all("links => links.map((a) => a.href)"):
        assert href.startswith("blob:")
    assert_nothing_ran(page, watch)


@pytest.mark.parametrize("content_type, body", [("image/svg+xml", SVG_BODY), ("text/html", HTML_BODY)])
def test_active_bodies_as_image_and_opened_raw(
    page: Page, inspector: Inspector, watch: Watch, content_type: str, body: str
) -> None:
    rid = inspector.send(headers=[("content-type", content_type)], body=body.encode())
    view_everything(page, inspector, rid)
    if content_type == "image/svg+xml":
        page.locator('#detail-main .body-tab[data-view="image"]').click()
        page.wait_for_function(
            "() => { const i = document.querySelector('#detail-main img.image-preview'); "
            "return i && i.complete && i.naturalWidth > 0; }"
        )
    assert_nothing_ran(page, watch)
    # Opened directly, the raw body is an attachment (and sandboxed by its CSP): it never renders as a page.
    with page.expect_download() as info:
        try:
            page.goto(f"{inspector.server.url}/api/requests/{rid}/raw")
        except PlaywrightError as exc:
            assert "Download is starting" in str(exc) or "ERR_ABORTED" in str(exc)
    assert info.value.suggested_filename == f"request-{rid}.bin"
    assert page.evaluate("window.__xss") is None
    watch.assert_clean()


def test_text_body_opened_raw_is_inert_text(page: Page, inspector: Inspector, watch: Watch) -> None:
    rid = inspector.send(headers=[("content-type", "text/plain")], body=HTML_BODY.encode())
    page.goto(f"{inspector.server.url}/api/requests/{rid}/raw")
    expect(page.locator("body")).to_contain_text("<script>window.__xss=1;alert('html')</script>")
    assert page.evaluate("window.__xss") is None
    watch.assert_clean()
