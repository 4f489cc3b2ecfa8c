"""The round owner on one host: early stopping as XGBoost's own, and the stop's one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb

from training.collective.cluster import Cluster
from training.errors import Interrupted
from training.hyperparameters import parse_hyperparameters
from training.job import JobSpec, _stop_interrupted
from training.read.columns import FEATURE, LABEL, ColumnPlan, ColumnSpec
from training.tracking.recorder import NO_RECORDER
from training.train.boosting import Trained, train
from training.train.checkpoints import StopFlag

FEATURES = ["x0", "x1", "x2"]
ONE_HOST = Cluster.from_hosts(["algo-1"], "algo-1")
PLAN = ColumnPlan(tuple([ColumnSpec(f, "REAL", "numeric", FEATURE) for f in FEATURES]
                        + [ColumnSpec("y", "REAL", "numeric", LABEL)]))


def _matrices() -> tuple[xgb.QuantileDMatrix, xgb.QuantileDMatrix]:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3_000, 3)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(size=len(x))).astype(np.float32)
    dtrain = xgb.QuantileDMatrix(x[:2_400], y[:2_400], feature_names=FEATURES)
    return dtrain, xgb.QuantileDMatrix(x[2_400:], y[2_400:], ref=dtrain, feature_names=FEATURES)


def _spec(tmp_path: Path, checkpoints: bool = True, **hyperparameters: object) -> JobSpec:
    hps = parse_hyperparameters({"table": "T", "target": "y", **{k: str(v) for k, v in hyperparameters.items()}})
    return JobSpec(hps, ONE_HOST, tmp_path / "model", tmp_path / "spill",
                   checkpoint_dir=tmp_path / "checkpoints" if checkpoints else None)


@pytest.mark.parametrize("metric", ["rmse", "r2"])  # XGBoost's own, minimized; the job's own, maximized
def test_early_stopping_stops_where_xgboosts_own_early_stopping_stops(tmp_path: Path, metric: str) -> None:
    dtrain, dvalid = _matrices()
    spec = _spec(tmp_path, eval_metric=f"{metric},mae", early_stopping_rounds=4, eta=0.7, num_round=200, max_depth=4)
    ours = train(spec.hyperparameters, PLAN, dtrain, dvalid, ONE_HOST, StopFlag(), spec.checkpoint_dir,
                 NO_RECORDER.callback)
    custom = None
    if metric == "r2":  # XGBoost's own early stopping on the same r2, computed the plain way
        def custom(predt: np.ndarray, data: xgb.DMatrix) -> list[tuple[str, float]]:
            y, p = data.get_label().astype(np.float64), predt.astype(np.float64)
            return [("r2", float(1 - np.sum((y - p) ** 2) / np.sum((y - y.mean()) ** 2)))]
    params = {**spec.hyperparameters.xgboost_params()}
    if metric == "r2":
        params["eval_metric"] = "mae"
    # the job stops on the first eval_metric (as the built-in algorithm does); XGBoost's default is the last
    stopping = xgb.callback.EarlyStopping(rounds=4, metric_name=metric, data_name="validation", maximize=metric == "r2")
    theirs = xgb.train(params, dtrain, 200, evals=[(dtrain, "train"), (dvalid, "validation")], verbose_eval=False,
                       callbacks=[stopping], custom_metric=custom)
    assert ours.rounds < 200 and ours.signalled == ()
    assert ours.rounds == theirs.num_boosted_rounds() == ours.booster.num_boosted_rounds()
    assert ours.booster.best_iteration == theirs.best_iteration
    assert ours.booster.best_score == pytest.approx(theirs.best_score, rel=1e-5)


def _stop_line(tmp_path: Path, saved_at: int | None, checkpoints: bool = True,
               signalled: tuple[str, ...] = ("algo-2",)) -> str:
    spec = _spec(tmp_path, checkpoints, num_round=300)
    trained = Trained(xgb.train({}, _matrices()[0], 1), rounds=17, signalled=signalled, saved_at=saved_at)
    with pytest.raises(Interrupted) as stopped:
        _stop_interrupted(spec, trained, PLAN, saved_at)
    return str(stopped.value)


def test_the_stop_line_names_the_signalled_hosts_and_says_what_a_restart_resumes_from(tmp_path: Path) -> None:
    assert _stop_line(tmp_path, 17) == ("stopped by SIGTERM (received by host algo-2) after round 17 of 300; a "
                                        "checkpoint was saved: restart the job with the same checkpoint location to "
                                        "resume")
    assert _stop_line(tmp_path, 17, signalled=("algo-1", "algo-2")).startswith(
        "stopped by SIGTERM (received by hosts algo-1, algo-2) after round 17 of 300; ")
    assert _stop_line(tmp_path, 10).endswith("; its checkpoint could not be saved (see the leader's log); the last "
                                             "saved is the one after round 10")
    assert _stop_line(tmp_path, None).endswith("; its checkpoint could not be saved (see the leader's log); the last "
                                               "saved is none: a restart trains from the start")
    assert _stop_line(tmp_path, None, checkpoints=False).endswith(
        "; no checkpoint location is configured, so a restart trains from the start")
