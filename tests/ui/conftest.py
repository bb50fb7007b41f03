"""Browser tests: Debian's Chromium driven by Playwright (sync API) against a real `hookscope serve` process.

Without /usr/bin/chromium these tests skip, unless HOOKSCOPE_REQUIRE_BROWSER=1 (set by .ci/run) makes that a
failure. Every page is watched: dialogs (alert/confirm/prompt), uncaught page errors and any request that leaves
127.0.0.1 are recorded in `Watch`, so XSS tests can assert that nothing ran and nothing phoned home.

Servers: `ui_server` is one `hookscope serve` shared by the tests of a module (each test creates its own endpoint and
only looks at that endpoint's data). A test that needs a server of its own (it stops or restarts the server, or
depends on server-wide state such as the endpoint list) is marked `@pytest.mark.fresh_server`: its `ui_server` is
then started for it alone. The browser is shared by the package; each test still gets its own context and `Watch`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from app.settings import Settings
from tests.support import LOCAL_TLS, ServerProcess, live_server

CHROMIUM = os.environ.get("HOOKSCOPE_CHROMIUM", "/usr/bin/chromium")
# Flags for a closed network and a root user (see ../shared/architecture.md): no background networking.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]

try:
    from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    sync_playwright = None  # type: ignore[assignment]


def _browser_missing() -> str | None:
    if sync_playwright is None:
        return "playwright is not installed"
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"{CHROMIUM} not found (apt-get install chromium)"
    return None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "fresh_server: give the test a `hookscope serve` of its own instead of the module's shared one"
    )


# Package scope, not session: the sync API keeps an event loop running in this thread while it is started, and a
# pytest-asyncio test run after the browser tests would then fail with "cannot be called from a running event
# loop". The package's fixtures are torn down as soon as the run leaves tests/ui (which holds no asyncio tests).
@pytest.fixture(scope="package")
def playwright_instance() -> Iterator[Playwright]:
    missing = _browser_missing()
    if missing:
        if os.environ.get("HOOKSCOPE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser tests required but {missing}")
        pytest.skip(missing)
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="package")
def browser(playwright_instance: Playwright) -> Iterator[Browser]:
    b = playwright_instance.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    yield b
    b.close()


@dataclass
class Watch:
    dialogs: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)

    def assert_clean(self) -> None:
        assert self.dialogs == [], f"dialogs opened: {self.dialogs}"
        assert self.foreign_requests == [], f"requests left loopback: {self.foreign_requests}"
        assert self.page_errors == [], f"uncaught page errors: {self.page_errors}"


# Every URL except data:, blob: and URLs whose host is exactly 127.0.0.1 or localhost. Matched by Playwright itself,
# so loopback requests (all of the page's own) skip the round trip to this process that a "**/*" route costs each
# request; anything else still reaches `on_request`, which keeps the exact host check.
NOT_LOOPBACK = re.compile(r"^(?!data:|blob:|[a-z][a-z0-9+.\-]*://(?:[^/?#]*@)?(?:127\.0\.0\.1|localhost)(?::\d+)?(?:[/?#]|$))")


def watch_context(context: BrowserContext, watch: Watch) -> None:
    def on_request(route):  # type: ignore[no-untyped-def]
        host = urlsplit(route.request.url).hostname or ""
        if route.request.url.startswith(("data:", "blob:")) or host in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            watch.foreign_requests.append(route.request.url)
            route.abort()

    context.route(NOT_LOOPBACK, on_request)

    def on_page(page: Page) -> None:
        def on_dialog(dialog):  # type: ignore[no-untyped-def]
            watch.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", on_dialog)
        page.on("pageerror", lambda exc: watch.page_errors.append(str(exc)))
        page.on("console", lambda msg: watch.console_errors.append(msg.text) if msg.type == "error" else None)

    context.on("page", on_page)


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server per module, for the tests that only look at endpoints they created themselves."""
    with ServerProcess(tmp_path_factory.mktemp("ui") / "ui.db") as srv:
        yield srv


@pytest.fixture
def ui_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    if request.node.get_closest_marker("fresh_server") is not None:
        with ServerProcess(tmp_path / "ui.db") as srv:
            yield srv
        return
    srv = request.getfixturevalue("shared_server")
    # A test that stops the shared server is a test bug (mark it fresh_server): say so instead of failing later.
    assert srv.proc is not None and srv.proc.poll() is None, f"shared server exited: {srv.proc and srv.proc.returncode}"
    yield srv
    assert srv.proc.poll() is None, "the test stopped the module's shared server: mark it fresh_server"


@dataclass
class ThreadServer:
    """A server running in this process (`live_server`, in an event loop on a thread of its own), for settings the
    command line does not offer, such as a retention pass every fraction of a second. Only `url` is shared with
    `ServerProcess`: tests talk to it over HTTP like to any other."""

    url: str


@contextlib.contextmanager
def thread_server(settings: Settings) -> Iterator[ThreadServer]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="ui-thread-server", daemon=True)
    thread.start()
    running = live_server(settings)
    try:
        server = asyncio.run_coroutine_threadsafe(running.__aenter__(), loop).result(30)
        try:
            yield ThreadServer(server.url)
        finally:
            asyncio.run_coroutine_threadsafe(running.__aexit__(None, None, None), loop).result(60)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture
def watch() -> Watch:
    return Watch()


@pytest.fixture
def context(browser: Browser, watch: Watch) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    watch_context(ctx, watch)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    p = context.new_page()
    p.set_default_timeout(10_000)
    yield p


# --- detail pane helpers (test_detail_views, test_xss, test_curl) -------------------------------------------------


@dataclass
class Inspector:
    """One endpoint on `ui_server`: send captures to it and open them in its inspector page."""

    server: ServerProcess
    endpoint: dict[str, Any]

    @property
    def ingest(self) -> str:
        return f"{self.server.url}/h/{self.endpoint['id']}"

    def send(
        self,
        method: str = "POST",
        sub: str = "",
        *,
        query: str = "",
        headers: list[tuple[str, str]] | list[tuple[bytes, bytes]] | None = None,
        body: bytes = b"",
    ) -> int:
        url = self.ingest + sub + (f"?{query}" if query else "")
        resp = httpx.request(method, url, headers=headers, content=body, trust_env=False, verify=LOCAL_TLS, timeout=30)
        assert resp.status_code < 300, resp.text
        return int(resp.headers["x-hookscope-request-id"])

    def get(self, rid: int) -> dict[str, Any]:
        data: dict[str, Any] = httpx.get(f"{self.server.url}/api/requests/{rid}",
            trust_env=False, verify=LOCAL_TLS).json()
        return data

    def raw(self, rid: int) -> bytes:
        return httpx.get(f"{self.server.url}/api/requests/{rid}/raw", trust_env=False, verify=LOCAL_TLS).content

    def open(self, page: Page, rid: int) -> None:
        """Open the inspector (once) and click the request's row; waits until the detail pane shows it."""
        inspect_url = f"{self.server.url}/e/{self.endpoint['id']}"
        if not page.url.startswith(inspect_url):
            page.goto(inspect_url)
        page.locator(f'#request-list [data-id="{rid}"]').click()
        page.locator(f'#detail-main .detail[data-rid="{rid}"]').wait_for()


@pytest.fixture
def inspector(ui_server: ServerProcess) -> Inspector:
    resp = httpx.post(f"{ui_server.url}/api/endpoints", json={"name": "detail"}, trust_env=False, verify=LOCAL_TLS)
    assert resp.status_code == 201, resp.text
    return Inspector(ui_server, resp.json())
