"""How an objective's raw output becomes scores and predictions (by its catalog entry's ``output``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from training.objectives.catalog import (
    BINARY,
    CLASS_ID,
    HINGE,
    MARGIN,
    MULTICLASS,
    PROBABILITIES,
    PROBABILITY,
    entry,
)


def probabilities(name: str, margins: np.ndarray, classes: int) -> np.ndarray:
    """Scores from ``booster.predict(output_margin=True)``: sigmoid for binary, softmax for multiclass,
    the output itself for the others."""
    margin = np.asarray(margins, dtype=np.float64)
    family = entry(name).family
    if family == BINARY:
        return 1.0 / (1.0 + np.exp(-np.clip(margin.reshape(-1), -500, 500)))
    if family == MULTICLASS:
        margin = margin.reshape(-1, classes)
        shifted = np.exp(margin - margin.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)
    return margin.reshape(-1)


def transformed_scores(name: str, predt: np.ndarray, classes: int) -> np.ndarray:
    """Scores from the predictions XGBoost hands a custom metric (after the objective's own transform)."""
    output = entry(name).output
    if output == MARGIN:
        return probabilities(name, predt, classes)
    if output == CLASS_ID:  # class ids: one-hot
        ids = np.asarray(predt, dtype=np.int64).reshape(-1)
        return np.eye(classes)[ids]
    if output == PROBABILITIES:
        return np.asarray(predt, dtype=np.float64).reshape(-1, classes)
    return np.asarray(predt, dtype=np.float64).reshape(-1)


def predicted_classes(name: str, output: np.ndarray, classes: Sequence[Any]) -> tuple[np.ndarray, np.ndarray | None]:
    """A classifier's predicted class (as the table names it) per row, and the probabilities it
    reports: the second class's (``binary:logistic``), one column per class (``multi:softprob``), or
    None where the objective outputs no probability (``logitraw``'s margin, ``hinge``, ``softmax``)."""
    kind, names = entry(name).output, np.asarray(classes, dtype=object)
    if kind == PROBABILITIES:
        return names[output.argmax(axis=1)], output
    if kind == CLASS_ID:
        return names[output.astype(int)], None
    if kind == PROBABILITY:
        return names[(output >= 0.5).astype(int)], output
    threshold = 0.5 if kind == HINGE else 0.0  # hinge: 0/1; logitraw: a margin
    return names[(output > threshold).astype(int)], None
