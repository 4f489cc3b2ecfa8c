"""The training job's metric definitions: how SageMaker reads the container's round lines.

The container logs each round as ``[12]\\ttrain-rmse:0.51\\tvalidation-rmse:0.62`` (the leader,
:mod:`training.train.rounds`) and ends with ``final metrics: train-rmse 0.5, ... after 100 rounds``,
written ``name value`` so that no definition reads it (:func:`training.objectives.metrics.final_line`):
each definition reads exactly one value per round. SageMaker takes at most
:data:`launch.settings.METRIC_DEFINITIONS_MAX` definitions, which the settings check.
"""

from __future__ import annotations

import re

DATASETS = ("train", "validation")
"""The evaluation sets the container prints each round."""
NUMBER = r"([-+0-9.eE]+)"


def metric_definitions(eval_metrics: list[str]) -> list[dict[str, str]]:
    """One definition per data set and metric: ``validation:rmse`` <- ``validation-rmse:(number)``."""
    return [
        {"Name": f"{dataset}:{metric}", "Regex": f"{dataset}-{re.escape(metric)}:{NUMBER}"}
        for metric in eval_metrics
        for dataset in DATASETS
    ]
