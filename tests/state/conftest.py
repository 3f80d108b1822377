"""Every store test runs twice: against a real redis-server and against the embedded store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as aioredis

from recorder.state import EMBEDDED, KeySpace, StateStore, connect

STATE_TTL = 604800
INDEX_TTL = 86400
PREFIX = "test:rec:"

ClientFactory = Callable[[], Awaitable[aioredis.Redis]]
StoreFactory = Callable[[], Awaitable[StateStore]]


@pytest.fixture(params=["redis", "embedded"])
async def new_client(
    request: pytest.FixtureRequest, redis_url: str
) -> AsyncIterator[ClientFactory]:
    """Makes independent clients (as separate nodes would have) of one clean store."""
    url = redis_url if request.param == "redis" else EMBEDDED
    clients: list[aioredis.Redis] = []

    async def make() -> aioredis.Redis:
        client = await connect(url)
        clients.append(client)
        return client

    first = await make()
    await first.flushall()
    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
async def raw(new_client: ClientFactory) -> aioredis.Redis:
    """A client for looking at keys directly."""
    return await new_client()


@pytest.fixture
def keys() -> KeySpace:
    return KeySpace(PREFIX)


@pytest.fixture
def new_store(new_client: ClientFactory, keys: KeySpace) -> StoreFactory:
    async def make() -> StateStore:
        return StateStore(await new_client(), keys, STATE_TTL, INDEX_TTL)

    return make


@pytest.fixture
async def store(new_store: StoreFactory) -> StateStore:
    return await new_store()
