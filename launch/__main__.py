"""``python -m launch``: the launcher's CLI (see :mod:`launch.cli`)."""

import sys

from launch.cli import main

sys.exit(main())
