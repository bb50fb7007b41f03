"""The ingest endpoint `/h/{id}[/sub/path]`: any method, any body, recorded before the sender is answered.

A plain ASGI callable, dispatched before Starlette's router: it takes every method token (PROPFIND, PURGE,
...) and skips routing work on the hottest path. The contract with a sender: a 2xx means the request is
committed; 413 means the body was over the limit (and a metadata-only "rejected" record was committed);
503 with Retry-After means the write queue is full and nothing was stored; 500 store_failed (JSON) means
storage failed (disk full, read-only) and nothing was stored either: no row, no body file.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.types import Message, Receive, Scope, Send

from app.ingest.clientaddr import Network, client_address
from app.json_errors import error_body
from app.models import CapturedRequest, Endpoint, NewRequest, ResponseSpec
from app.providers.awareness import DETECT_MAX, analyse, analysed
from app.settings import Settings
from app.store.base import BodySpool, Store
from app.store.errors import StoreBusy, StoreClosed

log = logging.getLogger("hookscope.capture")

PREFIX = b"/h/"

# After a body goes over the limit we read and discard the rest (up to this much, within DRAIN_SECONDS) so the
# sender can read our 413 instead of seeing its upload reset; past that we answer and close the connection.
DRAIN_BYTES = 64 * 1024 * 1024
DRAIN_SECONDS = 30.0
# Encoded endpoint responses kept (_Answer); past this the cache starts over.
ANSWERS_CACHED = 1024

# What the capture app is composed with (app/services.py): a GET with Accept: text/event-stream on the ingest URL
# becomes a live stream (smee.io compatibility), and an endpoint may answer with a forwarded target's response
# (passthrough).
StreamHandler = Callable[[Endpoint, Scope, Receive, Send], Awaitable[None]]
ResponseHook = Callable[[Endpoint, CapturedRequest], Awaitable["Reply | None"]]


class Reply:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class _Disconnected(Exception):
    pass


class _SpoolFailed(Exception):
    """Writing the body file failed (disk full, read-only directory); the cause is the OSError."""

    def __init__(self, more_body: bool) -> None:
        super().__init__("could not write the body file")
        self.more_body = more_body


@dataclass(frozen=True, slots=True)
class _Answer:
    """An endpoint's configured response, encoded once (not per capture): status, the headers before the request
    id, the body (None: the default JSON naming the request id) and whether the headers set Content-Length."""

    spec: ResponseSpec
    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes | None
    has_length: bool

    @classmethod
    def of(cls, spec: ResponseSpec) -> _Answer:
        configured = tuple((n.encode("latin-1"), v.encode("latin-1")) for n, v in spec.headers)
        names = {n.lower() for n, _ in configured}
        if spec.body is None:
            headers = configured if b"content-type" in names else ((b"content-type", b"application/json"), *configured)
            body = None
        else:
            headers, body = configured, spec.body.encode("utf-8")
        return cls(spec, spec.status, headers, body, b"content-length" in names)


class CaptureApp:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        trusted: tuple[Network, ...],
        stream_handler: StreamHandler | None = None,
        response_hook: ResponseHook | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.trusted = trusted
        self.stream_handler = stream_handler
        self.response_hook = response_hook
        # Analysing a spilled body means reading it into memory: one at a time keeps memory bounded.
        self._big_analysis = asyncio.Semaphore(1)
        # Endpoint id -> its encoded response, rebuilt when the endpoint's ResponseSpec object changes.
        self._answers: dict[str, _Answer] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
        raw_id, sep, sub = raw_path[len(PREFIX) :].partition(b"/")
        endpoint_id = raw_id.decode("latin-1")
        endpoint = self.store.cached_endpoint(endpoint_id)
        if endpoint is None:
            # Maybe created through another instance a moment ago (a shared database); the store bounds these reads.
            try:
                endpoint = await self.store.find_endpoint(endpoint_id)
            except Exception:
                log.warning("could not look endpoint %r up", endpoint_id[:100], exc_info=True)
                await _send_json(send, 500, error_body("store_failed", "could not look the endpoint up"))
                return
        if endpoint is None:
            await _send_json(send, 404, error_body("endpoint_not_found", f"no endpoint with id {endpoint_id!r}"))
            return
        method: str = scope["method"]
        headers = tuple([(n.decode("latin-1"), v.decode("latin-1")) for n, v in scope["headers"]])

        if method == "GET" and self.stream_handler is not None and _wants_event_stream(headers):
            await self.stream_handler(endpoint, scope, receive, send)
            return

        peer = scope.get("client")
        peer_ip = peer[0] if peer else None
        if self.trusted:
            client = client_address(peer_ip, [v for n, v in headers if n == "x-forwarded-for"], self.trusted)
        else:
            client = peer_ip
        new = NewRequest(
            endpoint.id, time.time(), method, (b"/" + sub).decode("latin-1") if sep else "",
            scope.get("query_string", b"").decode("latin-1"), headers, None, 0, client,
            scope.get("http_version", "1.1"),
        )

        limit = self.settings.max_body
        declared = _content_length(headers)
        if declared is not None and declared > limit:
            # With Expect: 100-continue the sender waits for us and never sends the body; otherwise drain it.
            if not any(n == "expect" for n, _ in headers) and declared - limit <= DRAIN_BYTES:
                try:
                    await _drain(receive, DRAIN_BYTES)
                except _Disconnected:
                    pass
            await self._reject(send, new, declared, limit)
            return

        try:
            message: Message = await receive()
            if (
                message["type"] == "http.request"
                and not message.get("more_body", False)
                and len(body := message.get("body", b"")) <= min(limit, self.settings.spill_threshold)
            ):
                spool: BodySpool | None = None
                size = len(body)
            else:
                read, spool, size = await self._read_body(receive, limit, message)
                body = read if read is not None else b""
        except _Disconnected:
            return  # the sender went away mid-body: nothing is stored, nobody to answer
        except _SpoolFailed as exc:
            # The spool removed what it wrote and no row exists; read the rest so the sender sees our answer.
            log.error("capture failed: %s: %s", exc, exc.__cause__)
            if exc.more_body:
                try:
                    await _drain(receive, DRAIN_BYTES)
                except _Disconnected:
                    return
            await _send_json(
                send, 500, error_body("store_failed", "could not store the request"), [(b"connection", b"close")]
            )
            return
        if size > limit:
            await self._reject(send, new, size, limit)
            return

        new.body_size = size
        if spool is None:
            new.body = body
        else:
            new.spool = spool
        try:
            if spool is None:
                self._analyse_inline(endpoint, new)
            else:
                await spool.finish()
                await self._analyse_spooled(endpoint, new, spool)
            captured = await self.store.add_request(new)
        except (StoreBusy, StoreClosed):
            if spool is not None:
                spool.discard()
            await _send_json(
                send, 503, error_body("overloaded", "capture queue is full, retry shortly"), [(b"retry-after", b"1")]
            )
            return
        except Exception:
            if spool is not None:
                spool.discard()
            log.exception("capture failed")
            await _send_json(send, 500, error_body("store_failed", "could not store the request"))
            return

        await self._respond(send, endpoint, captured, method)

    def _analyse_inline(self, endpoint: Endpoint, new: NewRequest) -> None:
        """Provider detection and the signature verdict, over the exact bytes. Never fails a capture."""
        try:
            analysed(new, analyse(new, new.body, endpoint.settings.verify, self.settings.public_url))
        except Exception:
            log.exception("provider analysis failed; storing the request without it")

    async def _analyse_spooled(self, endpoint: Endpoint, new: NewRequest, spool: BodySpool) -> None:
        """As _analyse_inline, for a body that streamed into a spool: read back (one at a time) when small
        enough to detect the event, or when the endpoint verifies signatures."""
        config = endpoint.settings.verify
        try:
            if new.body_size > DETECT_MAX and config is None:
                analysed(new, analyse(new, None, None, self.settings.public_url))
                return
            async with self._big_analysis:
                body = await spool.read()
                result = await asyncio.to_thread(analyse, new, body, config, self.settings.public_url)
            analysed(new, result)
        except Exception:
            log.exception("provider analysis failed; storing the request without it")

    async def _read_body(
        self, receive: Receive, limit: int, message: Message
    ) -> tuple[bytes | None, BodySpool | None, int]:
        """Read the body from its first message on, spilling to a file past the threshold.

        Returns (bytes, None, size) or (None, spool, size); (None, None, size) when over the limit.
        """
        buf = bytearray()
        spool: BodySpool | None = None
        size = 0
        threshold = self.settings.spill_threshold
        try:
            while True:
                if message["type"] == "http.disconnect":
                    raise _Disconnected()
                chunk: bytes = message.get("body", b"")
                if chunk:
                    size += len(chunk)
                    if size > limit:
                        if spool is not None:
                            spool.discard()
                            spool = None
                        if message.get("more_body", False):
                            size += await _drain(receive, DRAIN_BYTES)
                        return None, None, size
                    try:
                        if spool is not None:
                            await spool.write(chunk)
                        else:
                            buf += chunk
                            if len(buf) > threshold:
                                spool = self.store.new_spool()
                                await spool.write(bytes(buf))
                                buf = bytearray()
                    except OSError as exc:
                        raise _SpoolFailed(message.get("more_body", False)) from exc
                if not message.get("more_body", False):
                    break
                message = await receive()
        except BaseException:
            if spool is not None:
                spool.discard()
            raise
        if spool is not None:
            return None, spool, size
        return bytes(buf), None, size

    async def _reject(self, send: Send, new: NewRequest, size: int, limit: int) -> None:
        """Record that the sender tried (metadata only), then answer 413."""
        rid: int | None = None
        try:
            new.body, new.body_size, new.rejected = b"", size, "body_too_large"
            captured = await self.store.add_request(analysed(new, analyse(new, None, None, self.settings.public_url)))
            rid = captured.id
        except Exception:
            log.warning("could not record a rejected request", exc_info=True)
        message = f"body is {size} bytes or more; this server accepts at most {limit} bytes"
        extra = [(b"x-hookscope-request-id", str(rid).encode())] if rid is not None else []
        extra.append((b"connection", b"close"))
        await _send_json(send, 413, error_body("body_too_large", message), extra)

    def _answer(self, endpoint: Endpoint) -> _Answer:
        answer = self._answers.get(endpoint.id)
        if answer is None or answer.spec is not endpoint.response:
            if len(self._answers) >= ANSWERS_CACHED:
                self._answers.clear()  # endpoints come and go; a rebuild is cheap
            answer = self._answers[endpoint.id] = _Answer.of(endpoint.response)
        return answer

    async def _respond(self, send: Send, endpoint: Endpoint, captured: CapturedRequest, method: str) -> None:
        rid = str(captured.id).encode()
        if self.response_hook is not None:
            reply = await self.response_hook(endpoint, captured)
            if reply is not None:
                headers = [*reply.headers, (b"x-hookscope-request-id", rid)]
                await _send(send, reply.status, headers, b"" if method == "HEAD" else reply.body)
                return
        answer = self._answer(endpoint)
        if endpoint.response.delay > 0:
            await asyncio.sleep(endpoint.response.delay)
        body = answer.body if answer.body is not None else b'{"ok":true,"request_id":' + rid + b"}"
        headers = [*answer.headers, (b"x-hookscope-request-id", rid)]
        if not answer.has_length:
            headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})


async def _drain(receive: Receive, budget: int) -> int:
    """Read and discard the rest of a body, within DRAIN_BYTES and DRAIN_SECONDS; returns bytes read."""
    drained = 0
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            while drained <= budget:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise _Disconnected()
                drained += len(message.get("body", b""))
                if not message.get("more_body", False):
                    break
    except TimeoutError:
        pass
    return drained


def _wants_event_stream(headers: tuple[tuple[str, str], ...]) -> bool:
    return any(n == "accept" and "text/event-stream" in v for n, v in headers)


def _content_length(headers: tuple[tuple[str, str], ...]) -> int | None:
    for name, value in headers:
        if name == "content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes, length: int | None = None
) -> None:
    if not any(n.lower() == b"content-length" for n, _ in headers):
        headers.append((b"content-length", str(len(body) if length is None else length).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_json(send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-type", b"application/json"), *(extra or [])]
    await _send(send, status, headers, body)
