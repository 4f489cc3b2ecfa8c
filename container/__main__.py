"""Entry program of the image: ``python3 -m container train`` (SageMaker appends ``train``)."""

import sys

from container.entry import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
