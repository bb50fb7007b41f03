"""The relays and forwarding strip shows how many captures retention pruned before a relay or forward target got
them (past --retention-ceiling), in a real browser against a real `hookscope serve`."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect
from websockets.sync.client import connect

from tests.support import LOCAL_TLS, ServerProcess, free_port
from tests.ui.conftest import Watch
from tests.ui.test_provider_ui import create_endpoint, mount


def test_relays_strip_shows_captures_skipped_by_retention(tmp_path: Path, page: Page, watch: Watch) -> None:
    args = ["--retention-count", "5", "--retention-ceiling", "12", "--forward-retry", "50ms,100ms,1h"]
    server = ServerProcess(tmp_path / "ret.db", args)
    with server:
        ep = create_endpoint(server, name="retained")
        down = f"http://127.0.0.1:{free_port()}/down"
        resp = httpx.patch(f"{server.url}/api/endpoints/{ep['id']}", json={"forward_targets": [down]},
                           trust_env=False, verify=LOCAL_TLS)
        assert resp.status_code == 200, resp.text
        # The relay connects once (its cursor starts at "now"), then goes away.
        with connect(f"ws://127.0.0.1:{server.port}/api/endpoints/{ep['id']}/relay?name=laptop") as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "hello"
        for i in range(20):
            assert httpx.post(f"{server.url}/h/{ep['id']}", content=f"c{i}",
                trust_env=False, verify=LOCAL_TLS).status_code == 200
        # Retention runs once at start (then every 30 s): a restart is a deterministic prune.
        server.stop()
        if server.proc is not None and server.proc.stderr is not None:
            server.proc.stderr.close()
        server.start()
        mount(page, server, ep["id"])
        chip = page.locator('#endpoint-panels [data-relay="laptop"]')
        expect(chip.locator(".hs-relay-state")).to_have_text("disconnected")
        expect(chip.locator(".hs-skipped")).to_have_text("skipped 8 (pruned)")
        expect(chip.locator(".hs-relay-pending")).to_have_text("12 pending")
        fwd = page.locator(f'#endpoint-panels [data-target="{down}"]')
        expect(fwd.locator(".hs-skipped")).to_have_text("skipped 8 (pruned)")
        # Text only: the count is a text node in a span, nothing parsed as markup.
        assert chip.locator(".hs-skipped").evaluate("n => n.childNodes.length === 1 && n.firstChild.nodeType") == 3
    watch.assert_clean()
