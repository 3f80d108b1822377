"""The Cloudflare Realtime client against the API double, over real HTTP and real WebRTC."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from recorder.core.errors import SourceFailed
from recorder.rtc.cloudflare import CloudflareApi, CloudflareUpstream
from recorder.rtc.pull import Pull, PullTiming
from tests.connectors.cloudflare_api import APP_ID, APP_SECRET, CloudflareDouble, serve_cloudflare
from tests.connectors.sink import RecordingSink
from tests.support.publisher import SharedClock, SyntheticAudio, SyntheticVideo

PUBLISHER = "5f1c0a7e9b2d4e6f8a0b1c2d3e4f5a6b"
TIMING = PullTiming(connect_timeout=20)


def publish(double: CloudflareDouble) -> None:
    clock = SharedClock()
    double.publish(PUBLISHER, {"cam": lambda: SyntheticVideo(clock, 640, 360, 15),
                               "mic": lambda: SyntheticAudio(clock)})


@pytest.fixture
async def served() -> AsyncIterator[tuple[CloudflareDouble, str, aiohttp.ClientSession]]:
    double = CloudflareDouble(mutation_delay=0.2)
    publish(double)
    async with serve_cloudflare(double) as base, aiohttp.ClientSession() as http:
        yield double, base, http


async def test_pulls_the_named_tracks_and_closes_them_on_stop(
    served: tuple[CloudflareDouble, str, aiohttp.ClientSession],
) -> None:
    double, base, http = served
    api = CloudflareApi(http, base, APP_ID, APP_SECRET)
    sink = RecordingSink()
    pull = Pull("rec-cf", CloudflareUpstream(api, APP_ID, PUBLISHER, ("cam", "mic")), [],
                sink, TIMING)
    await pull.start()
    await sink.until(lambda: sink.frames_of("video") >= 10 and sink.frames_of("audio") >= 10)
    [ours] = [s for s in double.sessions.values() if s.session_id != PUBLISHER]
    await pull.close()

    assert [(method, path.replace(ours.session_id, "{id}"), status)
            for method, path, status in double.calls] == [
        ("POST", "/sessions/new", 201),
        ("POST", "/sessions/{id}/tracks/new", 200),
        ("PUT", "/sessions/{id}/renegotiate", 200),
        ("PUT", "/sessions/{id}/tracks/close", 200),
    ]
    assert {t.track_name for t in ours.tracks} == {"cam", "mic"}
    assert not any(t.active for t in ours.tracks)  # closed on stop
    assert {(s.kind, s.codec, s.publisher_id) for s, _ in sink.sources} == {
        ("video", "vp8", PUBLISHER), ("audio", "opus", PUBLISHER)}


async def test_a_track_error_inside_a_200_fails_the_pull(
    served: tuple[CloudflareDouble, str, aiohttp.ClientSession],
) -> None:
    _, base, http = served
    api = CloudflareApi(http, base, APP_ID, APP_SECRET)
    upstream = CloudflareUpstream(api, APP_ID, PUBLISHER, ("cam", "screen"))
    with pytest.raises(SourceFailed) as failed:
        await Pull("rec-cf", upstream, [], RecordingSink(), TIMING).start()
    assert failed.value.upstream_status == 200
    assert failed.value.detail == "cloudflare: track(s) refused: screen"  # not the SFU's words


async def test_a_wrong_secret_is_refused_with_the_upstream_status(
    served: tuple[CloudflareDouble, str, aiohttp.ClientSession],
) -> None:
    _, base, http = served
    upstream = CloudflareUpstream(CloudflareApi(http, base, APP_ID, "not-the-secret"), APP_ID,
                                  PUBLISHER, ("cam",))
    with pytest.raises(SourceFailed) as failed:
        await Pull("rec-cf", upstream, [], RecordingSink(), TIMING).start()
    assert failed.value.upstream_status == 401
    # the status and a fixed reason, never the SFU's own words
    assert failed.value.detail == "cloudflare POST sessions/new answered 401"


async def test_mutations_of_one_session_are_serialized(
    served: tuple[CloudflareDouble, str, aiohttp.ClientSession],
) -> None:
    double, base, http = served
    api = CloudflareApi(http, base, APP_ID, APP_SECRET)
    session_id = await api.new_session()
    url = f"{base}/apps/{APP_ID}/sessions/{session_id}/tracks/close"
    body = {"tracks": [{"mid": "0"}], "force": True}
    headers = {"Authorization": f"Bearer {APP_SECRET}"}

    async def raw() -> int:
        async with http.put(url, json=body, headers=headers) as response:
            return response.status

    # The SFU refuses overlapping mutations...
    assert sorted(await asyncio.gather(raw(), raw(), raw())) == [200, 406, 406]
    # ...ours never overlap each other,
    before = len(double.calls)
    results = await asyncio.gather(*(api.close_tracks(session_id, ["0"]) for _ in range(3)))
    assert [status for _, _, status in double.calls[before:]] == [200, 200, 200]
    assert all(r["tracks"][0]["errorCode"] == "close_track_error" for r in results)
    # ...and one that meets someone else's mutation is retried until it goes through.
    other = asyncio.create_task(raw())
    await asyncio.sleep(0.05)
    before = len(double.calls)
    await api.close_tracks(session_id, ["0"])
    assert await other == 200
    ours = [status for _, _, status in double.calls[before:]]
    assert ours[0] == 406
    assert ours[-1] == 200
