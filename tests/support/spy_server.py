"""HTTP servers on loopback that record every request they get: the internal services and
upstreams of the security tests, which must see exactly the requests a test expects."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from aiohttp import web

from tests.support.serve import start_app

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Spy:
    """An HTTP server on loopback that records every request it gets."""

    def __init__(self, handler: Handler, port: int = 0) -> None:
        self.handler = handler
        self.port = port
        self.seen: list[str] = []
        self._runner: web.AppRunner | None = None

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(f"{request.method} {request.path_qs}")
        return await self.handler(request)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner, url = await start_app(app, port=self.port)
        self.port = int(url.rsplit(":", 1)[1])

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@asynccontextmanager
async def spies(*handlers: Handler) -> AsyncIterator[list[Spy]]:
    servers = [Spy(h) for h in handlers]
    for server in servers:
        await server.start()
    try:
        yield servers
    finally:
        for server in servers:
            await server.close()
