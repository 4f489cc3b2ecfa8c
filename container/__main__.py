"""Entry program of the image: ``python3 -m container train`` for a training job, ``... serve`` for an endpoint
(SageMaker appends the command)."""

import sys

# XGBoost imports scikit-learn, when it is installed (the base image has it), only to define its
# scikit-learn-style estimators, which this program never uses: about 2.5 s of every host's start
# (and of every serving worker's). Marked absent, XGBoost skips it (xgboost.compat.SKLEARN_INSTALLED).
sys.modules.setdefault("sklearn", None)  # type: ignore[arg-type]

from container.entry import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
