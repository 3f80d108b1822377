"""ICE servers from WHIP/WHEP `Link` headers (RFC 8288 syntax, RFC 9725 relation)."""

from __future__ import annotations

from aiortc import RTCIceServer

from recorder.rtc.links import ice_servers_from_links


def test_ice_server_links_in_one_or_many_headers() -> None:
    headers = [
        '<stun:stun.example.net>; rel="ice-server", '
        '<https://example.net/whep/ext>; rel="urn:ietf:params:whep:ext:example", '
        '<turns:turn.example.net:443?transport=tcp>; rel=ice-server; username="a;b"; '
        'credential="x,\\"y\\""; credential-type="password"',
        '<turn:turn.example.net>; rel="ice-server"; username=u; username=ignored',
        '<http://not-ice.example.net>; rel="ice-server"',  # not a STUN/TURN URL
        'garbage without a link',
    ]
    assert ice_servers_from_links(headers) == [
        RTCIceServer(urls="stun:stun.example.net"),
        RTCIceServer(urls="turns:turn.example.net:443?transport=tcp", username="a;b",
                     credential='x,"y"'),
        RTCIceServer(urls="turn:turn.example.net", username="u"),
    ]
