"""XGBoost matrices built from the spilled Arrow files, one bounded batch at a time.

``QuantileDMatrix`` reads its iterator several times while it sketches and bins the data, so the
iterator replays the memory-mapped files rather than the query. Only one batch of rows is turned
into a NumPy array at a time; the whole shard is never one in-memory frame.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import xgboost as xgb

log = logging.getLogger(__name__)

BATCH_ROWS = 65_536
"""Rows handed to XGBoost per iterator step: bounds the per-step NumPy copy (~2 MiB per feature)."""


class ArrowFileIter(xgb.DataIter):
    """Replays an Arrow IPC file of float32 features + ``__LABEL`` as XGBoost batches.

    A file with no rows yields one empty batch of the right width, so a host whose shard is empty
    can still take part in distributed training.
    """

    def __init__(self, path: Path, batch_rows: int = BATCH_ROWS) -> None:
        self._path = Path(path)
        self._batch_rows = batch_rows
        self._batches: Iterator[tuple[np.ndarray, np.ndarray]] | None = None
        with pa.memory_map(str(self._path)) as source:
            schema = pa.ipc.open_file(source).schema
        self.feature_names = [f.name for f in schema][:-1]
        super().__init__(release_data=True)

    def _read(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        with pa.memory_map(str(self._path)) as source:
            reader = pa.ipc.open_file(source)
            yielded = False
            for i in range(reader.num_record_batches):
                batch = reader.get_batch(i)
                for start in range(0, batch.num_rows, self._batch_rows):
                    yield _to_numpy(batch.slice(start, self._batch_rows))
                    yielded = True
            if not yielded:
                width = len(self.feature_names)
                yield np.empty((0, width), dtype=np.float32), np.empty(0, dtype=np.float32)

    def next(self, input_data: Callable[..., Any]) -> bool:
        if self._batches is None:
            self._batches = self._read()
        try:
            features, label = next(self._batches)
        except StopIteration:
            return False
        input_data(data=features, label=label, feature_names=self.feature_names)
        return True

    def reset(self) -> None:
        if self._batches is not None:
            self._batches.close()
        self._batches = None


def _to_numpy(batch: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray]:
    width = batch.num_columns - 1
    features = np.empty((batch.num_rows, width), dtype=np.float32)
    for i in range(width):
        # float32 Arrow -> NumPy: nulls become NaN, which XGBoost treats as missing
        features[:, i] = batch.column(i).to_numpy(zero_copy_only=False)
    label = batch.column(width).to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return features, label


def build_matrices(
    train_path: Path, validation_path: Path, max_bin: int, nthread: int = 0
) -> tuple[xgb.QuantileDMatrix, xgb.QuantileDMatrix]:
    """Training and validation matrices; validation reuses the training bins (``ref=``).

    Inside a collective, every host must call this at the same point: the quantile sketch is
    all-reduced across hosts.
    """
    threads = nthread or None
    dtrain = xgb.QuantileDMatrix(ArrowFileIter(train_path), max_bin=max_bin, nthread=threads)
    dvalid = xgb.QuantileDMatrix(ArrowFileIter(validation_path), ref=dtrain, max_bin=max_bin, nthread=threads)
    return dtrain, dvalid


def first_rows(path: Path, limit: int = 5) -> np.ndarray:
    """A few feature rows of a spilled file (the model's input example), without reading the rest."""
    with pa.memory_map(str(path)) as source:
        reader = pa.ipc.open_file(source)
        for i in range(reader.num_record_batches):
            batch = reader.get_batch(i)
            if batch.num_rows:
                return _to_numpy(batch.slice(0, limit))[0]
        width = len(reader.schema) - 1
    return np.empty((0, width), dtype=np.float32)
