"""Entry program of the image: ``python3 -m container train`` for a training job, ``... serve`` for an endpoint
(SageMaker appends the command)."""

import sys

from container.entry import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
