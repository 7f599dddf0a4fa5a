"""``python -m gva.report``: the same as ``gva report``."""

import sys

from gva.report import main

sys.exit(main())
