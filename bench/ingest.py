#!/usr/bin/env python3
"""Durable ingest throughput and latency, measured with wrk (a real load generator).

Starts `hookscope serve` as a subprocess on a fresh database, creates an endpoint, and runs wrk with 50
concurrent connections POSTing a 1 KiB JSON body. Repeats several runs and prints medians, then checks that
every acknowledged request is really in the database. Installs wrk from Debian's packages when missing.

    python bench/ingest.py [--runs 5] [--duration 10] [--connections 50] [--durability full]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

LUA = r"""
wrk.method = "POST"
wrk.body = [[BODY]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Stripe-Signature"] = "t=1700000000,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd"
local ok = 0
response = function(status, headers, body)
  if status == 200 then ok = ok + 1 end
end
done = function(summary, latency, requests)
  io.write(string.format("JSON {\"requests\": %d, \"errors\": %d, \"p50_us\": %d, \"p99_us\": %d, \"mean_us\": %d}\n",
    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read
      + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean))
end
"""


def ensure_wrk() -> str:
    path = shutil.which("wrk")
    if path:
        return path
    print("wrk not found: installing it from Debian's packages", file=sys.stderr)
    subprocess.run(["apt-get", "update", "-qq"], check=False)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
    path = shutil.which("wrk")
    if not path:
        raise SystemExit("could not install wrk")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def body_1kib() -> str:
    payload = {"id": "evt_1NG8Du2eZvKYlo2CUI79vXWy", "object": "event", "type": "invoice.paid", "data": {}}
    text = json.dumps(payload)
    pad = 1024 - len(text) - len(',"pad":""')
    payload["pad"] = "x" * pad
    text = json.dumps(payload, separators=(",", ":"))
    return text[:1024]


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("server exited during start-up")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("server did not start")


def run_once(wrk: str, args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    port = free_port()
    db = workdir / f"bench-{port}.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKSCOPE_")}
    cmd = [sys.executable, "-m", "app", "serve", "--port", str(port), "--db", str(db),
           "--durability", args.durability, "--http", args.http]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, proc)
        req = urllib.request.Request(url + "/api/endpoints", data=b"{}", method="POST")
        with urllib.request.urlopen(req) as resp:
            endpoint = json.load(resp)["id"]
        script = workdir / "post.lua"
        script.write_text(LUA.replace("[[BODY]]", "[[" + body_1kib() + "]]"))
        out = subprocess.run(
            [wrk, "-t2", f"-c{args.connections}", f"-d{args.duration}s", "--latency", "-s", str(script),
             f"{url}/h/{endpoint}"],
            capture_output=True, text=True, check=True,
        ).stdout
        line = next(x for x in out.splitlines() if x.startswith("JSON "))
        stats = json.loads(line[5:])
        rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    finally:
        proc.terminate()
        proc.wait(30)
    conn = sqlite3.connect(db)
    (stored,) = conn.execute("SELECT COUNT(*) FROM requests WHERE endpoint_id = ?", (endpoint,)).fetchone()
    conn.close()
    acknowledged = stats["requests"] - stats["errors"]
    # wrk counts a request when its response arrived; every 200 must be stored (stored may exceed it by
    # requests still in flight when wrk stopped, which committed but whose answers were not counted).
    if stored < acknowledged:
        raise SystemExit(f"LOST DATA: {acknowledged} acknowledged but only {stored} stored")
    return {"rate": rate, "p50_ms": stats["p50_us"] / 1000, "p99_ms": stats["p99_us"] / 1000,
            "errors": stats["errors"], "stored": stored, "acknowledged": acknowledged}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--durability", default="full", choices=["full", "normal"])
    parser.add_argument("--http", default="auto", choices=["auto", "httptools", "h11"])
    args = parser.parse_args()
    wrk = ensure_wrk()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            r = run_once(wrk, args, Path(tmp))
            results.append(r)
            print(f"run {i + 1}: {r['rate']:.0f} captures/s, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
                  f"errors {r['errors']}, acknowledged {r['acknowledged']}, stored {r['stored']}", flush=True)
    med = {k: statistics.median(r[k] for r in results) for k in ("rate", "p50_ms", "p99_ms")}
    print(f"median of {args.runs} runs ({args.connections} connections, 1 KiB JSON, durability "
          f"{args.durability}, {os.cpu_count()} cores): {med['rate']:.0f} captures/s, p50 {med['p50_ms']:.1f} ms, "
          f"p99 {med['p99_ms']:.1f} ms")


if __name__ == "__main__":
    main()
