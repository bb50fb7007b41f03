#!/usr/bin/env python3
"""Where ingest time goes: a sampling profile of `hookscope serve` under bench/ingest.py's load.

Starts hookscope on a fresh database (as bench/ingest.py does), puts wrk's load on it, and while the load runs
samples the server with py-spy (`pip install py-spy`; installed on first use). By default only samples that
hold the GIL are kept (`--all-threads` keeps every busy thread): with one process, GIL time is what limits the
rate, whichever thread spends it. Prints the functions with the most samples of their own, the most samples
including what they call, and the share of each area (capture, store, providers, uvicorn, asyncio...), and
keeps the raw stacks (and with `--svg`, a flame graph) in `--out`.

    python bench/ingest_profile.py [--duration 15] [--profile plain|providers] [--durability full] [--out profile/]
    python bench/ingest_profile.py --ceiling   # the same, on bench/ceiling_app.py (what the HTTP stack alone costs)

The same by hand, on any running server: `py-spy record --gil --rate 250 --pid PID --duration 15 -o ingest.svg`
while a load runs (wrk, or bench/ingest.py).
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ingest  # bench/ingest.py: the same servers, load profiles and wrk scripts

# Areas, by the first matching fragment of a frame's file (checked in this order).
AREAS: tuple[tuple[str, str], ...] = (
    ("app/ingest/", "capture (app/ingest)"),
    ("app/store/", "store (app/store)"),
    ("app/providers/", "providers (detect, verify)"),
    ("app/events/", "events (bus)"),
    ("app/delivery/", "delivery"),
    ("app/server/", "HTTP guard (app/server)"),
    ("app/", "app, other"),
    ("uvicorn/", "uvicorn"),
    ("starlette/", "starlette"),
    ("asyncio/", "asyncio (event loop)"),
    ("concurrent/", "thread pool"),
)
# Library helpers whose time belongs to whoever called them.
HELPERS = ("(json/", "(dataclasses.py", "(<string>", "(sqlite3/", "(functools.py", "(_weakrefset.py", "(re/",
           "(enum.py", "(threading.py", "(copy.py", "(hmac.py", "(base64.py", "(urllib/")


def ensure_py_spy() -> str:
    path = shutil.which("py-spy")
    if path:
        return path
    print("py-spy not found: installing it with pip", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "py-spy"], check=True)
    path = shutil.which("py-spy")
    if not path:
        raise SystemExit("could not install py-spy")
    return path


def frame_name(frame: str) -> str:
    """'handle (app/ingest/capture.py:120)' -> 'handle (app/ingest/capture.py)': lines split a function apart."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("/site-packages/", "/lib/python3", "/work/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "/lib/python3":
                path = path.split("/", 1)[1] if "/" in path else path
    if "/app/" in path:
        path = "app/" + path.split("/app/", 1)[1]
    return f"{name} ({path})"


def area_of(frame: str) -> str:
    for fragment, area in AREAS:
        if fragment in frame:
            return area
    return "other"


def summarise(raw: Path, top: int) -> None:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    areas: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame_name(f) for f in stack.split(";")[1:]]  # the first is the thread
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
        # The innermost frame names the area, but helpers count for their caller: json or a dataclass __init__
        # called by the store is the store's time.
        area = next((area_of(f) for f in reversed(frames) if not any(h in f for h in HELPERS)), "other")
        areas[area] += count
    if not total:
        raise SystemExit("py-spy recorded no samples (is the server busy? is ptrace allowed?)")
    print(f"\n{total} samples")
    print("\nby area (the innermost frame decides; library helpers count for their caller):")
    for area, count in areas.most_common():
        print(f"  {100 * count / total:5.1f}%  {area}")
    print(f"\ntop {top} by own samples:")
    for name, count in own.most_common(top):
        print(f"  {100 * count / total:5.1f}%  {name}")
    print(f"\ntop {top} by samples including callees:")
    for name, count in inclusive.most_common(top):
        print(f"  {100 * count / total:5.1f}%  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=15, help="seconds sampled (wrk runs 3 s longer)")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--durability", default="full", choices=["full", "normal"])
    parser.add_argument("--profile", default="plain", choices=list(ingest.PROFILES))
    parser.add_argument("--ceiling", action="store_true", help="profile bench/ceiling_app.py instead")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--all-threads", action="store_true", help="keep samples that do not hold the GIL too")
    parser.add_argument("--svg", action="store_true", help="also write a flame graph (a second sampling run)")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path("profile"))
    args = parser.parse_args()
    wrk = ingest.ensure_wrk()
    spy = ensure_py_spy()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        server = ingest.CeilingServer(workdir) if args.ceiling else ingest.HookscopeServer(
            workdir, args.durability, args.profile)
        with server:
            script = server.wrk_script()
            load = subprocess.Popen(
                [wrk, "-t2", f"-c{args.connections}", f"-d{args.duration + 3}s", "-s", str(script), server.url],
                stdout=subprocess.PIPE, text=True,
            )
            time.sleep(1)  # past wrk's connection set-up
            gil = [] if args.all_threads else ["--gil"]
            raw = args.out / "stacks.txt"
            subprocess.run([spy, "record", *gil, "--rate", str(args.rate), "--pid", str(server.pid),
                            "--duration", str(args.duration), "--format", "raw", "-o", str(raw)],
                           check=True, capture_output=True)
            if args.svg:
                svg = args.out / "ingest.svg"
                subprocess.run([spy, "record", *gil, "--rate", str(args.rate), "--pid", str(server.pid),
                                "--duration", "2", "-o", str(svg)], check=True, capture_output=True)
            out, _ = load.communicate()
            rate = next((line for line in out.splitlines() if line.startswith("Requests/sec")), "?")
    what = "ceiling app" if args.ceiling else f"hookscope, {args.profile}, durability {args.durability}"
    print(f"{what}: {rate.strip()} while sampled ({'GIL holders' if not args.all_threads else 'all threads'})")
    summarise(raw, args.top)
    print(f"\nraw stacks: {raw}" + (f"; flame graph: {args.out / 'ingest.svg'}" if args.svg else ""))


if __name__ == "__main__":
    main()
