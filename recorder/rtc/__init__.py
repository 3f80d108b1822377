"""WebRTC edge: aiortc peers, WHIP SDP handling, ICE configuration."""
