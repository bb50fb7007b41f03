#!/usr/bin/env python3
"""Inspector first paint on a big endpoint: navigation start -> first request rows visible.

Fills one endpoint with 100,000 requests directly in SQLite (the app's own schema, created by the store, while the
server is stopped), starts `hookscope serve` on it (retention off), then opens /e/{id} in Chromium several times.
The page records, with a MutationObserver installed before any page script runs, the `performance.now()` at which
the first `li.row` enters the list (0 = navigation start). Prints each run, the median and the max.

    python bench/ui_first_rows.py [--requests 100000] [--runs 7]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from playwright.sync_api import sync_playwright  # noqa: E402

from app.endpoint_settings import EndpointSettings  # noqa: E402
from app.events.bus import EventBus  # noqa: E402
from app.models import ResponseSpec  # noqa: E402
from app.store import SQLiteStore  # noqa: E402
from app.store.sqlite.captures import encode_headers  # noqa: E402
from tests.support import ServerProcess  # noqa: E402
from tests.ui.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

OBSERVE = """
window.__firstRow = null;
new MutationObserver((records, observer) => {
  if (document.querySelector("#request-list li.row")) {
    window.__firstRow = performance.now();
    observer.disconnect();
  }
}).observe(document, {childList: true, subtree: true});
"""


async def create_endpoint(db: Path) -> str:
    store = SQLiteStore(
        db, events=EventBus(), durability="normal", queue_size=100, retention_count=0, retention_age=0
    )
    await store.open()
    try:
        ep = await store.create_endpoint("100k requests", ResponseSpec(), EndpointSettings())
        return ep.id
    finally:
        await store.close()


def fill(db: Path, endpoint_id: str, count: int) -> None:
    body = json.dumps({"id": "evt_1", "type": "invoice.paid", "data": {"object": {"amount": 4200}}}).encode()
    headers = encode_headers((("host", "127.0.0.1"), ("content-type", "application/json"),
                              ("user-agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)")))
    now = time.time() - count
    rows = (
        (endpoint_id, now + i, "POST", f"/webhooks/{i % 7}", "", headers, "application/json", body, None,
         len(body), "127.0.0.1", "1.1", None)
        for i in range(count)
    )
    conn = sqlite3.connect(db)
    with conn:
        conn.executemany(
            "INSERT INTO requests (endpoint_id, received_at, method, path, query, headers, content_type, body,"
            " body_file, body_size, client, http_version, rejected) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        started = time.perf_counter()
        endpoint_id = asyncio.run(create_endpoint(db))
        fill(db, endpoint_id, args.requests)
        print(f"filled {args.requests} requests in {time.perf_counter() - started:.1f} s")
        with ServerProcess(db, ["--retention-count", "0", "--retention-age", "off"]) as srv, \
                sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            timings = []
            for run in range(args.runs):
                context = browser.new_context(viewport={"width": 1280, "height": 800})
                page = context.new_page()
                page.add_init_script(OBSERVE)
                page.goto(f"{srv.url}/e/{endpoint_id}")
                # A selector wait, not wait_for_function: the page's CSP forbids the eval that a string predicate needs.
                page.wait_for_selector("#request-list li.row", timeout=30_000)
                ms = float(page.evaluate("window.__firstRow"))
                shown = page.locator("#request-list li.row").count()
                timings.append(ms)
                print(f"run {run + 1}: first rows after {ms:.0f} ms ({shown} rows in the list)")
                context.close()
            browser.close()
    print(f"navigation -> first rows, {args.requests} stored: median {statistics.median(timings):.0f} ms, "
          f"max {max(timings):.0f} ms (target < 500 ms)")


if __name__ == "__main__":
    main()
