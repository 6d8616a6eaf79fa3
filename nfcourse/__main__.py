"""``python -m nfcourse``: see :mod:`nfcourse.course.cli`."""

import sys

from .course.cli import main

sys.exit(main())
