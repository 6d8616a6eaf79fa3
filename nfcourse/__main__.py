"""``python -m nfcourse``: see :mod:`nfcourse.cli`."""

import sys

from .cli import main

sys.exit(main())
