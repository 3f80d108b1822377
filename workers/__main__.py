"""`python -m workers` runs `recorder-worker`."""

from workers.main import main

raise SystemExit(main())
