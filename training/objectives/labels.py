"""What each objective asks of the label: the range XGBoost accepts, checked on every row before training.

XGBoost stops with a C++ check (a traceback, not a line a user can act on) when a label is out of its
objective's range, or computes NaN from it silently (survival:aft with an upper bound below the
lower one). The hosts count such rows while spilling and the job fails with one line instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.hyperparameters import metric_base


@dataclass(frozen=True)
class LabelRange:
    """The labels an objective (or metric) accepts: ``low <= label <= high``, whole numbers if ``whole``."""

    low: float
    high: float
    words: str
    whole: bool = False
    low_open: bool = False  # True: ``low < label``

    def outside(self, label: pa.Array) -> int:
        """Rows of ``label`` (NULLs aside) outside the range."""
        below = pc.less_equal(label, self.low) if self.low_open else pc.less(label, self.low)
        bad = pc.or_(below, pc.greater(label, self.high))
        if self.whole:
            bad = pc.or_(bad, pc.not_equal(label, pc.round(label)))
        return pc.sum(bad).as_py() or 0


RELEVANT_OR_NOT = LabelRange(0.0, 1.0, "relevance 0 or 1: a list's rows are relevant or not", whole=True)
LABEL_RANGES = {
    "reg:logistic": LabelRange(0.0, 1.0, "a probability in [0, 1]"),
    "rank:map": RELEVANT_OR_NOT,
    "rank:ndcg": LabelRange(0.0, 31.0, "a relevance degree in [0, 31]"),
    "rank:pairwise": LabelRange(0.0, 31.0, "a relevance degree in [0, 31]"),
    "survival:aft": LabelRange(0.0, float("inf"), "a lower time bound >= 0 (0: left-censored)"),
    "count:poisson": LabelRange(0.0, float("inf"), "a count >= 0"),
    "reg:tweedie": LabelRange(0.0, float("inf"), "a value >= 0"),
    "reg:gamma": LabelRange(0.0, float("inf"), "a value > 0", low_open=True),
    "reg:squaredlogerror": LabelRange(-1.0, float("inf"), "a value > -1 (its log1p is taken)", low_open=True),
}
"""Objectives whose label XGBoost rejects (with a traceback) or cannot use outside a range."""
BINARY_METRICS = ("map", "pre")
"""Ranking metrics XGBoost computes on relevant-or-not labels only (it fails on graded ones)."""


def label_rule(objective: str, metrics: list[str]) -> tuple[str, LabelRange] | None:
    """What the job's labels must be, and who asks it (``objective rank:map``, ``eval_metric pre@3``)."""
    binary = [m for m in metrics if metric_base(m) in BINARY_METRICS]
    if binary and LABEL_RANGES.get(objective) is not RELEVANT_OR_NOT:
        return f"eval_metric {binary[0]}", RELEVANT_OR_NOT
    rule = LABEL_RANGES.get(objective)
    return None if rule is None else (f"objective {objective}", rule)


def bad_labels(rule: tuple[str, LabelRange] | None, label: pa.Array) -> int:
    """Rows whose label breaks ``rule`` (NULLs aside: they are counted apart)."""
    return 0 if rule is None else rule[1].outside(label)


def bad_bounds(lower: pa.Array, upper: pa.Array) -> int:
    """survival:aft rows whose upper bound is below the lower one (an interval with no time in it)."""
    return pc.sum(pc.less(upper, lower)).as_py() or 0


def query_ids(values: pa.Array, previous: str | None, next_id: int) -> tuple[np.ndarray, str | None, int]:
    """XGBoost's ``qid`` of group values in file order, continuing from the previous batch.

    Equal neighbours share an id and each change of value takes the next one, so the ids never
    decrease and a group that continues from the previous batch (``previous``, its last value) keeps
    its id. Returns the ids, this batch's last value and the next free id. The rows of a group must be
    contiguous (the query orders them): a value seen again later would start a new group.
    """
    rows = len(values)
    if rows == 0:
        return np.zeros(0, dtype=np.uint32), previous, next_id
    changed = np.empty(rows, dtype=bool)
    changed[0] = previous is None or values[0].as_py() != previous
    if rows > 1:
        changed[1:] = pc.not_equal(values.slice(1), values.slice(0, rows - 1)).to_numpy(zero_copy_only=False)
    ids = next_id - 1 + np.cumsum(changed)
    return ids.astype(np.uint32), values[rows - 1].as_py(), int(ids[-1]) + 1
