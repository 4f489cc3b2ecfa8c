"""``python launch/score.py ...``: the name users know for ``python -m launch score ...`` (see :mod:`launch.commands.score`)."""

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import from the repo root, not from launch/
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from launch.cli import alias  # noqa: E402

if __name__ == "__main__":
    alias("score")
