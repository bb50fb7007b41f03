"""Text that is not a sequence of Unicode scalar values: lone surrogates (U+D800..U+DFFF).

Python strings can hold them (JSON's `"\\ud800"` escape, or `json.loads` of bytes, which decodes with
`surrogatepass`), but nothing downstream can: SQLite, UTF-8 responses and latin-1 header encoding all raise on
them. The API refuses them at the edge (`find_surrogate`, used by `app.web.params.read_json`); data that may already
hold them (settings stored by an older version, JSON from a relay client) is repaired with `scrub`, which
replaces each one with U+FFFD.
"""

from __future__ import annotations

import json
import re
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
REPLACEMENT = "\ufffd"

# A path is built only when something is wrong: (parent path, step) pairs, rendered by _render.
_Path = tuple[Any, ...]


def has_surrogate(text: str) -> bool:
    return not text.isascii() and _SURROGATE.search(text) is not None


def scrub_text(text: str) -> str:
    return _SURROGATE.sub(REPLACEMENT, text) if has_surrogate(text) else text


def find_surrogate(value: Any) -> str | None:
    """Where the first string holding a surrogate is in decoded JSON, as a path like `forward_targets[0]` or
    `verify.header` (a key holding one is named as `<key in verify>`); None when there is none.

    Iterative: decoded JSON can be as deep as the parser allows, deeper than a recursive walk may go.
    """
    stack: list[tuple[Any, _Path]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if has_surrogate(item):
                return _render(path)
        elif isinstance(item, dict):
            # Reversed so the walk reports the first offender in document order.
            for key, child in reversed(list(item.items())):
                if isinstance(key, str) and has_surrogate(key):
                    stack.append((key, (path, ("key", None))))
                else:
                    stack.append((child, (path, ("field", key))))
        elif isinstance(item, list):
            stack.extend((child, (path, ("index", i))) for i, child in reversed(list(enumerate(item))))
    return None


def _render(path: _Path) -> str:
    steps: list[tuple[str, Any]] = []
    while path:
        path, step = path
        steps.append(step)
    out = ""
    for kind, key in reversed(steps):
        if kind == "index":
            out += f"[{key}]"
        elif kind == "key":
            return f"<a key in {out}>" if out else "<a top-level key>"
        elif _PLAIN_KEY.match(str(key)):
            out += f".{key}" if out else str(key)
        else:
            # Shown as a JSON string so odd keys stay readable and unambiguous (no surrogates here: checked).
            out += "[" + json.dumps(str(key)[:50]) + "]"
    return out or "<the body>"


def scrub(value: Any) -> Any:
    """The same JSON-like value with every surrogate (in strings and keys) replaced by U+FFFD. Returns the
    value itself when there is nothing to replace, so the common case allocates nothing."""
    if find_surrogate(value) is None:
        return value
    return _scrubbed(value)


def _scrubbed(value: Any) -> Any:
    # Only reached for data that does hold a surrogate (rare, small: stored settings); recursion is fine there,
    # and stored JSON was produced by us, so its depth is bounded by what the API accepted.
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {scrub_text(k) if isinstance(k, str) else k: _scrubbed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrubbed(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_scrubbed(v) for v in value)
    return value
