"""recorderd on a Redis that only speaks TLS (`rediss://`), trusting a local certificate
through the URL's `ssl_ca_certs` (docs/operations.md, "TLS to Redis")."""

from __future__ import annotations

import aiohttp

from tests.support.api import call
from tests.support.daemon import run_daemon
from tests.support.redis_processes import tls_redis_process


async def test_a_node_records_through_a_tls_only_redis() -> None:
    room = "room-tls"
    with tls_redis_process() as (server, cert):
        url = f"rediss://127.0.0.1:{server.port}/0?ssl_ca_certs={cert}"
        with run_daemon(url) as daemon:
            owner = daemon.headers("user-t", rooms=[room])
            rooms_url = f"{daemon.url}/api/webrtc/rooms/{room}"
            async with aiohttp.ClientSession() as http:
                started = await call(http, "POST", f"{rooms_url}/recording/start", owner, 201)
                base = f"{rooms_url}/recording/{started['recording_id']}"
                assert (await call(http, "GET", f"{base}/status", owner))["status"] == "pending"
                stopped = await call(http, "POST", f"{base}/stop", owner, 200)
                assert stopped["status"] == "cancelled"  # stopped before any media
                async with http.get(f"{daemon.url}/readyz") as resp:
                    assert resp.status == 200, await resp.text()
