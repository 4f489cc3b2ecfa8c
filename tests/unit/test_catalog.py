"""The objective catalog against XGBoost 3.0 itself: each entry's default metric is XGBoost's, and
what an entry names (metrics, hyperparameters) exists."""

from __future__ import annotations

import numpy as np
import pytest
import xgboost as xgb

from training.hyperparameters import SPECS, parse_hyperparameters
from training.objectives.catalog import OBJECTIVE_PARAMS, OBJECTIVES, SURVIVAL_AFT
from training.objectives.metrics import CUSTOM_METRICS, EVAL_METRICS, metric_base

RNG = np.random.default_rng(11)


def _matrix(name: str) -> xgb.DMatrix:
    x = RNG.normal(size=(60, 3))
    if name.startswith(("binary:", "rank:map")):
        y = (x[:, 0] > 0).astype(float)
    elif name.startswith("multi:"):
        y = np.digitize(x[:, 0], [-0.5, 0.5]).astype(float)
    elif name.startswith("rank:"):
        y = np.digitize(x[:, 0], [-0.5, 0.5]).astype(float)
    else:
        y = np.exp(x[:, 0]) / 4 + 0.1  # > 0 and in [0, 1] mostly: valid for every regression, count and survival
        y = np.clip(y, 0.01, 0.99) if name == "reg:logistic" else y
    data = xgb.DMatrix(x, label=y, qid=np.repeat(np.arange(6), 10) if name.startswith("rank:") else None)
    if name == SURVIVAL_AFT:
        data.set_float_info("label_lower_bound", y)
        data.set_float_info("label_upper_bound", y * 2)
    return data


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_each_objectives_default_metric_is_xgboosts_own(name):
    """With eval_metric empty the job reports the catalog's default metric, and it is the one XGBoost 3.0
    itself reports for the objective (named as XGBoost names it: tweedie-nloglik with its power)."""
    entry = OBJECTIVES[name]
    hps = parse_hyperparameters({"table": "T", "target": "y", "objective": name, "nthread": "1",
                                 **({"group_column": "g"} if entry.family == "ranking" else {}),
                                 **({"label_upper_column": "u"} if name == SURVIVAL_AFT else {})})
    params = {k: v for k, v in hps.xgboost_params().items() if k != "eval_metric"}  # XGBoost's own default
    params.update({"num_class": 3} if name.startswith("multi:") else {})
    data = _matrix(name)
    booster = xgb.train(params, data, 1)
    reported = booster.eval_set([(data, "v")]).split("\t")[1].rsplit(":", 1)[0].removeprefix("v-")
    assert hps.eval_metrics == [reported], f"{name}: XGBoost reports {reported}, the job {hps.eval_metrics}"
    assert entry.applies(entry.default_metric) and metric_base(reported) == metric_base(entry.default_metric)


def test_what_each_entry_names_exists():
    known = set(EVAL_METRICS) | set(CUSTOM_METRICS)
    for entry in OBJECTIVES.values():
        assert {metric_base(m) for m in entry.metrics} <= known, entry.name
        assert all(SPECS[p].xgboost for p in entry.params), entry.name
    assert tuple(OBJECTIVES) == SPECS["objective"].choices
    assert sorted(OBJECTIVE_PARAMS) == sorted({p for entry in OBJECTIVES.values() for p in entry.params})
