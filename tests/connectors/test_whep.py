"""The WHEP client against a WHEP server double, over real HTTP and real WebRTC on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiortc import RTCIceServer
from yarl import URL

from recorder.core.errors import SourceFailed
from recorder.core.urls import AllowList
from recorder.outbound import Outbound
from recorder.rtc.pull import Pull, PullTiming
from recorder.rtc.receiver import ReceiverPeer
from recorder.rtc.whep import WhepUpstream
from tests.connectors.sink import RecordingSink
from tests.support.redis_server import free_port
from tests.support.resolver import MappedResolver
from tests.support.whep_server import TOKEN, WhepServer, serve_whep

FAST = PullTiming(connect_timeout=20, stall_seconds=2.0, backoff_first=0.2, backoff_max=1.0)




class Clients:
    """Outbound clients whose allow-list names the test server they are made for."""

    def __init__(self) -> None:
        self.made: list[Outbound] = []

    def allowing(self, url: str) -> Outbound:
        resolver = MappedResolver({"stun.example.net": ["93.184.216.34"],
                                   "turn.example.net": ["93.184.216.35"]})
        outbound = Outbound(AllowList.parse([str(URL(url).origin())]), resolver)
        self.made.append(outbound)
        return outbound


@pytest.fixture
async def http() -> AsyncIterator[Clients]:
    clients = Clients()
    yield clients
    for outbound in clients.made:
        await outbound.close()


def pull_of(url: str, http: Clients, sink: RecordingSink,
            token: str | None = TOKEN, timing: PullTiming = FAST) -> Pull:
    return Pull("rec-1", WhepUpstream(url, token, http.allowing(url)), [], sink, timing)


@pytest.mark.parametrize("mode", ["answer", "counter", "offer201"])
async def test_pull_receives_audio_and_video_and_deletes_the_session(
    http: Clients, mode: str
) -> None:
    server = WhepServer(mode=mode)
    sink = RecordingSink()
    async with serve_whep(server) as url:
        pull = pull_of(url, http, sink)
        await pull.start()
        await sink.until(lambda: sink.frames_of("video") >= 10 and sink.frames_of("audio") >= 10)
        [session] = server.live_sessions
        await pull.close()
        assert server.deletes == [session.session_id]

    post = server.posts[0]
    assert post["Authorization"] == f"Bearer {TOKEN}"
    assert post["Content-Type"] == "application/sdp"
    assert {(s.kind, s.codec) for s, _ in sink.sources} == {("video", "vp8"), ("audio", "opus")}
    assert all(replaces is None for _, replaces in sink.sources)
    # The server's offer (406 counter-offer, or a 201 carrying an offer) is answered by PATCH.
    assert server.patches == ([] if mode == "answer" else [session.session_id])


async def test_refusals_and_unreachable_servers_fail_with_the_upstream_status(
    http: Clients,
) -> None:
    server = WhepServer()
    async with serve_whep(server) as url:
        with pytest.raises(SourceFailed) as wrong_token:
            await pull_of(url, http, RecordingSink(), token="wrong").start()
        server.refuse = (409, 3)  # nothing published yet
        with pytest.raises(SourceFailed) as conflict:
            await pull_of(url, http, RecordingSink()).start()
    assert wrong_token.value.upstream_status == 401
    assert conflict.value.upstream_status == 409
    assert "409" in conflict.value.detail

    with pytest.raises(SourceFailed) as unreachable:
        await pull_of(f"http://127.0.0.1:{free_port()}/whep/live", http, RecordingSink()).start()
    assert unreachable.value.upstream_status is None
    assert "unreachable" in unreachable.value.detail


async def test_malformed_sdp_fails_and_the_session_is_deleted(
    http: Clients,
) -> None:
    server = WhepServer(mode="malformed")
    async with serve_whep(server) as url:
        with pytest.raises(SourceFailed) as failed:
            await pull_of(url, http, RecordingSink()).start()
        [session] = server.sessions.values()
    assert failed.value.upstream_status == 201
    assert "SDP" in failed.value.detail
    assert server.deletes == [session.session_id]  # nothing left behind upstream


async def test_ice_servers_from_link_headers_serve_the_counter_offer_and_later_sessions(
    http: Clients,
) -> None:
    """aiortc gathers before the POST, so announced servers serve every later description."""
    links = ('<stun:stun.example.net:3478>; rel="ice-server"',
             '<turn:turn.example.net:3478?transport=udp>; rel="ice-server"; '
             'username="user"; credential="pa,ss"; credential-type="password"')
    server = WhepServer(mode="counter", ice_links=links)
    given: list[list[RTCIceServer]] = []

    def make_peer(learned: list[RTCIceServer]) -> ReceiverPeer:
        given.append(list(learned))
        return ReceiverPeer("test", [], lambda track, frame: None)  # stays on loopback

    async with serve_whep(server) as url:
        upstream = WhepUpstream(url, TOKEN, http.allowing(url))
        session = await upstream.open(make_peer)
        await session.close()
        session = await upstream.open(make_peer)
        await session.close()

    assert given[0] == []  # the first offer: nothing announced yet
    # announced by name, given pinned to the address that was checked
    announced = [RTCIceServer(urls="stun:93.184.216.34:3478"),
                 RTCIceServer(urls="turn:93.184.216.35:3478?transport=udp",
                              username="user", credential="pa,ss")]
    assert given[1:] == [announced, announced, announced]


async def test_a_cut_connection_reconnects_as_new_sources_that_replace_the_old(
    http: Clients,
) -> None:
    server = WhepServer()
    sink = RecordingSink()
    async with serve_whep(server) as url:
        pull = pull_of(url, http, sink)
        await pull.start()
        await sink.until(lambda: sink.frames_of("video", 1) >= 5)
        await server.cut(2.0)
        await sink.until(lambda: sink.events == ["lost", "restored"])
        await sink.until(lambda: sink.frames_of("video", 2) >= 5
                         and sink.frames_of("audio", 2) >= 5)
        await pull.close()

    assert pull.sessions_opened == 2
    first = {s.kind: s.source_id for s, _ in sink.sources[:2]}
    second = {s.kind: (s.source_id, replaced) for s, replaced in sink.sources[2:]}
    assert first == {"audio": "rec-1/1/audio", "video": "rec-1/1/video"}
    assert second == {"audio": ("rec-1/2/audio", "rec-1/1/audio"),
                      "video": ("rec-1/2/video", "rec-1/1/video")}
    assert len(server.deletes) == 2  # the broken session and the last one


async def test_media_that_stops_on_an_open_connection_is_reconnected(
    http: Clients,
) -> None:
    server = WhepServer()
    sink = RecordingSink()
    async with serve_whep(server) as url:
        pull = pull_of(url, http, sink)
        await pull.start()
        await sink.until(lambda: sink.frames_of("audio", 1) >= 5)
        server.stall()
        await sink.until(lambda: sink.events == ["lost"])
        server.unstall()
        await sink.until(lambda: sink.events == ["lost", "restored"])
        await pull.close()
    assert pull.sessions_opened >= 2


async def test_an_encoded_pull_hands_frames_on_undecoded_and_keyframes_come_on_request(
    http: Clients,
) -> None:
    server = WhepServer()
    sink = RecordingSink()
    async with serve_whep(server) as url:
        pull = Pull("rec-1", WhepUpstream(url, TOKEN, http.allowing(url)), [], sink, FAST,
                    encoded=True)
        await pull.start()
        try:
            await sink.until(lambda: sink.frames_of("video") >= 20
                             and sink.frames_of("audio") >= 20)
            sources = {s.kind: s.source_id for s, _ in sink.sources}
            video, audio = sources["video"], sources["audio"]
            assert sink.encoded[video] == sink.frames[video]  # nothing came decoded
            assert sink.encoded[audio] == sink.frames[audio]
            [session] = server.live_sessions
            asked = session.keyframe_requests
            before = sink.keyframes[video]
            assert before >= 1  # the upstream's first picture
            pull.request_keyframe(audio)  # audio has no keyframes to ask for: ignored
            pull.request_keyframe(video)
            await sink.until(lambda: sink.keyframes[video] > before)
            assert session.keyframe_requests == asked + 1  # the request reached the sender
            peer = pull._peer
            assert peer is not None
            assert peer.decoded_frames == 0
        finally:
            await pull.close()
