"""The JSON API, one module per resource; `routes` is all of them, in the order the app tries them.

Starlette answers with the first route whose path and method match, so order matters only where paths overlap.
No path of one module matches a route of another (tests/web/api/test_routes.py): the order between modules
changes nothing, and each module keeps the order of its own routes. Modules here import app/web's helpers
(params, lookup, urls), never each other.
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from app.web import openapi
from app.web.api import deliveries, endpoints, forwarding, health, relays, replays, requests, signatures

MODULES = (health, openapi, endpoints, requests, signatures, deliveries, replays, relays, forwarding)

routes: list[BaseRoute] = [route for module in MODULES for route in module.routes]
