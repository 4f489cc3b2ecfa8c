"""Per-row explanations: the ``top_k`` features that moved each row's prediction most, by SHAP value.

XGBoost's own TreeSHAP (``Booster.predict(..., pred_contribs=True)``) splits each row's raw score
(the margin: the value itself for squared error, log-odds for ``binary:logistic``, the log of the
mean for ``count:poisson``, ``reg:gamma`` and ``reg:tweedie``) into one contribution per feature plus
a bias; they add up to that raw score. A multiclass model has a raw score per class: a row is
explained by the contributions to its predicted class's score. A linear model's contribution is its
coefficient times the value.

A row's explanation is its ``top_k`` features by the size of their contribution (largest first; ties
in the plan's feature order), named as the table names them, each with its signed contribution:
``shap_1_feature``, ``shap_1_value``, ..., ``shap_<k>_feature``, ``shap_<k>_value``. The batch job writes
them as columns of the target (upper case), the endpoint and the MLflow model as fields of each answer
row: all through :func:`training.model.booster.predict_rows` (``explain=K``), which codes a row once for its
prediction and its explanation, so a row is explained alike everywhere.

Contributions need a DMatrix, and building one inside a job's collective all-reduces its column count
(XGBoost's own native call): the batch job explains rows outside its collective
(:mod:`training.scoring.predictor`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from training.read.columns import ColumnPlan

EXPLAIN = "explain"
"""The option's name everywhere: the scoring job's setting, the endpoint's query parameter and custom
attribute, the MLflow model's predict parameter."""


def explanation_columns(top_k: int) -> list[str]:
    """The answer's explanation columns, in order: ``shap_1_feature``, ``shap_1_value``, ..."""
    return [name for i in range(1, top_k + 1) for name in (f"shap_{i}_feature", f"shap_{i}_value")]


def top_k(value: Any, plan: ColumnPlan) -> int:
    """``value`` (a number, or its text) as how many features to explain each row with: 0 (none) to the
    model's feature count; a :class:`ValueError` whose message names the range."""
    count = len(plan.feature_names)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        number = int(value)
    else:
        text = "" if value is None else str(value).strip()
        number = int(text) if text.isdigit() else (0 if not text else -1)
    if not 0 <= number <= count:
        raise ValueError(f"{EXPLAIN}={value!r} is not a whole number from 0 (no explanation) to {count} (the "
                         "model's feature count): give how many features to explain each row with")
    return number


def top_contributions(contributions: np.ndarray, feature_names: list[str], k: int) -> Any:
    """Each row's ``k`` (at least 1) largest of XGBoost's ``pred_contribs`` (rows x (features + bias), or rows x
    classes x (features + bias)) as a DataFrame of :func:`explanation_columns`, features under ``feature_names``
    (the table's names, in the model's order)."""
    import pandas as pd

    if contributions.ndim == 3:  # (rows, classes, features + bias): the predicted class's own
        predicted = contributions.sum(axis=2).argmax(axis=1)
        contributions = contributions[np.arange(len(contributions)), predicted]
    values = contributions[:, :-1]  # the last column is the bias
    order = np.argsort(-np.abs(values), axis=1, kind="stable")[:, :k]
    names = np.asarray(feature_names, dtype=object)[order]
    picked = np.take_along_axis(values, order, axis=1).astype(np.float64)
    out = {}
    for i in range(k):
        out[f"shap_{i + 1}_feature"] = names[:, i]
        out[f"shap_{i + 1}_value"] = picked[:, i]
    return pd.DataFrame(out)
