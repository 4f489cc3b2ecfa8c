"""The job's hyperparameters: the table that declares each once (:mod:`.table`), the parser that
checks a job's values against it (:mod:`.parse`), and the constraints' own checks (:mod:`.constraints`).
"""

from training.hyperparameters.parse import Hyperparameters, parse_hyperparameters
from training.hyperparameters.table import (
    ALIASES,
    APPLIES_WHEN,
    HYPERPARAMETERS,
    RENAMED_VALUES,
    REQUIRED,
    RETIRED,
    SPECS,
    TREE_ONLY,
    Spec,
    TuningRange,
    tunable,
)

__all__ = ["ALIASES", "APPLIES_WHEN", "HYPERPARAMETERS", "RENAMED_VALUES", "REQUIRED", "RETIRED", "SPECS", "TREE_ONLY",
           "Hyperparameters", "Spec", "TuningRange", "parse_hyperparameters", "tunable"]
