"""`python -m recorder.ctl`."""

from __future__ import annotations

import sys

from recorder.ctl.main import main

sys.exit(main())
