"""The storage folder: private to the node's user when recorderd creates it, and checked
when it was there before (docs/security.md, "Bad input").

Recordings are private, and without a JWT setting the folder also holds the development
secret that signs every token, so a new folder is 0700. A folder that existed already is
the operator's choice (a systemd StateDirectory is 0750, a shared mount may be wider):
recorderd tightens it only when it holds the development secret and belongs to recorderd's
user, and otherwise says in its log that other users can read it.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

logger = logging.getLogger(__name__)

PRIVATE_MODE = 0o700


def prepare_storage(path: Path, holds_secret: bool) -> None:
    """Create `path` 0700, or check the one that exists; `holds_secret`: the development
    JWT secret lives in it."""
    try:
        path.mkdir(mode=PRIVATE_MODE, parents=True)
        return
    except FileExistsError:
        pass
    mode = stat.S_IMODE(path.stat().st_mode)
    opened = mode & (0o077 if holds_secret else 0o007)
    if not opened:
        return
    if holds_secret and path.stat().st_uid == os.geteuid():
        path.chmod(mode & ~0o077)
        logger.warning("storage folder %s was open to other users (mode %04o) and holds the "
                       "development JWT secret: now %04o", path, mode, mode & ~0o077)
    elif holds_secret:
        logger.warning("storage folder %s holds the development JWT secret and other users "
                       "can open it (mode %04o, owned by uid %d): chmod 0700 it", path, mode,
                       path.stat().st_uid)
    else:
        logger.warning("storage folder %s is open to every user of this host (mode %04o): "
                       "recordings are private, chmod o-rwx it", path, mode)
