"""Who sends a source: what a layout needs to know about a track beyond its kind.

Kept apart from the heavy media modules so the room can name publishers without
importing PyAV.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

CAMERA: Final = "camera"
SCREEN: Final = "screen"


@dataclass(frozen=True)
class Publisher:
    """One publisher connection (a WHIP session) and who it is.

    ``composite`` gives the first ``screen`` the large tile; ``tracks`` writes one file
    per ``publisher_id`` (the token's ``sub``, ``-screen`` added for a screen share) and
    tells concurrent connections of the same id apart by ``session_id``; a reconnect is a
    new session of the same id.
    """

    session_id: str
    publisher_id: str
    role: str = CAMERA
