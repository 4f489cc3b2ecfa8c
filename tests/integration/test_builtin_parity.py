"""A built-in SageMaker XGBoost job's hyperparameters, run unchanged on 2 local hosts."""

import json
import re

import numpy as np
import pytest
import xgboost as xgb

from tests.helpers import synth_hps

pytestmark = pytest.mark.slow

FEATURES = [f"F{i}" for i in range(8)]


def test_a_built_in_hyperparameter_set_runs_unchanged_and_its_constraints_hold(run_job):
    """Retired names, an alias and reg:linear are noted, not refused; constraints given by column name
    hold in the model: F0 (a sine in the data) is forced increasing, F4 decreasing."""
    hps = synth_hps(num_round=25, features=",".join(FEATURES), objective="reg:linear", learning_rate=0.3,
                    predictor="cpu_predictor", _kfold=5, deterministic_histogram="true", booster="dart",
                    rate_drop=0.05, colsample_bynode=0.9, max_delta_step=2, grow_policy="lossguide", max_leaves=31,
                    monotone_constraints='{"f0": 1, "F4": -1}', interaction_constraints='[["F1","F2"],[0,3,4,5,6,7]]')
    result = run_job(hps, hosts=2)
    assert result.exit_code == 0, result.failure
    log = result.logs[0].read_text()
    for note in ("objective=reg:linear is read as reg:squarederror", "predictor is ignored", "_kfold is ignored",
                 "deterministic_histogram is ignored"):
        assert note in log
    assert "are not used" not in log  # XGBoost got only parameters it uses
    booster = xgb.Booster(model_file=str(result.model_path))
    rng = np.random.default_rng(0)
    base = rng.normal(size=(200, 8)).astype(np.float32)
    grid = np.linspace(-3, 3, 41, dtype=np.float32)
    for column, sign in ((0, 1), (4, -1)):
        rows = np.repeat(base, len(grid), axis=0)
        rows[:, column] = np.tile(grid, len(base))
        predicted = booster.inplace_predict(rows).reshape(len(base), len(grid))
        assert (sign * np.diff(predicted, axis=1) >= -1e-5).all(), f"F{column} is not monotone"
    # the interaction groups hold: every root-to-leaf path splits on features of one group only
    groups = [{"F1", "F2"}, {"F0", "F3", "F4", "F5", "F6", "F7"}]
    paths = [p for tree in booster.get_dump(dump_format="json") for p in _paths(json.loads(tree))]
    assert paths and all(any(p <= g for g in groups) for p in paths), [p for p in paths if len(p) > 1][:5]
    assert any("F1" in p for p in paths) and any("F0" in p for p in paths)
    assert result.final_metrics["validation-rmse"] < 2.0


def _paths(node: dict, above: frozenset = frozenset()) -> list[frozenset]:
    """The features split on along each root-to-leaf path of a tree dumped as JSON."""
    if "children" not in node:
        return [above]
    return [p for child in node["children"] for p in _paths(child, above | {node["split"]})]


def test_gblinear_trains_the_same_on_two_hosts_as_on_one(run_job):
    hps = synth_hps(num_round=30, features=",".join(FEATURES), booster="gblinear", updater="coord_descent",
                    eta=0.5, reg_lambda=0.1)
    one, two = run_job(hps, hosts=1), run_job(hps, hosts=2)
    assert one.exit_code == 0 and two.exit_code == 0, (one.failure, two.failure)
    assert "matrices: DMatrix" in two.logs[0].read_text()
    assert two.final_metrics["validation-rmse"] == pytest.approx(one.final_metrics["validation-rmse"], rel=0.02)
    weights = xgb.Booster(model_file=str(two.model_path)).get_dump()[0]
    assert "weight:" in weights  # a linear model: one weight per feature, no trees


def test_early_stopping_on_a_built_in_scikit_learn_metric_stops_every_host_after_the_same_round(run_job):
    """r2 (all-reduced by the job itself) drives early stopping, higher being better, on 2 hosts (whose
    collective ledgers the local mode compares: a job whose hosts' calls differ fails)."""
    hps = synth_hps(num_round=300, features=",".join(FEATURES), eta=0.6, eval_metric="r2,rmse",
                    early_stopping_rounds=3)
    result = run_job(hps, hosts=2)
    assert result.exit_code == 0, result.failure
    assert result.rounds < 300  # it stopped early, and no host was left in the round loop alone
    # every round's line (the stop round's too), not the final metrics' line
    history = [float(v) for v in re.findall(r"training\.train\.rounds: \[\d+\]\t.*?validation-r2:([-0-9.e]+)",
                                            result.logs[0].read_text())]
    assert len(history) == result.rounds
    assert max(history) == history[-4]  # the best round, then 3 rounds without improvement
