"""Global SHAP importance from sums that add up across hosts: mean |SHAP value| per feature.

XGBoost's ``Booster.predict(..., pred_contribs=True)`` gives each row's SHAP values (TreeSHAP;
for ``booster=gblinear``, coefficient x value, not centred), one per feature plus a last column,
the bias (the model's expected margin, the same for every row). Each host reduces its rows to
one float64 vector of fixed length (:func:`contribution_sums`): the sum of |contribution| per
output and feature, the sum of the bias per output, and its row counts. The vectors are summed
across hosts in one all-reduce, and every host divides the same totals (:func:`shap_importance`).

What the numbers are: the mean over the rows used of |SHAP value|, in margin units (log-odds for
``binary:logistic``, the log of the mean for ``count:poisson``, the prediction itself for
``reg:squarederror``); rows are not weighted. Multiclass models have one SHAP value per class
and feature: a feature's importance is the sum over classes of its mean |SHAP value| (as the
``shap`` package's multiclass bar chart stacks them), and each class's part is kept too. The bias
is no feature: it is reported apart, as the expected value of each output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

SLICE_BYTES = 64 * 2**20
"""Most bytes of SHAP values a host holds at once (rows x outputs x (features + 1) float32)."""


def slice_rows(features: int, outputs: int, max_rows: int) -> int:
    """Rows per prediction of contributions, so that one slice's SHAP values fit :data:`SLICE_BYTES`.

    Depends only on what every host knows (the column plan), so every host slices alike.
    """
    return max(1, min(max_rows, SLICE_BYTES // (4 * outputs * (features + 1))))


def rows_per_host(max_rows: int, hosts: int) -> int:
    """Each host's share of ``max_rows`` (the job's cap; at least one row): the rows used are at most
    ``max_rows`` in all (``hosts``, if that is more)."""
    return max(1, max_rows // hosts) if max_rows > 0 else 0


def sampled(start: int, end: int, rows: int, used: int) -> np.ndarray:
    """Which of a host's rows ``start .. end - 1`` (of its ``rows``) are among the ``used`` it scores,
    as indices from ``start``: rows ``floor(i * rows / used)`` for i < ``used``, spread evenly over the
    shard (its first rows may be ordered: by key, by group), computed a batch at a time."""
    if used <= 0:
        return np.zeros(0, dtype=np.int64)
    first, last = -(-start * used // rows), -(-end * used // rows)  # i with floor(i * rows / used) in [start, end)
    return np.arange(first, last, dtype=np.int64) * rows // used - start


def contribution_sums(contribs: np.ndarray, features: int, outputs: int) -> np.ndarray:
    """One slice's additive summary, float64 of length ``outputs * features + outputs + 1``.

    ``contribs``: what ``pred_contribs=True`` returned for the slice: rows x (features + 1), or
    rows x outputs x (features + 1) for multiclass (XGBoost gives a flat empty array for no rows).
    The summary is the sum of |contribution| per output and feature, the sum of the bias per output,
    and the number of rows.
    """
    values = np.asarray(contribs, dtype=np.float64).reshape(-1, outputs, features + 1)
    absolute = np.abs(values[:, :, :features]).sum(axis=0)
    return np.concatenate([absolute.ravel(), values[:, :, features].sum(axis=0), [len(values)]])


@dataclass(frozen=True)
class ShapImportance:
    """The job's global SHAP importance, by the table's own column names."""

    mean_abs_shap: dict[str, float]
    """Each feature's mean |SHAP value| over the rows used (multiclass: summed over the classes)."""
    per_class: dict[str, dict[str, float]]
    """Multiclass: ``{class name: {feature: mean |SHAP value| for that class}}``; empty otherwise."""
    expected_value: list[float]
    """The bias column's mean: the model's expected margin, one per output."""
    rows: int
    """Validation rows whose SHAP values were computed (all hosts)."""
    validation_rows: int
    """Validation rows of the job (all hosts): more than ``rows`` when ``shap_rows`` capped them."""

    def ranked(self) -> list[tuple[str, float]]:
        """Features by importance, highest first (ties in the table's order)."""
        return sorted(self.mean_abs_shap.items(), key=lambda item: -item[1])

    def to_json(self) -> dict[str, Any]:
        return {"mean_abs_shap": self.mean_abs_shap, "per_class": self.per_class,
                "expected_value": self.expected_value, "rows": self.rows, "validation_rows": self.validation_rows}


def empty_sums(features: int, outputs: int) -> np.ndarray:
    """The summary of no rows (what a host with no validation rows all-reduces): zeros of the right length."""
    return np.zeros(outputs * features + outputs + 1)


def shap_importance(totals: np.ndarray, table_names: Sequence[str], outputs: int = 1,
                    class_names: Sequence[str] = ()) -> ShapImportance:
    """The importance from the all-reduced ``totals``: the sum of every host's slices' summaries
    (:func:`contribution_sums`) followed by the job's number of validation rows.

    ``outputs``: the model's (a multiclass model's classes); ``class_names`` name them, in the order
    of the outputs (their numbers when not given).
    """
    features = len(table_names)
    rows, validation_rows = int(totals[-2]), int(totals[-1])
    means = np.asarray(totals[:-2], dtype=np.float64) / max(rows, 1)
    per_output = means[:outputs * features].reshape(outputs, features)
    names = [str(name) for name in class_names] if len(class_names) == outputs else [str(c) for c in range(outputs)]
    per_class = {name: dict(zip(table_names, map(float, per_output[c]), strict=True))
                 for c, name in enumerate(names)} if outputs > 1 else {}
    return ShapImportance(dict(zip(table_names, map(float, per_output.sum(axis=0)), strict=True)), per_class,
                          [float(b) for b in means[outputs * features:]], rows, validation_rows)
