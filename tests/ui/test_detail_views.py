"""The detail pane in a real browser: every body view, bounded rendering of big bodies, headers and actions."""

from __future__ import annotations

import json
import struct
import zlib

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.support import LOCAL_TLS
from tests.ui.conftest import Inspector, Watch

pytestmark = pytest.mark.usefixtures("ui_server")


def tiny_png() -> bytes:
    """A real 2x1 RGB PNG, built here so the test needs no fixture file."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", 2, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00\x00\x00\xff")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def tab(page: Page, view: str) -> None:
    page.locator(f'#detail-main .body-tab[data-view="{view}"]').click()
    expect(page.locator(f"#detail-main .body-panel .view-{view}")).to_be_visible()


def test_json_tree_collapses_and_expands(page: Page, inspector: Inspector, watch: Watch) -> None:
    body = {"order": {"id": 12345678901234567890, "items": [{"sku": "A-1", "qty": 2}], "paid": True, "note": None}}
    rid = inspector.send(headers=[("content-type", "application/json")], body=json.dumps(body).encode())
    inspector.open(page, rid)
    tree = page.locator("#detail-main .json-tree")
    expect(tree).to_be_visible()
    # Numbers keep their exact text (JSON.parse would round this one) and each type has its class.
    expect(tree.locator(".j-num").first).to_have_text("12345678901234567890")
    expect(tree.locator(".j-bool")).to_have_text("true")
    expect(tree.locator(".j-null")).to_have_text("null")
    order = tree.locator(".j-collapsible").nth(1)  # root, then "order"
    sku = tree.locator(".j-key", has_text='"id"')
    expect(sku).to_be_visible()
    order.locator(":scope > .j-line > .j-toggle").click()
    expect(sku).to_be_hidden()
    expect(order.locator(":scope > .j-line > .j-summary")).to_have_text(" 4 keys ")
    order.locator(":scope > .j-line > .j-toggle").click()
    expect(sku).to_be_visible()
    page.locator("#detail-main .j-collapse-all").click()
    expect(tree.locator(".j-key").first).to_be_hidden()
    page.locator("#detail-main .j-expand-all").click()
    expect(tree.locator(".j-key", has_text='"qty"')).to_be_visible()
    expect(tree.locator(".j-str", has_text='"A-1"')).to_be_visible()
    watch.assert_clean()


def test_huge_json_array_renders_in_pages(page: Page, inspector: Inspector, watch: Watch) -> None:
    body = json.dumps(list(range(5000))).encode()
    rid = inspector.send(headers=[("content-type", "application/json")], body=body)
    inspector.open(page, rid)
    tree = page.locator("#detail-main .json-tree")
    expect(tree.locator(".j-more")).to_have_text("show 200 more of 4800 remaining")
    assert tree.locator(".j-num").count() == 200
    tree.locator(".j-more").click()
    expect(tree.locator(".j-num")).to_have_count(400)
    watch.assert_clean()


def test_form_urlencoded_fields_table(page: Page, inspector: Inspector, watch: Watch) -> None:
    rid = inspector.send(
        headers=[("content-type", "application/x-www-form-urlencoded")],
        body=b"name=Ada+Lovelace&tag=a&tag=b%26c&empty=",
    )
    inspector.open(page, rid)
    rows = page.locator("#detail-main .form-fields tbody tr")
    expect(rows).to_have_count(4)
    expect(rows.nth(0)).to_have_text("nameAda Lovelace")
    expect(rows.nth(2)).to_have_text("tagb&c")
    expect(rows.nth(3)).to_have_text("empty")
    watch.assert_clean()


def multipart_body(boundary: str, file_bytes: bytes) -> bytes:
    return (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nhello wörld\r\n"
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"upload\"; filename=\"data.bin\"\r\n"
        f"Content-Type: application/x-thing\r\n\r\n"
    ).encode() + file_bytes + f"\r\n--{boundary}--\r\n".encode()


def test_multipart_fields_and_exact_file_download(page: Page, inspector: Inspector, watch: Watch) -> None:
    file_bytes = bytes(range(256)) * 3 + b"\r\n--not-the-boundary\r\n"
    boundary = "----hookscopeBoundary7MA4YWxk"
    rid = inspector.send(
        headers=[("content-type", f"multipart/form-data; boundary={boundary}")],
        body=multipart_body(boundary, file_bytes),
    )
    inspector.open(page, rid)
    rows = page.locator("#detail-main .multipart-fields tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("title")
    expect(rows.nth(0)).to_contain_text("hello wörld")
    expect(rows.nth(1)).to_contain_text("data.bin")
    expect(rows.nth(1)).to_contain_text("application/x-thing")
    expect(rows.nth(1)).to_contain_text(f"{len(file_bytes)} B")
    with page.expect_download() as info:
        rows.nth(1).locator(".mp-download").click()
    download = info.value
    assert download.suggested_filename == "data.bin"
    with open(download.path(), "rb") as fh:
        assert fh.read() == file_bytes
    watch.assert_clean()


def test_xml_is_pretty_printed(page: Page, inspector: Inspector, watch: Watch) -> None:
    xml = b'<?xml version="1.0"?><feed><entry id="1"><title>Hi &amp; bye</title></entry><empty/></feed>'
    rid = inspector.send(headers=[("content-type", "application/xml")], body=xml)
    inspector.open(page, rid)
    view = page.locator("#detail-main .xml-view")
    expect(view).to_have_text(
        '<?xml version="1.0"?>\n<feed>\n  <entry id="1">\n    <title>Hi &amp; bye</title>\n  </entry>\n'
        "  <empty/>\n</feed>\n"
    )
    watch.assert_clean()


def test_broken_xml_falls_back_to_text(page: Page, inspector: Inspector, watch: Watch) -> None:
    rid = inspector.send(headers=[("content-type", "text/xml")], body=b"<a><b></a>")
    inspector.open(page, rid)
    expect(page.locator("#detail-main .view-xml .view-note")).to_contain_text("Not well-formed XML")
    expect(page.locator("#detail-main .view-xml .text-view")).to_have_text("<a><b></a>")
    watch.assert_clean()


def test_binary_hex_dump(page: Page, inspector: Inspector, watch: Watch) -> None:
    rid = inspector.send(headers=[("content-type", "application/octet-stream")], body=bytes(range(256)))
    inspector.open(page, rid)
    hexdump = page.locator("#detail-main .hex-view")
    expect(hexdump).to_be_visible()
    lines = hexdump.inner_text().split("\n")
    assert len(lines) == 16
    assert lines[0] == "00000000  00 01 02 03 04 05 06 07  08 09 0a 0b 0c 0d 0e 0f  |................|"
    assert lines[4] == "00000040  40 41 42 43 44 45 46 47  48 49 4a 4b 4c 4d 4e 4f  |@ABCDEFGHIJKLMNO|"
    assert lines[15] == "000000f0  f0 f1 f2 f3 f4 f5 f6 f7  f8 f9 fa fb fc fd fe ff  |................|"
    watch.assert_clean()


def test_image_preview_loads(page: Page, inspector: Inspector, watch: Watch) -> None:
    rid = inspector.send(headers=[("content-type", "image/png")], body=tiny_png())
    inspector.open(page, rid)
    img = page.locator("#detail-main img.image-preview")
    expect(img).to_be_visible()
    page.wait_for_function(
        "() => { const i = document.querySelector('#detail-main img.image-preview'); return i && i.complete "
        "&& i.naturalWidth > 0; }",
        timeout=5000,
    )
    assert img.evaluate("i => [i.naturalWidth, i.naturalHeight]") == [2, 1]
    expect(page.locator("#detail-main .image-info")).to_have_text("2 \u00d7 1 px")
    watch.assert_clean()


def test_big_body_bounded_preview_stays_responsive_and_loads_fully(
    page: Page, inspector: Inspector, watch: Watch
) -> None:
    line = b"0123456789abcdef" * 4 + b"\n"
    big = line * (5 * 1024 * 1024 // len(line)) + b"THE END\n"
    big_rid = inspector.send(headers=[("content-type", "text/plain")], body=big)
    small_rid = inspector.send(headers=[("content-type", "text/plain")], body=b"small one")
    inspector.open(page, big_rid)
    expect(page.locator("#detail-main .preview-note")).to_have_text("showing first 256 KiB of 5.0 MiB")
    text = page.locator("#detail-main .text-view")
    assert len(text.text_content() or "") <= 256 * 1024
    # Responsive: another row renders promptly.
    page.locator(f'#request-list [data-id="{small_rid}"]').click()
    expect(page.locator("#detail-main .text-view")).to_have_text("small one", timeout=3000)
    inspector.open(page, big_rid)
    page.locator("#detail-main .load-full").click()
    expect(page.locator("#detail-main .preview-note")).to_have_count(0)
    # Full body: the text view is still bounded and grows only on demand.
    assert len(text.text_content() or "") == 256 * 1024
    expect(page.locator("#detail-main .text-more")).to_be_visible()
    tab(page, "hex")
    expect(page.locator("#detail-main .hex-range")).to_contain_text(f"of {len(big)}")
    assert len((page.locator("#detail-main .hex-view").text_content() or "").split("\n")) == 4096
    page.locator("#detail-main .hex-next").click()
    expect(page.locator("#detail-main .hex-range")).to_contain_text("bytes 65536\u2013131071")
    tab(page, "text")
    page.locator("#detail-main .text-more").click()
    assert len(text.text_content() or "") == 512 * 1024
    page.locator(f'#request-list [data-id="{small_rid}"]').click()
    expect(page.locator("#detail-main .text-view")).to_have_text("small one", timeout=3000)
    watch.assert_clean()


def test_headers_in_order_with_duplicates_and_latin1_mark(page: Page, inspector: Inspector, watch: Watch) -> None:
    rid = inspector.send(
        headers=[(b"x-dup", b"first"), (b"x-other", b"mid"), (b"x-dup", b"second"), (b"x-bytes", b"caf\xe9")],
        body=b"",
    )
    inspector.open(page, rid)
    rows = page.locator("#detail-main .headers-table tbody tr")
    texts = [t for t in rows.all_inner_texts() if "x-" in t]
    assert [t.split("\t")[1:] for t in texts] == [
        ["x-dup", "first"],
        ["x-other", "mid"],
        ["x-dup", "second"],
        ["x-bytes", "café latin-1"],
    ]
    expect(page.locator("#detail-main .headers-table .mark.latin1")).to_have_count(1)
    watch.assert_clean()


def test_overview_query_duplicate_link_and_delete(page: Page, inspector: Inspector, watch: Watch) -> None:
    first = inspector.send(sub="/hooks/a%2Fb", query="a=1&b=x%20y&a=2&list[]=z", body=b"x")
    second = inspector.send(body=b"y")
    inspector.open(page, first)
    overview = page.locator("#detail-main .detail-overview")
    expect(overview).to_contain_text("/hooks/a%2Fb?a=1&b=x%20y&a=2&list[]=z")
    expect(overview).to_contain_text(f"Request id{first}")
    expect(overview).to_contain_text("HTTP version1.1")
    qrows = page.locator("#detail-main .query-table tbody tr")
    expect(qrows).to_have_count(4)
    expect(qrows.nth(1)).to_have_text("bx y")
    expect(page.locator("#detail-main .raw-query code")).to_have_text("a=1&b=x%20y&a=2&list[]=z")
    # Delete asks in the page, not with a native dialog.
    inspector.open(page, second)
    page.locator("#detail-main .delete-request").click()
    page.locator("#detail-main .cancel-delete").click()
    page.locator("#detail-main .delete-request").click()
    page.locator("#detail-main .confirm-delete").click()
    expect(page.locator(f'#request-list [data-id="{second}"]')).to_have_count(0)
    assert inspector.get(first)["id"] == first
    assert httpx.get(f"{inspector.server.url}/api/requests/{second}",
        trust_env=False, verify=LOCAL_TLS).status_code == 404
    watch.assert_clean()


def test_duplicate_of_link_selects_the_first(page: Page, inspector: Inspector, watch: Watch) -> None:
    event = json.dumps({"id": "evt_1", "object": "event", "type": "invoice.paid", "data": {}}).encode()
    headers = [("content-type", "application/json"), ("stripe-signature", "t=1,v1=00")]
    first = inspector.send(headers=headers, body=event)
    second = inspector.send(headers=headers, body=event)
    if inspector.get(second).get("duplicate_of") != first:
        pytest.skip("provider detection did not mark this capture as a duplicate")
    inspector.open(page, second)
    page.locator("#detail-main .duplicate-link").click()
    page.locator(f'#detail-main .detail[data-rid="{first}"]').wait_for()
    watch.assert_clean()
