"""A host's rows, spilled to local Arrow files as they arrive, and counted for the job's checks.

Every batch from ``fetch_arrow_batches()`` is cast to the column plan's spill schema
(:mod:`training.read.columns`: numbers, booleans, dates and times as float32, text as text; NULL is
missing) and appended to ``train.arrow`` / ``validation.arrow``, so the shard is never held in
memory as a whole and can be re-read as often as XGBoost needs. Text columns keep their values in
the spill; their codes come from the job's one vocabulary, which the hosts agree on after fetching.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.errors import DataError
from training.objectives import labels as objectives
from training.read.columns import UPPER, ColumnPlan
from training.read.options import ReadOptions
from training.read.plan import ShardPlan
from training.read.vocabulary import VocabularyCounter

log = logging.getLogger(__name__)


@dataclass
class Shard:
    """What one host fetched: the spilled files and the counts the job reports and checks."""

    train_path: Path
    validation_path: Path
    features: list[str]
    vocabulary: VocabularyCounter
    rows_train: int = 0
    rows_validation: int = 0
    batches: int = 0
    null_target_rows: int = 0
    null_group_rows: int = 0
    bad_label_rows: int = 0
    """Rows whose label the objective cannot train on (:mod:`training.objectives.labels`)."""
    bad_bound_rows: int = 0
    """survival:aft rows whose upper bound is below the lower one."""
    label_rule: tuple[str, objectives.LabelRange] | None = None
    """What the labels must be for the objective and metrics (:func:`training.objectives.catalog.label_rule`)."""
    null_weight_rows: int = 0
    negative_weight_rows: int = 0
    non_null: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """Non-NULL values of each feature."""
    infinite: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """Infinite values of each selected column (features, label, weight)."""
    example: pa.Table | None = None
    """A few raw rows of the features, as the table has them (the model's input example)."""
    query_ids: list[str] = field(default_factory=list)
    received_rows: int = 0
    """read_mode=scan: rows of the one result this host received (NULL targets included)."""
    query_template: str = ""
    read_at: str = ""
    fetch_seconds: float = 0.0

    @property
    def rows(self) -> int:
        return self.rows_train + self.rows_validation


def new_shard(plan: ShardPlan, options: ReadOptions, spill_dir: Path) -> Shard:
    """An empty shard whose rows will be spilled to ``train.arrow`` / ``validation.arrow`` in ``spill_dir``."""
    spill_dir.mkdir(parents=True, exist_ok=True)
    return Shard(spill_dir / "train.arrow", spill_dir / "validation.arrow", list(plan.features),
                 VocabularyCounter(plan.columns, options.max_categories),
                 non_null=np.zeros(len(plan.features), dtype=np.int64),
                 infinite=np.zeros(len(plan.columns.columns), dtype=np.int64), query_template=plan.query_template,
                 label_rule=options.label_rule,
                 read_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))


@contextmanager
def spill_files(shard: Shard, plan: ShardPlan) -> Iterator[tuple[Any, Any]]:
    """The training and validation Arrow files of ``shard``, open for :func:`spill_batch`."""
    schema = plan.columns.spill_schema
    with pa.OSFile(str(shard.train_path), "wb") as train_sink, \
            pa.OSFile(str(shard.validation_path), "wb") as valid_sink, \
            pa.ipc.new_file(train_sink, schema) as train, pa.ipc.new_file(valid_sink, schema) as valid:
        yield train, valid


def spill_table(result: pa.Table, plan: ShardPlan, shard: Shard, sinks: tuple[Any, Any]) -> bool:
    """Spill one result batch (a table of the query's columns); False once a text column passed the cap."""
    for batch in result.to_batches():
        spill_batch(batch, plan.columns, shard, *sinks)
        if shard.vocabulary.over_cap:
            log.warning("column %r has more than %s distinct values: stopped fetching",
                        shard.vocabulary.over_cap[0], f"{shard.vocabulary.cap:,}")
            return False
    return True


def log_fetched(shard: Shard) -> None:
    log.info("fetched %s rows in %d batches in %.1f s (train %s, validation %s, %d queries)",
             f"{shard.rows:,}", shard.batches, shard.fetch_seconds, f"{shard.rows_train:,}",
             f"{shard.rows_validation:,}", len(shard.query_ids))


def spill_batch(batch: pa.RecordBatch, plan: ColumnPlan, shard: Shard, train: Any, valid: Any) -> None:
    """Cast one record batch by the column plan, count it, and append its rows to the training or validation file."""
    width = len(plan.columns)
    try:
        table = plan.to_spill([batch.column(i) for i in range(width)])
    except ValueError as err:
        raise DataError(f"{err}: cast the column in a view, or drop it from 'features'") from None
    if shard.example is None and batch.num_rows:
        shard.example = pa.Table.from_batches([batch.slice(0, 5)]).select(plan.feature_names)
    labels = len(plan.features)
    label_ok = pc.is_valid(table.column(labels))
    shard.null_target_rows += batch.num_rows - (pc.sum(label_ok).as_py() or 0)
    is_valid_row = pc.fill_null(batch.column(width).cast(pa.bool_()), False)
    table = table.filter(label_ok)
    is_valid_row = is_valid_row.filter(label_ok)
    if plan.weight is not None:
        weights = table.column(labels + 1)
        shard.null_weight_rows += weights.null_count
        shard.negative_weight_rows += pc.sum(pc.less(weights, 0)).as_py() or 0
    _count_roles(plan, table, shard)
    shard.vocabulary.update(table)
    shard.infinite += [pc.sum(pc.is_inf(c)).as_py() or 0 if pa.types.is_floating(c.type) and spec.role != UPPER else 0
                       for spec, c in zip(plan.columns, table.columns, strict=True)]
    for sink, mask in ((train, pc.invert(is_valid_row)), (valid, is_valid_row)):
        part = table.filter(mask)
        if part.num_rows:
            sink.write_batch(part)
            shard.non_null += [part.num_rows - part.column(i).null_count for i in range(labels)]
        if sink is train:
            shard.rows_train += part.num_rows
        else:
            shard.rows_validation += part.num_rows
    shard.batches += 1


def _count_roles(plan: ColumnPlan, table: pa.Table, shard: Shard) -> None:
    """Count what the objective cannot train on: labels out of its range, NULL groups, empty intervals."""
    label = table.column(plan.columns.index(plan.label))
    shard.bad_label_rows += objectives.bad_labels(shard.label_rule, label)
    if plan.group is not None:
        shard.null_group_rows += table.column(plan.columns.index(plan.group)).null_count
    if plan.upper is not None:
        shard.bad_bound_rows += objectives.bad_bounds(label, table.column(plan.columns.index(plan.upper)))
