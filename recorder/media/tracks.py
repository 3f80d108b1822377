"""Which file each publisher connection of a ``tracks`` recording writes (pure bookkeeping).

A file is named for its publisher: ``{publisher_id}``, then ``-2``, ``-3``... for further
connections of the same id present at the same time. A connection that ends frees its
name without ending the file, so a publisher that reconnects with the same id gets the
lowest free name it already owns back and continues that file. Names come from tokens,
so they are reduced to characters that are safe in a file name and in an object key.
"""

from __future__ import annotations

import re
from typing import Final

_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]")
MAX_NAME: Final = 100


def safe_name(publisher_id: str) -> str:
    """``publisher_id`` as a file name: no separators, no leading dot, bounded length."""
    name = _UNSAFE.sub("_", publisher_id).lstrip(".")[:MAX_NAME]
    return name or "publisher"


class TrackNames:
    def __init__(self) -> None:
        self._owner: dict[str, str] = {}  # file name -> publisher id, for every file made
        self._holder: dict[str, str] = {}  # file name -> session writing it now
        self._of_session: dict[str, str] = {}  # session -> its file name

    def claim(self, session_id: str, publisher_id: str) -> tuple[str, bool]:
        """The file name for this connection, and whether the file is new."""
        name = self._of_session.get(session_id)
        if name is not None:
            return name, False
        base = safe_name(publisher_id)
        number = 1
        while True:
            name = base if number == 1 else f"{base}-{number}"
            owner = self._owner.get(name)
            if owner is None:
                self._owner[name] = publisher_id
                new = True
                break
            if owner == publisher_id and name not in self._holder:
                new = False  # the same publisher is back: continue its file
                break
            number += 1
        self._holder[name] = session_id
        self._of_session[session_id] = name
        return name, new

    def release(self, session_id: str) -> None:
        """The connection ended; its file waits for the publisher to come back."""
        name = self._of_session.pop(session_id, None)
        if name is not None:
            self._holder.pop(name, None)
