"""The API package's layout: its modules' routes do not overlap, and no web module imports an API module."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from starlette.routing import BaseRoute, Match, Route, WebSocketRoute

from app.web import api
from tests.support import REPO

WEB = REPO / "app" / "web"


def _example_scope(route: BaseRoute) -> dict[str, object]:
    """A request this route takes: each path parameter filled with a plain segment."""
    if isinstance(route, Route):
        path = re.sub(r"\{[^}]+\}", "x1", route.path)
        return {"type": "http", "path": path, "root_path": "", "method": sorted(route.methods or {"GET"})[0]}
    assert isinstance(route, WebSocketRoute), route
    return {"type": "websocket", "path": re.sub(r"\{[^}]+\}", "x1", route.path), "root_path": ""}


def test_routes_are_the_modules_routes_in_order() -> None:
    assert api.routes == [route for module in api.MODULES for route in module.routes]


def test_no_route_of_one_module_matches_a_path_of_another() -> None:
    """What makes the order of the modules irrelevant: a request reaches one module whatever the order."""
    overlaps = []
    for module in api.MODULES:
        for route in module.routes:
            scope = _example_scope(route)
            for other in api.MODULES:
                if other is module:
                    continue
                for candidate in other.routes:
                    match, _ = candidate.matches(scope)
                    if match is not Match.NONE:
                        overlaps.append((module.__name__, scope["path"], other.__name__))
    assert overlaps == []


def _imports(path: Path) -> set[str]:
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
    return imported


def test_web_modules_import_helpers_never_api_modules() -> None:
    """pages, live and the API modules share params/lookup/urls; none reaches into an API module."""
    offenders = {}
    for path in sorted([*WEB.glob("*.py"), *(WEB / "api").glob("*.py")]):
        if path == WEB / "api" / "__init__.py":
            continue
        reaching = {name for name in _imports(path) if name == "app.web.api" or name.startswith("app.web.api.")}
        if reaching:
            offenders[str(path.relative_to(REPO))] = sorted(reaching)
    assert offenders == {}
