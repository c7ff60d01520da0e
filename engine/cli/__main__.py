"""``python -m engine.cli …``: the same as ``wfstudio …`` (never the studio)."""

import sys

from engine.cli import main

sys.exit(main())
