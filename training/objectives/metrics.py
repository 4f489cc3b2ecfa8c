"""Every evaluation metric the job accepts: XGBoost's own, the built-in algorithm's extra ones, and their forms.

Which metric applies to which objective is the objective catalog's (:mod:`training.objectives.catalog`).
"""

from __future__ import annotations

import math
import re

EVAL_METRICS = ("rmse", "mae", "mape", "rmsle", "mphe", "logloss", "error", "auc", "aucpr", "merror", "mlogloss",
                "poisson-nloglik", "gamma-nloglik", "gamma-deviance", "tweedie-nloglik", "quantile", "ndcg", "map",
                "pre", "aft-nloglik", "interval-regression-accuracy", "cox-nloglik")
"""XGBoost's metrics the job accepts (ones XGBoost all-reduces across hosts; cox-nloglik: one host only)."""

RANKING_METRICS = ("ndcg", "map", "pre")
"""Metrics of ranked lists: ``NAME``, ``NAME@k`` (top k), ``NAME-`` and ``NAME@k-`` (an empty list scores 0)."""
THRESHOLD_METRICS = ("error", "tweedie-nloglik")
"""Metrics that take a number after ``@``: error's threshold, tweedie-nloglik's variance power."""

CUSTOM_METRICS = {
    "accuracy": "accuracy", "balanced_accuracy": "balanced_accuracy", "f1": "f1", "f1_binary": "f1",
    "f1_macro": "f1_macro", "precision": "precision", "precision_macro": "precision_macro",
    "precision_micro": "precision_micro", "recall": "recall", "recall_macro": "recall_macro",
    "recall_micro": "recall_micro", "r2": "r2", "mse": "mse",
}
"""The built-in algorithm's ``eval_metric`` values that XGBoost lacks -> the evaluation report's scalar
they read (computed by the job, all-reduced: :func:`training.evaluation.report.custom_metric`)."""

MAXIMIZED_METRICS = ("auc", "aucpr", "map", "ndcg", "pre", "interval-regression-accuracy", "accuracy",
                     "balanced_accuracy", "f1", "f1_binary", "f1_macro", "precision", "precision_macro",
                     "precision_micro", "recall", "recall_macro", "recall_micro", "r2")
"""Eval metrics where higher is better (XGBoost's and the job's own); every other metric is minimized."""


def maximized(metric: str) -> bool:
    """Whether higher is better for ``metric`` (``validation-auc``, ``validation-ndcg@5``: yes;
    ``validation-rmse``, ``validation-mape``: no)."""
    base = re.sub(r"^(validation|train)[-:]", "", metric)
    return base.split("@", 1)[0].rstrip("-") in MAXIMIZED_METRICS


def metric_base(metric: str) -> str:
    """A metric's name without its ``@`` argument or trailing ``-`` (``ndcg@5-`` -> ``ndcg``)."""
    return metric.split("@", 1)[0].removesuffix("-") if metric not in EVAL_METRICS else metric


def metric_form_ok(metric: str) -> bool:
    """Whether ``metric`` is written as XGBoost reads it (``ndcg@5``, ``map-``, ``error@0.7``)."""
    if metric in EVAL_METRICS:
        return True
    base, at, argument = metric.partition("@")
    if base.removesuffix("-") in RANKING_METRICS and not at:
        return base.endswith("-")
    if base in RANKING_METRICS:
        return argument.removesuffix("-").isdigit()
    if base in THRESHOLD_METRICS and at:
        try:
            return math.isfinite(float(argument))
        except ValueError:
            return False
    return False


def metric_text(value: float) -> str:
    """A metric as the log prints it: 6 significant digits (``1.23457e-05``, not ``0.000012``), so a
    tuning job's regex reads small metrics apart."""
    return f"{value:.6g}"


FINAL_LINE = re.compile(r"final metrics: (.*) after (\d+) rounds")


def final_line(metrics: dict[str, float], rounds: int) -> str:
    """The job's last metrics line: ``final metrics: train-rmse 0.36, validation-rmse 0.48 after 100 rounds``.

    Written ``name value``, where a round's line writes ``name:value``: the training job's metric
    definitions read ``name:value``, so each of them reads one value per round, and the final line
    adds no second copy of the last round's value to the series SageMaker plots and tunes on.
    """
    return "final metrics: " + ", ".join(f"{k} {metric_text(v)}" for k, v in metrics.items()) + f" after {rounds} rounds"


def read_final_line(text: str) -> tuple[dict[str, float], int] | None:
    """The metrics and rounds of the last :func:`final_line` in ``text``, or None if there is none."""
    matches = list(FINAL_LINE.finditer(text))
    if not matches:
        return None
    items, rounds = matches[-1].group(1), int(matches[-1].group(2))
    return {name: float(value) for name, value in (item.rsplit(" ", 1) for item in items.split(", ") if item)}, rounds
