"""Tokens in logged URLs: `?token=<value>` becomes `?token=[redacted]` in every log line the server writes.

smee-client can only carry the server token in the stream URL (`/h/ID?token=...`, see app/smee.py), and
uvicorn's access log ("uvicorn.access") and websocket lines ("uvicorn.error") print the request line with its
query string; our own lines print forward and replay target URLs, which may carry a token of the user's own
dev server. Query parameters named `token` or `access_token` are rewritten in the message and its arguments,
before any handler formats them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

_TOKEN_PARAM = re.compile(r"(?i)(?<=[?&;])((?:access_)?token)=[^&;#\s\"']*")
REDACTED = "[redacted]"
# uvicorn's loggers, ours, and the root logger (whose handlers see whatever propagates to it).
LOGGERS = ("uvicorn.access", "uvicorn.error", "uvicorn", "hookscope", "")


def redact(text: str) -> str:
    if "token=" not in text.lower():
        return text
    return _TOKEN_PARAM.sub(rf"\1={REDACTED}", text)


class RedactTokens(logging.Filter):
    """Rewrites the record in place (so every handler after it sees the redacted text) and never drops it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        args = record.args
        if isinstance(args, tuple):
            record.args = tuple(_redacted(a) for a in args)
        elif isinstance(args, Mapping):
            record.args = {k: _redacted(v) for k, v in args.items()}
        return True


def _redacted(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value


def install_redaction(logger_names: Iterable[str] = LOGGERS) -> RedactTokens:
    """Attach one RedactTokens to the named loggers and to their handlers; call after uvicorn configured logging
    (uvicorn.Config does, replacing handlers). A logger's own filter covers records logged to it; a handler's
    covers records propagated from child loggers (hookscope.forward, ...), and logging.lastResort covers ours
    when no handler is configured. Idempotent."""
    redactor = RedactTokens()
    targets: list[logging.Filterer] = []
    for name in logger_names:
        logger = logging.getLogger(name)
        targets.append(logger)
        targets.extend(logger.handlers)
    if logging.lastResort is not None:
        targets.append(logging.lastResort)
    for target in targets:
        if not any(isinstance(f, RedactTokens) for f in target.filters):
            target.addFilter(redactor)
    return redactor
