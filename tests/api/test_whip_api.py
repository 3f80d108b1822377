"""WHIP as a publisher and a browser see it: the answer, its headers, CORS, and refusals."""

from __future__ import annotations

import pytest

from recorder.api.whip import OFFER_EXAMPLE
from tests.api.conftest import ALLOWED_ORIGIN, Client, bearer, problem_of
from tests.api.fakes import ANSWER_SDP, FakeService

WHIP = "/whip/room-1"
OFFER = OFFER_EXAMPLE  # complete: the edge checks every offer before the service sees it
SDP = {"Content-Type": "application/sdp"}
PCMU_ONLY = OFFER.replace("m=video 9 UDP/TLS/RTP/SAVPF 96", "m=audio 9 UDP/TLS/RTP/SAVPF 0") \
    .replace("a=rtpmap:96 VP8/90000", "a=rtpmap:0 PCMU/8000")


async def test_publish_answers_with_location_etag_and_ice_servers(
    client: Client, service: FakeService
) -> None:
    response = await client.post(WHIP + "?role=screen", data=OFFER, headers={**bearer(), **SDP})
    assert response.status == 201, await response.text()
    assert response.headers["Content-Type"] == "application/sdp"
    assert await response.text() == ANSWER_SDP
    location = response.headers["Location"]
    assert location.startswith("/whip/room-1/")
    session_id = location.rsplit("/", 1)[1]
    assert service.sessions[session_id] == ("room-1", "alice", "screen")
    assert response.headers["ETag"] == f'"{session_id}"'
    assert response.headers.getall("Link") == [
        '<stun:stun.example.net:3478>; rel="ice-server"',
        '<turn:turn.example.net:3478?transport=udp>; rel="ice-server"; username="user"; '
        'credential="pa\\"ss"; credential-type="password"',
        '<turns:turn.example.net:5349>; rel="ice-server"; username="user"; '
        'credential="pa\\"ss"; credential-type="password"',
    ]

    ended = await client.delete(location, headers=bearer())
    assert ended.status == 200
    assert service.sessions == {}
    await problem_of(await client.delete(location, headers=bearer()), 404)


async def test_role_defaults_to_camera_and_rejects_others(
    client: Client, service: FakeService
) -> None:
    response = await client.post(WHIP, data=OFFER, headers={**bearer(), **SDP})
    session_id = response.headers["Location"].rsplit("/", 1)[1]
    assert service.sessions[session_id][2] == "camera"
    await problem_of(await client.post(WHIP + "?role=boss", data=OFFER,
                                       headers={**bearer(), **SDP}), 400)


@pytest.mark.parametrize("content_type", ["text/plain", "application/json", None])
async def test_an_offer_that_is_not_application_sdp_is_415(
    client: Client, service: FakeService, content_type: str | None
) -> None:
    headers = bearer() | ({"Content-Type": content_type} if content_type else {})
    await problem_of(await client.post(WHIP, data=OFFER.encode(), headers=headers), 415)
    assert service.sessions == {}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param(b"", 400, id="empty"),
        pytest.param(b"\xff\xfe not utf-8", 400, id="not-utf8"),
        pytest.param(b"hello", 400, id="not-sdp"),  # the service finds no SDP in it
        pytest.param(b"v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=rtpmap:0 PCMU/8000\r\n", 400,
                     id="no-origin-no-ice"),
        pytest.param(PCMU_ONLY.encode(), 422, id="no-usable-codec"),
        pytest.param(OFFER.replace("m=video", "m=text").encode(), 422, id="text-section"),
        pytest.param(OFFER.replace("BUNDLE 0", "BUNDLE 7").encode(), 400, id="bundle-unknown-mid"),
        pytest.param(b"v=0\r\n" + b"a=x\r\n" * ((300 << 10) // 5), 413, id="oversized"),
    ],
)
async def test_unusable_offers_are_refused(
    client: Client, service: FakeService, body: bytes, status: int
) -> None:
    await problem_of(await client.post(WHIP, data=body, headers={**bearer(), **SDP}), status)
    assert service.sessions == {}


async def test_publishing_needs_a_token_for_the_room(client: Client) -> None:
    await problem_of(await client.post(WHIP, data=OFFER, headers=SDP), 401)
    await problem_of(await client.post(WHIP, data=OFFER,
                                       headers={**bearer(rooms=["room-2"]), **SDP}), 403)


async def test_trickle_patch_is_405_and_options_advertises_sdp(client: Client) -> None:
    patch = await client.patch(WHIP + "/abc", data="a=candidate:1",
                               headers={"Content-Type": "application/trickle-ice-sdpfrag"})
    await problem_of(patch, 405)
    assert patch.headers["Allow"] == "DELETE"
    options = await client.options(WHIP)
    assert options.status == 204
    assert options.headers["Accept-Post"] == "application/sdp"


async def test_a_preflight_from_an_allowed_origin_is_answered_without_a_token(
    client: Client,
) -> None:
    response = await client.options(WHIP, headers={
        "Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert response.headers["Access-Control-Allow-Methods"] == "POST"
    assert response.headers["Access-Control-Allow-Headers"] == "authorization, content-type"
    exposed = {h.strip() for h in response.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"Location", "Link", "ETag"} <= exposed
    assert response.headers["Accept-Post"] == "application/sdp"

    session = await client.options(WHIP + "/abc", headers={
        "Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": "DELETE"})
    assert session.status == 204
    assert session.headers["Access-Control-Allow-Methods"] == "DELETE"
    api = await client.options("/api/webrtc/rooms/room-1/recording/start", headers={
        "Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": "POST"})
    assert api.status == 204
    assert api.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN


async def test_other_origins_get_no_cors_headers(client: Client) -> None:
    preflight = await client.options(WHIP, headers={
        "Origin": "https://evil.example.com", "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in preflight.headers
    response = await client.post(WHIP, data=OFFER, headers={
        **bearer(), **SDP, "Origin": "https://evil.example.com"})
    assert "Access-Control-Allow-Origin" not in response.headers


async def test_browser_answers_expose_the_whip_headers(client: Client) -> None:
    response = await client.post(WHIP, data=OFFER, headers={
        **bearer(), **SDP, "Origin": ALLOWED_ORIGIN})
    assert response.status == 201
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert "Location" in response.headers["Access-Control-Expose-Headers"]
    assert "Origin" in response.headers["Vary"]
    refused = await client.post(WHIP, data=OFFER, headers={**SDP, "Origin": ALLOWED_ORIGIN})
    await problem_of(refused, 401)
    assert refused.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
