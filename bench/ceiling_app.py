#!/usr/bin/env python3
"""The bare-ASGI ceiling for bench/ingest.py: read the whole body, answer 200 with a small JSON body.

It stores nothing and looks at nothing, so its rate is what the HTTP stack alone carries on this machine. It runs
on the uvicorn that `hookscope serve` runs, with the same loop (uvloop), parser (httptools) and logging (no access
log); `--guarded` also puts hookscope's own connection guard (app/server/http_guard.py: head and body timeouts,
connection limit) under it, which shows what the guard itself costs.

    python bench/ceiling_app.py --port 9000 [--guarded]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

BODY = b'{"ok":true}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--guarded", action="store_true", help="run under hookscope's HTTP guard too")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    import uvicorn

    from app.server.http_guard import uvicorn_config
    from app.settings import Settings

    settings = Settings(host="127.0.0.1", port=args.port, log_level="warning")
    if args.guarded:
        config = uvicorn_config(app, settings)
    else:
        # What uvicorn_config sets, without our protocol class: uvloop and httptools as `hookscope serve` picks
        # them ("auto" resolves to both when installed), no access log, no proxy-headers middleware.
        config = uvicorn.Config(app, host="127.0.0.1", port=args.port, loop="auto", http="httptools",
                                access_log=False, log_level="warning", server_header=False, proxy_headers=False)
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
