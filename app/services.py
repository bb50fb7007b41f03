"""The composition root: every service of one server, built in one place and passed explicitly.

`build_services(settings)` only constructs (no I/O, no tasks), so the CLI can claim the database before uvicorn
binds; `run(services)` is the lifespan's half: it opens the store, starts the background work, and on exit stops it
in the reverse order. Handlers reach the services through `services_of(request)`, the one typed entry on
`app.state`; nothing is attached to a service after it is built.

Who needs whom (an arrow: "is given"):

    EventBus -> Store (emits after COMMIT) -> everything below reads it
    RelaySessions -> Passthrough (is anything going to deliver?), RelayHub (registers connections)
    Store's leases (PostgreSQL only) -> Passthrough (a relay connected to another instance delivers too)
    Passthrough -> Forwarder, RelayHub (offer a target's answer); CaptureApp (waits for it)
    CaptureFeed (bus + store) -> Forwarder, RelayHub, SmeeStream
    PendingWrites -> Forwarder, RelayHub
    Sender (SSRF guard + wire client) -> Forwarder, Replayer
    instance id (one per process) -> Forwarder, RelayHub (the owner of the leases they take: app/store/leases.py)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import HTTPConnection
from starlette.templating import Jinja2Templates

from app.delivery.feed import CaptureFeed
from app.delivery.forwarder import Forwarder
from app.delivery.pending_writes import PendingWrites
from app.delivery.relay import RelayHub
from app.delivery.relay_sessions import RelaySessions
from app.delivery.replay import Replayer
from app.delivery.retry import RetryPolicy
from app.delivery.sender import Sender
from app.delivery.ssrf import ForwardPolicy
from app.events.bus import EventBus
from app.ingest.passthrough import Passthrough
from app.ingest.smee import SmeeStream
from app.resources import resource_dir
from app.settings import Settings
from app.store import SQLiteStore, Store
from app.store.retention import default_retention_ceiling

log = logging.getLogger("hookscope")


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    # This process among the instances sharing the database: the owner named in its leases and status pages.
    instance: str
    templates: Jinja2Templates
    bus: EventBus
    store: Store
    feed: CaptureFeed
    sender: Sender
    writes: PendingWrites
    passthrough: Passthrough
    forwarder: Forwarder
    relays: RelayHub
    replayer: Replayer
    smee: SmeeStream


def new_instance_id() -> str:
    """Host, pid and 24 random bits, e.g. "web-1-4711-9f3a2c": readable in status pages, unique among the
    instances of one database even across restarts and containers that reuse a pid. At most 32 characters of
    [A-Za-z0-9_-] (the doorbell's instance grammar, so one id can name this process everywhere)."""
    host = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname().split(".")[0])[:16] or "host"
    return f"{host}-{os.getpid() % 10_000_000}-{secrets.token_hex(3)}"


def build_services(settings: Settings) -> Services:
    instance = new_instance_id()
    # The one path from a committed change to whatever reacts to it (docs/events.md): the store emits into it.
    bus = EventBus()
    store = _build_store(settings, bus, instance)
    feed = CaptureFeed(store, bus)
    sender = Sender(ForwardPolicy.from_allow(settings.forward_allow), settings.forward_timeout)
    sessions = RelaySessions()
    # On a shared database a relay connected to another instance may answer too (its lease says so).
    passthrough = Passthrough(store.cached_endpoint, sessions, store if settings.backend == "postgres" else None)
    writes = PendingWrites()
    forwarder = Forwarder(
        store, feed, sender, RetryPolicy.parse(settings.forward_retry), passthrough, writes, instance
    )
    relays = RelayHub(store, bus, feed, writes, passthrough, sessions, settings.relay_ping_interval, instance)
    # Listeners, not subscriptions: a passthrough waiter must exist, and a new target's worker start, in the
    # store's after-commit step, before any deliverer can see the capture (docs/events.md).
    bus.listen(passthrough.on_event)
    bus.listen(forwarder.on_event)
    return Services(
        settings=settings,
        instance=instance,
        templates=Jinja2Templates(directory=str(resource_dir("templates"))),
        bus=bus,
        store=store,
        feed=feed,
        sender=sender,
        writes=writes,
        passthrough=passthrough,
        forwarder=forwarder,
        relays=relays,
        replayer=Replayer(store, sender),
        smee=SmeeStream(store, feed, settings.token),
    )


def _build_store(settings: Settings, bus: EventBus, instance: str) -> Store:
    """The store `settings.db` names (`settings.backend`), emitting into `bus`; constructed only, not opened."""
    if settings.backend == "postgres":
        # Imported here: asyncpg costs ~60 ms at import, which every SQLite start-up (and each of the test suite's
        # server subprocesses) would otherwise pay for nothing.
        from app.store.postgres.store import PostgresStore

        return PostgresStore(
            str(settings.db),
            events=bus,
            durability=settings.durability,
            queue_size=settings.queue_size,
            retention_count=settings.retention_count,
            retention_age=settings.retention_age,
            instance=instance,
        )
    return SQLiteStore(
        Path(settings.db),
        events=bus,
        durability=settings.durability,
        queue_size=settings.queue_size,
        retention_count=settings.retention_count,
        retention_age=settings.retention_age,
    )


@contextlib.asynccontextmanager
async def run(services: Services) -> AsyncIterator[None]:
    """Open the store and start the background work; on exit stop it all, the store last (returns after the
    forwarder's pending delivery records are committed)."""
    async with contextlib.AsyncExitStack() as stack:
        await services.store.open()
        stack.push_async_callback(services.store.close)
        log.info("instance id %s", services.instance)
        # Runs after the workers and relays stopped, before the store closes: their queued records commit.
        stack.push_async_callback(services.writes.flush)
        janitor = asyncio.create_task(_janitor(services), name="hookscope-janitor")
        stack.push_async_callback(_cancel, janitor)
        endpoints = [ep for ep, _ in await services.store.list_endpoints()]
        await services.forwarder.start(endpoints)
        stack.push_async_callback(services.forwarder.stop)  # before the store closes: it flushes its writes
        stack.push_async_callback(services.relays.close_all)
        yield


async def _janitor(services: Services) -> None:
    """Retention: prune old requests on a schedule (and once at start). Captures a relay or forward target still
    owes are kept up to the ceiling. The store's RequestsRemoved events tell open pages and connected relays what
    went; this only logs."""
    settings = services.settings
    ceiling = settings.retention_ceiling
    if ceiling is None:
        ceiling = default_retention_ceiling(settings.retention_count)
    while True:
        try:
            result = await services.store.prune(time.time(), ceiling)
            if result.removed:
                log.info("retention removed %d requests", result.removed)
            for s in result.skipped:
                log.warning("retention ceiling (%d per endpoint) reached: %d capture(s) of endpoint %s pruned "
                            "before %s %s received them (%d in all)", ceiling, s.count, s.endpoint_id, s.kind,
                            s.name, s.total)
        except Exception:
            log.exception("retention pass failed")
        await asyncio.sleep(settings.janitor_interval)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def services_of(conn: HTTPConnection) -> Services:
    """The services of the server handling this request or websocket."""
    services = conn.app.state.services
    if not isinstance(services, Services):  # only a server built by app.main gets here
        raise RuntimeError("no services on this application")
    return services
