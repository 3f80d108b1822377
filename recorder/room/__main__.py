"""``python -m recorder.room``: a room process (see :mod:`recorder.room.server`).

The entry point lives here so that the process module keeps its own name in log lines.
"""

from __future__ import annotations

import sys

from recorder.room.server import main

sys.exit(main())
