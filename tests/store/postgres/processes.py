"""`hookscope serve` processes on one PostgreSQL database, for the multi-instance tests."""

from __future__ import annotations

import asyncio
import signal

from tests.support import ServerProcess


async def start_instance(dsn: str) -> ServerProcess:
    srv = ServerProcess(dsn)
    await asyncio.to_thread(srv.start, 60.0)
    return srv


async def start_instances(dsn: str, n: int) -> list[ServerProcess]:
    """n instances started at once (as a deployment does); when one fails to start, the others are stopped."""
    servers = [ServerProcess(dsn) for _ in range(n)]
    results = await asyncio.gather(*(asyncio.to_thread(s.start, 60.0) for s in servers), return_exceptions=True)
    failed = [r for r in results if isinstance(r, BaseException)]
    if failed:
        await stop_instances(servers)
        raise failed[0]
    return servers


async def stop_instance(srv: ServerProcess) -> str:
    """SIGTERM (when still running) and check a clean shutdown; a killed server is only reaped. Returns its log."""
    if srv.proc is None:
        return ""
    killed = srv.proc.poll() is not None
    code = await asyncio.to_thread(srv.stop)
    assert srv.proc.stderr is not None
    log = srv.proc.stderr.read().decode(errors="replace")
    srv.__exit__()
    if not killed:
        assert code in (0, -signal.SIGTERM) and "Traceback" not in log, log
    return log


async def stop_instances(servers: list[ServerProcess]) -> list[str]:
    """stop_instance for each that was started; returns their logs."""
    return [await stop_instance(srv) for srv in servers if srv.proc is not None]
