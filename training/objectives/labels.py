"""Labels checked on every row before training: ranges (each objective's is in its catalog entry), bounds, groups.

XGBoost stops with a C++ check (a traceback, not a line a user can act on) when a label is out of its
objective's range, or computes NaN from it silently (survival:aft with an upper bound below the
lower one). The hosts count such rows while spilling and the job fails with one line instead.
pyarrow is imported where a batch is counted, so the catalog stays light for the launcher.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa


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
        import pyarrow.compute as pc

        below = pc.less_equal(label, self.low) if self.low_open else pc.less(label, self.low)
        bad = pc.or_(below, pc.greater(label, self.high))
        if self.whole:
            bad = pc.or_(bad, pc.not_equal(label, pc.round(label)))
        return pc.sum(bad).as_py() or 0


RELEVANT_OR_NOT = LabelRange(0.0, 1.0, "relevance 0 or 1: a list's rows are relevant or not", whole=True)
BINARY_METRICS = ("map", "pre")
"""Ranking metrics XGBoost computes on relevant-or-not labels only (it fails on graded ones)."""


def bad_labels(rule: tuple[str, LabelRange] | None, label: pa.Array) -> int:
    """Rows whose label breaks ``rule`` (NULLs aside: they are counted apart)."""
    return 0 if rule is None else rule[1].outside(label)


def bad_bounds(lower: pa.Array, upper: pa.Array) -> int:
    """survival:aft rows whose upper bound is below the lower one (an interval with no time in it)."""
    import pyarrow.compute as pc

    return pc.sum(pc.less(upper, lower)).as_py() or 0


def query_ids(values: pa.Array, previous: str | None, next_id: int) -> tuple[np.ndarray, str | None, int]:
    """XGBoost's ``qid`` of group values in file order, continuing from the previous batch.

    Equal neighbours share an id and each change of value takes the next one, so the ids never
    decrease and a group that continues from the previous batch (``previous``, its last value) keeps
    its id. Returns the ids, this batch's last value and the next free id. The rows of a group must be
    contiguous (the query orders them): a value seen again later would start a new group.
    """
    import pyarrow.compute as pc

    rows = len(values)
    if rows == 0:
        return np.zeros(0, dtype=np.uint32), previous, next_id
    changed = np.empty(rows, dtype=bool)
    changed[0] = previous is None or values[0].as_py() != previous
    if rows > 1:
        changed[1:] = pc.not_equal(values.slice(1), values.slice(0, rows - 1)).to_numpy(zero_copy_only=False)
    ids = next_id - 1 + np.cumsum(changed)
    return ids.astype(np.uint32), values[rows - 1].as_py(), int(ids[-1]) + 1
