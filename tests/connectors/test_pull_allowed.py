"""RECORDER_PULL_ALLOWED_URLS: a node can keep its users from making it call any address.

The attacks on the list itself (userinfo, host suffixes, path segments, redirects, internal
addresses) are in tests/security/test_outbound.py.
"""

from __future__ import annotations

import aiohttp

from tests.support.api import call
from tests.support.daemon import run_daemon
from tests.support.redis_server import free_port


async def test_a_whep_url_outside_the_allowed_entries_is_refused_with_nothing_stored(
    redis_url: str,
) -> None:
    allowed = f"http://127.0.0.1:{free_port()}/"  # allowed, but nothing listens there
    with run_daemon(redis_url, pull_allowed_urls=f"https://sfu.example.com/,{allowed}",
                    ) as daemon:
        headers = daemon.headers("puller")
        api = f"{daemon.url}/api/webrtc/rooms/pull-guard"
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{api}/recording/start", headers=headers, json={
                    "source": {"type": "whep", "url": "http://127.0.0.1:6379/whep"}}) as resp:
                problem = await resp.json(content_type=None)
                assert resp.status == 400, problem
                assert "RECORDER_PULL_ALLOWED_URLS" in problem["detail"]
            listed = await call(http, "GET", f"{api}/recordings", headers, 200)
            assert listed["count"] == 0
            # an allowed entry goes on to the upstream (which fails here: 502, not 400)
            async with http.post(f"{api}/recording/start", headers=headers, json={
                    "source": {"type": "whep", "url": f"{allowed}whep"}}) as resp:
                assert resp.status == 502, await resp.text()


async def test_without_an_allow_list_every_whep_source_is_refused_saying_how_to_allow_one(
    redis_url: str,
) -> None:
    port = free_port()
    with run_daemon(redis_url) as daemon:
        headers = daemon.headers("puller")
        api = f"{daemon.url}/api/webrtc/rooms/pull-closed"
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{api}/recording/start", headers=headers, json={
                    "source": {"type": "whep", "url": f"http://127.0.0.1:{port}/whep"}}) as resp:
                problem = await resp.json(content_type=None)
                assert resp.status == 400, problem
                assert "RECORDER_PULL_ALLOWED_URLS is empty" in problem["detail"]
            listed = await call(http, "GET", f"{api}/recordings", headers, 200)
            assert listed["count"] == 0
