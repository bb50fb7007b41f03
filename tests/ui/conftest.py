"""Browser tests: Debian's Chromium driven by Playwright (sync API) against a real `hookscope serve` process.

Without /usr/bin/chromium these tests skip, unless HOOKSCOPE_REQUIRE_BROWSER=1 (set by .ci/run) makes that a
failure. Every page is watched: dialogs (alert/confirm/prompt), uncaught page errors and any request that leaves
127.0.0.1 are recorded in `Watch`, so XSS tests can assert that nothing ran and nothing phoned home.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support import ServerProcess

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


# Module scope, not session: the sync API keeps an event loop running in this thread while it is started, and a
# pytest-asyncio test collected after a browser module would then fail with "cannot be called from a running
# event loop". One Chromium start per module costs well under a second.
@pytest.fixture(scope="module")
def playwright_instance() -> Iterator[Playwright]:
    missing = _browser_missing()
    if missing:
        if os.environ.get("HOOKSCOPE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser tests required but {missing}")
        pytest.skip(missing)
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
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


def watch_context(context: BrowserContext, watch: Watch) -> None:
    def on_request(route):  # type: ignore[no-untyped-def]
        host = urlsplit(route.request.url).hostname or ""
        if route.request.url.startswith(("data:", "blob:")) or host in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            watch.foreign_requests.append(route.request.url)
            route.abort()

    context.route("**/*", on_request)

    def on_page(page: Page) -> None:
        def on_dialog(dialog):  # type: ignore[no-untyped-def]
            watch.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", on_dialog)
        page.on("pageerror", lambda exc: watch.page_errors.append(str(exc)))
        page.on("console", lambda msg: watch.console_errors.append(msg.text) if msg.type == "error" else None)

    context.on("page", on_page)


@pytest.fixture
def ui_server(tmp_path: Path) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path / "ui.db") as srv:
        yield srv


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
        resp = httpx.request(method, url, headers=headers, content=body, trust_env=False, timeout=30)
        assert resp.status_code < 300, resp.text
        return int(resp.headers["x-hookscope-request-id"])

    def get(self, rid: int) -> dict[str, Any]:
        data: dict[str, Any] = httpx.get(f"{self.server.url}/api/requests/{rid}", trust_env=False).json()
        return data

    def raw(self, rid: int) -> bytes:
        return httpx.get(f"{self.server.url}/api/requests/{rid}/raw", trust_env=False).content

    def open(self, page: Page, rid: int) -> None:
        """Open the inspector (once) and click the request's row; waits until the detail pane shows it."""
        inspect_url = f"{self.server.url}/e/{self.endpoint['id']}"
        if not page.url.startswith(inspect_url):
            page.goto(inspect_url)
        page.locator(f'#request-list [data-id="{rid}"]').click()
        page.locator(f'#detail-main .detail[data-rid="{rid}"]').wait_for()


@pytest.fixture
def inspector(ui_server: ServerProcess) -> Inspector:
    resp = httpx.post(f"{ui_server.url}/api/endpoints", json={"name": "detail"}, trust_env=False)
    assert resp.status_code == 201, resp.text
    return Inspector(ui_server, resp.json())
