import sys

from recorder.main import main

sys.exit(main())
