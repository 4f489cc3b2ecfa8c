"""Vocabularies of text columns and class labels: seen while spilling, agreed across hosts.

Each host counts the distinct values it spills (:class:`VocabularyCounter`, bounded by the job's
``max_categories``); the hosts gather their partial vocabularies through the collective and
:func:`merge_vocabularies` makes one vocabulary per column, identical on every host, whose order
is the category (or class) code the :class:`~training.read.columns.ColumnPlan` uses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from training.read.columns import CLASS, ColumnPlan, kind_of


def _class_order(snowflake_type: str) -> Callable[[str], Any]:
    kind = kind_of(snowflake_type)
    if kind is not None and kind.name == "numeric":
        return lambda text: (float(text), text)
    return lambda text: (0.0, text)


class VocabularyCounter:
    """Distinct values of each vocabulary column seen while spilling; memory bounded by ``cap``.

    A column that passes ``cap`` distinct values is marked over the cap and its values dropped,
    so a text column with millions of values costs at most ``cap + 1`` strings.
    """

    def __init__(self, plan: ColumnPlan, cap: int) -> None:
        self.cap = cap
        self.values: dict[str, set[str]] = {name: set() for name in plan.vocabulary_columns}
        self.over_cap: list[str] = []

    def update(self, batch: pa.RecordBatch) -> None:
        for name, seen in self.values.items():
            if name in self.over_cap:
                continue
            seen.update(v for v in pc.unique(batch.column(name)).to_pylist() if v is not None)
            if len(seen) > self.cap:
                self.over_cap.append(name)
                seen.clear()

    def partial(self) -> dict[str, list[str] | None]:
        """This host's values per column (None: over the cap), to be merged across hosts."""
        return {name: None if name in self.over_cap else sorted(seen) for name, seen in self.values.items()}


def merge_vocabularies(plan: ColumnPlan, partials: Iterable[Mapping[str, list[str] | None]],
                       cap: int) -> tuple[dict[str, tuple[str, ...]], dict[str, int | None]]:
    """One vocabulary per column from every host's partial one, identical on every host.

    Returns ``(vocabularies, over)``: ``over`` maps each column over ``cap`` to its distinct count
    when the partial vocabularies tell it (None when a host stopped counting at the cap).
    """
    merged: dict[str, set[str] | None] = {name: set() for name in plan.vocabulary_columns}
    for partial in partials:
        for name, values in partial.items():
            current = merged[name]
            merged[name] = None if current is None or values is None else current | set(values)
    order = {c.name: _class_order(c.snowflake_type) if c.kind == CLASS.name else (lambda t: t)
             for c in plan.columns}
    vocabularies, over = {}, {}
    for name, values in merged.items():
        if values is None or len(values) > cap:
            over[name] = None if values is None else len(values)
        else:
            vocabularies[name] = tuple(sorted(values, key=order[name]))
    return vocabularies, over
