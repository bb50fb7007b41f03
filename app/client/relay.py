"""`hookscope forward`: receive an endpoint's requests over the relay websocket and send them to local targets.

Requests arrive in capture order; each is sent to the first matching route, then acknowledged with the
outcome, so the server's cursor for this relay (--name) moves only past requests that reached a target, or
that we gave up on (the target stayed unreachable for --retry-for). Anything unacknowledged when the
connection or this process dies is sent again on the next connection (at-least-once). Within one process a
request already delivered but not yet acknowledged is acknowledged again without a second delivery.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import json
import os
import random
import re
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO
from urllib.parse import quote, urlsplit

import websockets
from websockets.asyncio.client import ClientConnection

from app.delivery.outgoing import Outgoing, Target, TargetError, build_outgoing, parse_target
from app.delivery.wire import HttpClient, ProtocolError, describe_error
from app.tasks import first_completed

KEEP_PLAIN = 64 * 1024
KEEP_PASSTHROUGH = 1024 * 1024
REMEMBER = 10_000
ACK_BATCH = 32


class Rule:
    """One --to: `URL` (matches everything) or `MATCH=URL` with MATCH one of
    path:/prefix, header:Name, header:Name:value, json:field.path, json:field.path:value."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        m = re.search(r"=(https?://)", spec)
        if spec.startswith(("http://", "https://")) or m is None:
            self.kind, self.arg, self.value, url = "any", "", None, spec
        else:
            match, url = spec[: m.start()], spec[m.start() + 1 :]
            kind, _, rest = match.partition(":")
            if kind not in ("path", "header", "json") or not rest:
                raise ValueError(f"--to {spec!r}: expected URL or path:/prefix=URL, header:Name[:value]=URL, "
                                 "json:field[:value]=URL")
            self.kind = kind
            if kind == "path":
                self.arg, self.value = rest, None
            else:
                arg, sep, value = rest.partition(":")
                self.arg, self.value = (arg.lower() if kind == "header" else arg), (value if sep else None)
        self.url = url
        self.target: Target = parse_target(url)

    def matches(self, path: str, headers: list[tuple[str, str]], body: bytes, parsed: list[Any]) -> bool:
        if self.kind == "any":
            return True
        if self.kind == "path":
            return path.startswith(self.arg)
        if self.kind == "header":
            values = [v for n, v in headers if n == self.arg]
            return bool(values) and (self.value is None or self.value in values)
        if not parsed:  # parse the JSON body once, lazily, for all json rules
            try:
                parsed.append(json.loads(body))
            except (ValueError, RecursionError):
                parsed.append(_NO_JSON)
        node: Any = parsed[0]
        for part in self.arg.split("."):
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return self.value is None or str(node) == self.value or json.dumps(node) == self.value


_NO_JSON = object()


@dataclass
class Options:
    endpoint_url: str
    rules: list[Rule]
    token: str | None = None
    name: str = field(default_factory=lambda: default_name())
    start: str | None = None  # now | all | id; used on the first connection only
    retry_for: float = 3600.0
    timeout: float = 30.0
    color: bool = False
    quiet: bool = False


def default_name() -> str:
    """Stable per machine and user, so a restarted client resumes where it left off."""
    user = os.environ.get("USER") or os.environ.get("USERNAME") or "user"
    return re.sub(r"[^A-Za-z0-9._:@-]", "-", f"{user}@{socket.gethostname()}")[:100]


def relay_url(endpoint_url: str, name: str, start: str | None) -> str:
    """http(s)://host/h/ID (or /e/ID) -> ws(s)://host/api/endpoints/ID/relay?name=..."""
    parts = urlsplit(endpoint_url)
    segments = [s for s in parts.path.split("/") if s]
    if parts.scheme not in ("http", "https") or len(segments) < 2 or segments[-2] not in ("h", "e"):
        raise ValueError(f"expected the endpoint's URL, like https://hooks.example.com/h/ID, not {endpoint_url!r}")
    prefix = "/".join(segments[:-2])
    base = f"{'wss' if parts.scheme == 'https' else 'ws'}://{parts.netloc}{'/' + prefix if prefix else ''}"
    url = f"{base}/api/endpoints/{segments[-1]}/relay?name={quote(name, safe='')}"
    if start:
        url += f"&from={quote(start, safe='')}"
    return url


class Console:
    def __init__(self, out: TextIO, color: bool, quiet: bool) -> None:
        self.out = out
        self.color = color
        self.quiet = quiet

    def _paint(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color else text

    def info(self, text: str) -> None:
        print(self._paint(f"{time.strftime('%H:%M:%S')} {text}", "2"), file=self.out, flush=True)

    def warn(self, text: str) -> None:
        print(self._paint(f"{time.strftime('%H:%M:%S')} {text}", "33"), file=self.out, flush=True)

    def event(self, rid: int, method: str, path: str, target: str, status: int | None, ms: float | None,
              error: str | None) -> None:
        if self.quiet:
            return
        if status is None:
            result = self._paint(f"error: {error}", "31")
        else:
            result = self._paint(str(status), "32" if status < 300 else "33" if status < 500 else "31")
        took = f" {ms:.1f}ms" if ms is not None else ""
        print(f"{time.strftime('%H:%M:%S')} #{rid} {method} {path or '/'} -> {target} {result}{took}",
              file=self.out, flush=True)


class RelayClient:
    def __init__(self, options: Options, out: TextIO = sys.stdout) -> None:
        self.o = options
        self.console = Console(out, options.color, options.quiet)
        self.http = HttpClient()
        self.stopping = asyncio.Event()
        self.delivered = 0
        self.failed = 0
        self.acked: collections.OrderedDict[int, str] = collections.OrderedDict()
        self._first_connection = True
        self.skipped = 0  # the server's count of captures pruned before this relay got them, as last reported

    async def run(self) -> int:
        backoff = 0.5
        try:
            while not self.stopping.is_set():
                start = self.o.start if self._first_connection else None
                url = relay_url(self.o.endpoint_url, self.o.name, start)
                headers = {"Authorization": f"Bearer {self.o.token}"} if self.o.token else {}
                try:
                    async with websockets.connect(
                        url, additional_headers=headers, ping_interval=None, max_size=None, open_timeout=10,
                        close_timeout=2, proxy=None, compression=None,
                    ) as ws:
                        self._first_connection = False
                        if await self._session(ws):
                            return 2
                        backoff = 0.5
                except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
                    if isinstance(exc, websockets.exceptions.InvalidStatus) and \
                            exc.response.status_code in (401, 403):
                        self.console.info("the server refused the token (use --token or HOOKSCOPE_TOKEN)")
                        return 2
                    self.console.info(f"connection lost ({exc.__class__.__name__}); retrying in {backoff:.1f}s")
                except Exception as exc:  # a server frame we did not expect must not end a long-running relay
                    self.console.info(f"relay session failed ({exc.__class__.__name__}: {exc}); reconnecting in "
                                      f"{backoff:.1f}s")
                if self.stopping.is_set():
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), backoff * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, 30.0)
        finally:
            await self.http.aclose()
            self.console.info(f"forwarded {self.delivered} request(s), {self.failed} failed")
        return 0

    async def _session(self, ws: ClientConnection) -> bool:
        """One connection; returns True on a fatal protocol error (wrong endpoint, bad name)."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        last_heard = [time.monotonic()]
        interval = [5.0]
        fatal = [False]

        async def receiver() -> None:
            async for raw in ws:
                last_heard[0] = time.monotonic()
                try:
                    msg = json.loads(raw)
                    kind = msg.get("type")
                except (ValueError, AttributeError, RecursionError):  # a frame we cannot read ends nothing
                    self.console.info(f"ignored a frame from the server that is not a JSON object: {str(raw)[:80]!r}")
                    continue
                if kind == "request":
                    queue.put_nowait(msg)
                elif kind == "batch":
                    for item in msg.get("items") if isinstance(msg.get("items"), list) else []:
                        queue.put_nowait(item)
                elif kind == "ping":
                    await ws.send('{"type":"pong"}')
                elif kind == "hello":
                    interval[0] = float(msg.get("ping_interval") or 5.0)
                    # A position (seq) in the endpoint; on SQLite the same number as the request id.
                    self.console.info(f"relay {msg['relay']} connected; resuming after request #{msg['acked_seq']}")
                    self._note_skipped(int(msg.get("skipped") or 0))
                elif kind == "skipped":
                    self._note_skipped(int(msg.get("total") or 0))
                elif kind == "error":
                    self.console.info(f"server refused: {msg.get('message')}")
                    fatal[0] = True
                    return

        async def deliverer() -> None:
            # Acks of requests handled back to back go out together; a lone request is acked at once.
            acks: list[str] = []
            while True:
                msg = await queue.get()
                try:
                    acks.append(await self._handle(msg))
                except Exception as exc:  # no usable id: nothing to ack; the next request still goes out
                    self.console.info(f"ignored a request the relay could not read: {describe_error(exc)}")
                if acks and (queue.empty() or len(acks) >= ACK_BATCH):
                    await ws.send(acks[0] if len(acks) == 1 else '{"type":"acks","items":[' + ",".join(acks) + "]}")
                    acks = []

        async def watchdog() -> None:
            # The server pings every interval; silence for three means a dead link (sleep, network change).
            while True:
                await asyncio.sleep(interval[0])
                if time.monotonic() - last_heard[0] > 3 * interval[0]:
                    self.console.info("no word from the server; reconnecting")
                    return
                await ws.send('{"type":"ping"}')

        tasks = [asyncio.create_task(c) for c in (receiver(), deliverer(), watchdog(), self.stopping.wait())]
        for t in await first_completed(tasks):
            if not t.cancelled() and t.exception() is not None:
                raise t.exception()  # type: ignore[misc]
        return fatal[0]

    def _note_skipped(self, total: int) -> None:
        """Warn once per loss: the server sends its running total (in hello, and whenever it grows)."""
        if total > self.skipped:
            lost = total - self.skipped
            self.console.warn(
                f"warning: {lost} {'capture was' if lost == 1 else 'captures were'} pruned by the server's "
                "retention before this relay received them"
                + (f" ({total} in all)" if self.skipped else "")
                + "; keep the relay connected, or raise the server's --retention-ceiling"
            )
        self.skipped = total  # lower only when the relay was forgotten and started afresh

    async def _handle(self, msg: dict[str, Any]) -> str:
        """Deliver one request and return its ack. Whatever goes wrong with this request (a bug, a frame we
        cannot use) is acked as its failure, so the server records it and the relay goes on with the next."""
        rid = int(msg["id"])
        if rid in self.acked:  # delivered on a connection that died before the ack arrived
            return self.acked[rid]
        ack: dict[str, Any] = {"type": "ack", "id": rid, "attempts": 1, "status": None, "latency_ms": None,
                               "error": None, "headers": [], "body": "", "body_size": 0, "target": None}
        try:
            await self._route(rid, msg, ack)
        except Exception as exc:
            ack.update(status=None, latency_ms=None, headers=[], body="", body_size=0,
                       error=f"internal error in the relay: {describe_error(exc)}")
            self.failed += 1
            self.console.event(rid, str(msg.get("method")), str(msg.get("path") or ""), str(ack["target"]), None,
                               None, ack["error"])
        text = json.dumps(ack)
        self.acked[rid] = text
        while len(self.acked) > REMEMBER:
            self.acked.popitem(last=False)
        return text

    async def _route(self, rid: int, msg: dict[str, Any], ack: dict[str, Any]) -> None:
        body = base64.b64decode(msg.get("body") or "")
        headers = [(str(n), str(v)) for n, v in msg["headers"]]
        path, query, method = msg["path"], msg["query"], msg["method"]
        parsed: list[Any] = []
        rule = next((r for r in self.o.rules if r.matches(path, headers, body, parsed)), None)
        if rule is None:
            ack["error"] = "no --to rule matched"
            self.failed += 1
            self.console.event(rid, method, path, "(no route)", None, None, ack["error"])
        else:
            out = build_outgoing(rule.target, method, path, query, headers, body)
            ack["target"] = out.url
            await self._deliver(out, ack, KEEP_PASSTHROUGH if msg.get("want_response") else KEEP_PLAIN)
            self.console.event(rid, method, path + ("?" + query if query else ""), rule.url, ack["status"],
                               ack["latency_ms"], ack["error"])

    async def _deliver(self, out: Outgoing, ack: dict[str, Any], keep: int) -> None:
        """Send, retrying while the target is unreachable (a dev server restarting), up to --retry-for."""
        started = time.monotonic()
        delay = 0.25
        while True:
            try:
                resp = await self.http.send(out, self.o.timeout, keep=keep)
            except (OSError, TimeoutError, ProtocolError, asyncio.IncompleteReadError) as exc:
                # Every failed attempt is counted in the ack: nothing is sent twice without a record of it.
                error = describe_error(exc)
                if time.monotonic() - started + delay > self.o.retry_for or self.stopping.is_set():
                    ack["error"] = error
                    self.failed += 1
                    return
                if ack["attempts"] == 1:
                    self.console.info(f"{out.url}: {error}; retrying")
                ack["attempts"] += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), delay)
                if self.stopping.is_set():
                    raise asyncio.CancelledError() from None  # leave it unacked: redelivered next time
                delay = min(delay * 2, 10.0)
                continue
            ack.update(status=resp.status, latency_ms=round(resp.latency_ms, 3),
                       headers=[[n.decode("latin-1"), v.decode("latin-1")] for n, v in resp.headers],
                       body=base64.b64encode(resp.body).decode("ascii"), body_size=resp.body_size)
            self.delivered += 1
            return


def wants_color(stream: TextIO) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def run(options: Options) -> int:
    """Run until Ctrl-C or SIGTERM; exit status 0, or 2 when the server refuses us."""

    async def main() -> int:
        client = RelayClient(options)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, client.stopping.set)
        return await client.run()

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        return 0


def build_options(endpoint_url: str, to: list[str], token: str | None, name: str | None, start: str | None,
                  retry_for: float, quiet: bool, color: bool | None) -> Options:
    if not to:
        raise ValueError("give at least one --to target, e.g. --to http://localhost:3000/webhooks")
    try:
        rules = [Rule(spec) for spec in to]
    except TargetError as exc:
        raise ValueError(f"--to: {exc}") from None
    relay_url(endpoint_url, name or "x", start)  # validates the URL
    if start is not None and start not in ("now", "all") and not start.isdigit():
        raise ValueError("--from must be now, all or a request id")
    return Options(endpoint_url, rules, token, name or default_name(), start, retry_for,
                   color=wants_color(sys.stdout) if color is None else color, quiet=quiet)
