#!/usr/bin/env python3
"""Live latency in the browser: request sent -> its row inserted in the open inspector.

Starts `hookscope serve` on a fresh database, opens the inspector in Chromium, then paced sender threads POST
200 requests/s for ~10 s over keep-alive connections; each body carries its send time. The page's list dispatches
a `hookscope:row` CustomEvent ({id, at: performance.timeOrigin + performance.now()}) when it inserts a row; an init
script collects them. latency = row time - send time (same machine, same clock). Prints p50, p90, p99 and max.

    python bench/ui_latency.py [--rate 200] [--seconds 10] [--runs 1]
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from playwright.sync_api import expect, sync_playwright  # noqa: E402

from tests.support import ServerProcess  # noqa: E402
from tests.ui.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

COLLECT = """
window.__rows = [];
document.addEventListener("hookscope:row", (e) => window.__rows.push([e.detail.id, e.detail.at]));
"""
THREADS = 4
acks: list[float] = []


def sender(port: int, endpoint_id: str, start: float, interval: float, offset: int, count: int,
           sent: dict[int, float], lock: threading.Lock) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for i in range(count):
        due = start + (offset + i * THREADS) * interval
        delay = due - time.time()
        if delay > 0:
            time.sleep(delay)  # pacing the load generator, not a wait in a test
        at = time.time() * 1000
        body = json.dumps({"sent_at_ms": at, "n": offset + i * THREADS}).encode()
        conn.request("POST", f"/h/{endpoint_id}/lat", body=body, headers={"content-type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        if resp.status == 200:
            with lock:
                sent[json.loads(data)["request_id"]] = at
                acks.append(time.time() * 1000 - at)
    conn.close()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def run_once(srv: ServerProcess, browser: object, rate: int, seconds: float) -> list[float]:
    import httpx

    ep = httpx.post(srv.url + "/api/endpoints", json={"name": "latency"}, trust_env=False).json()
    context = browser.new_context(viewport={"width": 1280, "height": 800})  # type: ignore[attr-defined]
    page = context.new_page()
    page.add_init_script(COLLECT)
    page.goto(f"{srv.url}/e/{ep['id']}")
    expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    total = int(rate * seconds)
    sent: dict[int, float] = {}
    lock = threading.Lock()
    start = time.time() + 0.2
    threads = [
        threading.Thread(target=sender, args=(srv.port, ep["id"], start, 1 / rate, k,
                                              len(range(k, total, THREADS)), sent, lock))
        for k in range(THREADS)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    page.wait_for_function("n => window.__rows.length >= n", arg=len(sent), timeout=30_000)
    rows = dict(page.evaluate("window.__rows"))
    context.close()
    latencies = [rows[int(rid)] - at for rid, at in sent.items() if int(rid) in rows]
    missing = len(sent) - len(latencies)
    print(f"  ack latency (capture committed, answer received) p50 {statistics.median(acks):.1f} ms, "
          f"p99 {percentile(acks, 99):.1f} ms")
    acks.clear()
    print(f"  sent {total}, acknowledged {len(sent)}, rows {len(rows)}, missing {missing}, "
          f"achieved {len(sent) / (time.time() - start):.0f}/s")
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, ServerProcess(Path(tmp) / "lat.db") as srv, \
            sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        for run in range(args.runs):
            lat = run_once(srv, browser, args.rate, args.seconds)
            print(f"run {run + 1}: {len(lat)} rows, latency p50 {statistics.median(lat):.1f} ms, "
                  f"p90 {percentile(lat, 90):.1f} ms, p99 {percentile(lat, 99):.1f} ms, max {max(lat):.1f} ms "
                  f"(target p99 < 100 ms)")
        browser.close()


if __name__ == "__main__":
    main()
