"""``python -m report DIR... --out OUT``: the same as ``python -m report.compare``."""

import sys

from report.compare import main

sys.exit(main())
