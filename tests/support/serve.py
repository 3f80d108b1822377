"""Test servers: an aiohttp app on a free loopback port, the same way for every double."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web


async def start_app(app: web.Application, host: str = "127.0.0.1", port: int = 0,
                    **runner_options: Any) -> tuple[web.AppRunner, str]:
    """Serve `app` (on a port the system picks unless given); returns the runner (to clean
    up) and the base URL."""
    runner = web.AppRunner(app, access_log=None, **runner_options)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner, f"http://{host}:{runner.addresses[0][1]}"


@asynccontextmanager
async def serving(app: web.Application, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Yields the base URL while `app` is served."""
    runner, url = await start_app(app, host)
    try:
        yield url
    finally:
        await runner.cleanup()
