"""XGBoost matrices built from the spilled Arrow files, one bounded batch at a time.

``QuantileDMatrix`` reads its iterator several times while it sketches and bins the data, so the
iterator replays the memory-mapped files rather than the query. Only one batch of rows is turned
into a NumPy array at a time; the whole shard is never one in-memory frame.

A shard too large for memory (see :mod:`training.train.memory`) is built as ``ExtMemQuantileDMatrix``
from the same files instead: XGBoost writes the binned pages to a cache on the spill volume and
reads them back page by page while training (``hist`` only; slower, bounded by the disk).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import xgboost as xgb

from training.objectives.labels import query_ids
from training.read.columns import ColumnPlan

log = logging.getLogger(__name__)

BATCH_ROWS = 65_536
"""Rows handed to XGBoost per iterator step: bounds the per-step NumPy copy (~2 MiB per feature)."""

CACHE_DIR = "xgb-cache"
"""Folder of the spill directory where external-memory matrices keep their page cache."""


class ArrowFileIter(xgb.DataIter):
    """Replays a spilled Arrow IPC file (features, label[, weight, group, upper bound]) as XGBoost batches.

    The column plan turns each batch into numbers: text columns become the job's category codes.
    A ranking job's group values become XGBoost's ``qid``, counted through the whole file (its groups
    are contiguous: the shard query orders them); survival:aft's bounds become the label bounds.
    A file with no rows yields one empty batch of the right width, so a host whose shard is empty
    can still take part in distributed training.
    """

    def __init__(self, path: Path, plan: ColumnPlan, batch_rows: int = BATCH_ROWS,
                 cache_prefix: Path | None = None) -> None:
        self._path = Path(path)
        self._plan = plan
        self._batch_rows = batch_rows
        self._batches: Iterator[dict[str, Any]] | None = None
        # cache_prefix: external memory (ExtMemQuantileDMatrix), its pages in files on the spill
        # volume (on_host=False; on_host only matters for GPUs, which would keep them in host memory).
        super().__init__(cache_prefix=None if cache_prefix is None else str(cache_prefix), release_data=True,
                         on_host=False)

    def _read(self) -> Iterator[dict[str, Any]]:
        return matrix_batches(self._path, self._plan, self._batch_rows)

    def next(self, input_data: Callable[..., Any]) -> bool:
        if self._batches is None:
            self._batches = self._read()
        try:
            fields = next(self._batches)
        except StopIteration:
            return False
        input_data(**fields, feature_names=self._plan.xgboost_feature_names, feature_types=self._plan.feature_types)
        return True

    def reset(self) -> None:
        if self._batches is not None:
            self._batches.close()
        self._batches = None


def matrix_batches(path: Path, plan: ColumnPlan, batch_rows: int = BATCH_ROWS) -> Iterator[dict[str, Any]]:
    """A spilled file's rows as XGBoost's fields, ``batch_rows`` at a time: ``data``, ``label``,
    ``weight``, and ``qid`` (ranking, counted through the whole file) or the label bounds
    (survival:aft) where the objective has them. A file with no rows gives one empty batch."""
    with pa.memory_map(str(path)) as source:
        reader = pa.ipc.open_file(source)
        last_group, next_qid = None, 0
        for batch in _or_empty(coalesced(reader, batch_rows), reader.schema):
            features, label, weight = plan.matrix(batch)
            fields = {"data": features, "label": label, "weight": weight, **plan.bounds(batch)}
            groups = plan.group_values(batch)
            if groups is not None:
                fields["qid"], last_group, next_qid = query_ids(groups, last_group, next_qid)
            yield fields


def _or_empty(batches: Iterator[pa.RecordBatch], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """``batches``, or one empty batch of ``schema`` when there are none (a host with an empty shard
    still hands XGBoost a batch of the right width)."""
    yielded = False
    for batch in batches:
        yielded = True
        yield batch
    if not yielded:
        yield pa.RecordBatch.from_pylist([], schema=schema)


def coalesced(reader: pa.ipc.RecordBatchFileReader, rows: int) -> Iterator[pa.RecordBatch]:
    """The file's rows, in order, in steps of ``rows`` (the last one shorter), whatever its record batches.

    A ``scan`` shard is spilled chunk by chunk, and a result's first chunks are small (hundreds of
    rows). XGBoost sketches every iterator step on its own, so many small steps cost far more than
    their rows: at 250,000 rows the training matrix took twice the CPU from the chunk-sized
    batches as from 65,536-row steps. Only a step that spans record batches is copied.
    """
    pending: list[pa.RecordBatch] = []
    count = 0
    for i in range(reader.num_record_batches):
        batch = reader.get_batch(i)
        start = 0
        while start < batch.num_rows:
            take = min(rows - count, batch.num_rows - start)
            pending.append(batch.slice(start, take))
            count, start = count + take, start + take
            if count == rows:
                yield pending[0] if len(pending) == 1 else pa.concat_batches(pending)
                pending, count = [], 0
    if count:
        yield pending[0] if len(pending) == 1 else pa.concat_batches(pending)


def build_matrices(
    train_path: Path, validation_path: Path, plan: ColumnPlan, max_bin: int, nthread: int = 0,
    cache_dir: Path | None = None, linear: bool = False,
) -> tuple[xgb.DMatrix, xgb.DMatrix]:
    """Training and validation matrices; validation reuses the training bins (``ref=``).

    ``linear`` (``booster=gblinear``): plain ``DMatrix``es of the values, built from the same
    iterator (XGBoost's gblinear cannot train from quantile bins); with ``cache_dir`` their pages
    live on the spill volume too.

    With ``cache_dir`` both are ``ExtMemQuantileDMatrix`` (external memory) whose page caches
    live under ``cache_dir`` (prefixes ``train`` and ``validation``; XGBoost appends its own suffix
    and deletes the files when the matrix is freed).

    Inside a collective, every host must call this at the same point, with the same choice of
    ``cache_dir`` or not: the quantile sketch is all-reduced across hosts, and every host codes
    categories with the same vocabulary.
    """
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)  # XGBoost opens its cache files but makes no folder
    if linear:
        return tuple(xgb.DMatrix(ArrowFileIter(path, plan, cache_prefix=_prefix(cache_dir, name)), nthread=nthread or None)
                     for path, name in ((train_path, "train"), (validation_path, "validation")))  # type: ignore[return-value]
    options = {"max_bin": max_bin, "nthread": nthread or None, "enable_categorical": plan.categorical}
    kind = xgb.QuantileDMatrix if cache_dir is None else xgb.ExtMemQuantileDMatrix
    dtrain = kind(ArrowFileIter(train_path, plan, cache_prefix=_prefix(cache_dir, "train")), **options)
    dvalid = kind(ArrowFileIter(validation_path, plan, cache_prefix=_prefix(cache_dir, "validation")), ref=dtrain,
                  **options)
    return dtrain, dvalid


def _prefix(cache_dir: Path | None, name: str) -> Path | None:
    return None if cache_dir is None else cache_dir / name
