"""A scoring host's predictions and explanations for one result batch, made where no collective call can hide.

Trees are predicted in place (``inplace_predict``), in the host's own process, inside the job's
collective: no DMatrix is built. Two things need a DMatrix, which XGBoost does not make in place:
SHAP contributions (``explain``) and a linear model's predictions (``booster=gblinear``). Building a
DMatrix in a process that has joined the collective all-reduces its column count (XGBoost's own native
call), so a host would make one hidden collective call per batch, and hosts with different numbers of
batches would pair their calls wrongly. Those go to a child process that never joins: started fresh
(``spawn``, not ``fork``, which would copy the communicator and XGBoost's OpenMP threads), it loads the
model file once and answers one batch at a time, so the host's memory holds one batch more at most.
"""

from __future__ import annotations

import logging
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import pyarrow as pa

from training.errors import ConfigError
from training.model.booster import linear, load, predict_rows

log = logging.getLogger(__name__)

_loaded: tuple[Any, Any] | None = None
"""The child's model and plan (set by :func:`_load`, once)."""


class Predictor:
    """``predict(batch)``: the rows' :func:`~training.model.booster.predict_rows` columns, then, with ``explain``,
    each row's ``explain`` largest SHAP contributions. Close it (or use it as a context manager)."""

    def __init__(self, model_path: Path, booster: Any, plan: Any, explain: int) -> None:
        self.booster, self.plan, self.explain = booster, plan, explain
        self._pool: ProcessPoolExecutor | None = None
        if explain or linear(booster):
            import multiprocessing

            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_load, initargs=(str(model_path),))
            self._pool.submit(int).result()  # the child starts (the pool would start it at the first batch)
            log.info("predicting %s in a child process, outside the collective",
                     f"each row's {explain} largest SHAP contributions" if explain else "the linear model")

    def predict(self, batch: pa.RecordBatch) -> Any:
        features = batch.select(self.plan.feature_names)
        if self._pool is None:
            return predict_rows(self.booster, self.plan, _columns(features))
        try:
            return self._pool.submit(_predict, features, self.explain).result()
        except BrokenProcessPool:
            what = "explains the rows" if self.explain else "predicts the linear model"
            raise ConfigError(f"the child process that {what} stopped (killed, or out of memory): give the job "
                              f"instances with more memory{', or lower explain' if self.explain else ''}") from None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> Predictor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _columns(batch: pa.RecordBatch) -> dict[str, Any]:
    return {name: batch.column(name) for name in batch.schema.names}


def _load(path: str) -> None:
    """The child's start: load the model, and end with the host (a pool's child outlives a killed parent)."""
    import multiprocessing
    import os
    import threading

    global _loaded
    _loaded = load(path)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=lambda: (parent.join(), os._exit(1)), name="parent-watch", daemon=True).start()


def _predict(features: pa.RecordBatch, explain: int) -> Any:
    """In the child: predictions, and each row's ``explain`` largest contributions beside them."""
    assert _loaded is not None  # set by the pool's initializer
    booster, plan = _loaded
    return predict_rows(booster, plan, _columns(features), explain)
