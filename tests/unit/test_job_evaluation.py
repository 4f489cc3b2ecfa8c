"""The job's evaluation pass on one host: the final model scores the spilled validation rows in batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import xgboost as xgb

from training.collective.cluster import Cluster
from training.hyperparameters import parse_hyperparameters
from training.read.columns import FEATURE, LABEL, ColumnPlan, ColumnSpec
from training.train.dataset import build_matrices
from training.train.evaluate import evaluate

PLAN = ColumnPlan((ColumnSpec("x", "REAL", "numeric", FEATURE), ColumnSpec("y", "REAL", "numeric", LABEL)), {})


def _spill(path: Path, x: np.ndarray, y: np.ndarray) -> Path:
    batch = PLAN.to_spill([pa.array(x), pa.array(y)])
    with pa.ipc.new_file(str(path), batch.schema) as out:
        for start in range(0, len(x), 700):  # several record batches, as a spilled shard has
            out.write_batch(batch.slice(start, 700))
    return path


def test_a_log_link_model_is_judged_on_its_predictions_not_its_margins(tmp_path: Path) -> None:
    """count:poisson predicts exp(margin): a fit model's R^2 is high on predictions, negative on margins."""
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 3, size=3000)
    y = rng.poisson(np.exp(x)).astype(float)
    hps = parse_hyperparameters({"table": "T", "target": "y", "objective": "count:poisson", "num_round": "50"})
    booster = xgb.train(hps.xgboost_params(), xgb.DMatrix(x[:, None], y, feature_names=["x"]), 50)
    spilled = _spill(tmp_path / "validation.arrow", x, y)
    _, dvalid = build_matrices(spilled, spilled, PLAN, 256, 0, None)
    report = evaluate(booster, dvalid, spilled, PLAN, hps["objective"], Cluster.from_hosts(["algo-1"], "algo-1"))
    predicted = booster.predict(xgb.DMatrix(x[:, None], feature_names=["x"]))
    assert report is not None
    assert report.scalars["mse"] == pytest.approx(float(np.mean((predicted - y) ** 2)), rel=1e-6)
    assert report.scalars["r2"] > 0.5
