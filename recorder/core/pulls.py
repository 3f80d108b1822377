"""Where a pulled recording's media comes from, as the room is told (the credentials included,
which the stored state never keeps: docs/usage.md, "Sources and publishers")."""

from __future__ import annotations

from dataclasses import dataclass, field

from recorder.core.models import WhepSource


@dataclass(frozen=True)
class CloudflarePull:
    """Pull named tracks of a publisher's session from a Cloudflare Realtime SFU app."""

    api_base: str  # RECORDER_CF_REALTIME_API_BASE
    app_id: str
    session_id: str  # the publisher's
    track_names: tuple[str, ...]
    app_secret: str = field(default="", repr=False)
    data_channels: tuple[str, ...] = ()  # recorded as events under their names


# A WHEP source is the request's own model (URL and token); a Cloudflare one is resolved
# against the node's settings (API base, app id and secret).
PullSource = WhepSource | CloudflarePull
