"""The objective families' pieces on their own: qid from ordered group values, label bounds and ranges,
metric names (``ndcg@5-``, ``error@0.6``), which direction a tuning job optimises, metric regexes."""

from __future__ import annotations

import datetime
import re

import numpy as np
import pyarrow as pa
import pytest

from launch.jobs import metric_definitions
from training.errors import HyperparameterError
from training.hyperparameters import parse_hyperparameters
from training.objectives.catalog import label_rule
from training.objectives.labels import bad_bounds, bad_labels, query_ids
from training.objectives.metrics import maximized
from training.read.columns import (
    FEATURE,
    GROUP,
    GROUP_KIND,
    LABEL,
    UPPER,
    UPPER_BOUND,
    ColumnPlan,
    ColumnSpec,
)

BASE = {"table": "T", "target": "Y"}


def test_query_ids_never_decrease_and_a_group_continues_across_batches():
    first, last, next_id = query_ids(pa.array(["b", "b", "a", "a", "c"]), None, 0)
    np.testing.assert_array_equal(first, [0, 0, 1, 1, 2])
    second, last, next_id = query_ids(pa.array(["c", "c", "d"]), last, next_id)  # "c" goes on from the last batch
    np.testing.assert_array_equal(second, [2, 2, 3])
    empty, last_after, next_after = query_ids(pa.array([], pa.string()), last, next_id)
    assert len(empty) == 0 and (last_after, next_after) == ("d", 4)
    third, _, _ = query_ids(pa.array(["e"]), last, next_id)
    np.testing.assert_array_equal(third, [4])


def _survival_plan() -> ColumnPlan:
    return ColumnPlan((ColumnSpec("X", "REAL", "numeric", FEATURE), ColumnSpec("LOWER", "REAL", "numeric", LABEL),
                       ColumnSpec("UPPER", "REAL", UPPER_BOUND.name, UPPER),
                       ColumnSpec("Q", "DATE", GROUP_KIND.name, GROUP)))


def test_a_null_upper_bound_is_right_censored_and_the_bounds_reach_the_matrix():
    plan = _survival_plan()
    spilled = plan.to_spill([pa.array([1.0, 2.0]), pa.array([3, 0]), pa.array([None, 5.5]),
                             pa.array([datetime.date(2024, 1, 2), datetime.date(2024, 1, 2)])])
    bounds = plan.bounds(spilled)
    np.testing.assert_array_equal(bounds["label_lower_bound"], [3.0, 0.0])
    np.testing.assert_array_equal(bounds["label_upper_bound"], [np.inf, 5.5])
    features, label, weight = plan.matrix(spilled)
    assert features.shape == (2, 1) and weight is None and plan.feature_names == ["X"]  # bounds and group: no features
    assert plan.group_values(spilled).to_pylist() == ["2024-01-02", "2024-01-02"]
    assert ColumnPlan.from_json(plan.to_json()) == plan
    assert bad_bounds(pa.array([3.0, 6.0]), pa.array([np.inf, 5.5])) == 1


def test_label_rules_follow_the_objective_and_the_binary_ranking_metrics():
    assert label_rule("reg:squarederror", ["rmse"]) is None
    assert label_rule("rank:ndcg", ["ndcg@5"])[0] == "objective rank:ndcg"
    asks, rule = label_rule("rank:ndcg", ["ndcg@5", "map@3-"])
    assert asks == "eval_metric map@3-" and bad_labels((asks, rule), pa.array([0.0, 1.0, 2.0, 0.5])) == 2
    assert bad_labels(label_rule("reg:logistic", []), pa.array([0.2, 1.5, None])) == 1
    assert bad_labels(label_rule("survival:aft", []), pa.array([0.0, -1.0])) == 1
    # what XGBoost would refuse with a C++ check (a traceback on one host while the others wait)
    assert bad_labels(label_rule("count:poisson", []), pa.array([0.0, 3.0, -1.0])) == 1
    assert bad_labels(label_rule("reg:tweedie", []), pa.array([0.0, -0.5])) == 1
    assert bad_labels(label_rule("reg:gamma", []), pa.array([0.0, 0.1, -2.0])) == 2  # zero too
    assert bad_labels(label_rule("reg:squaredlogerror", []), pa.array([-1.0, -0.5, 4.0])) == 1


def test_the_job_s_own_metrics_go_with_their_objective_s_kind():
    for objective, extra in (("rank:ndcg", {"group_column": "Q"}), ("survival:cox", {}), ("binary:logistic", {})):
        with pytest.raises(HyperparameterError, match="'r2' needs a regression"):
            parse_hyperparameters({**BASE, "objective": objective, "eval_metric": "r2", **extra})
    with pytest.raises(HyperparameterError, match="'f1' needs a classification"):
        parse_hyperparameters({**BASE, "objective": "rank:ndcg", "group_column": "Q", "eval_metric": "f1"})
    assert parse_hyperparameters({**BASE, "objective": "count:poisson", "eval_metric": "r2"}).custom_metrics == ["r2"]


def test_the_tweedie_metric_is_named_as_xgboost_names_it():
    hps = parse_hyperparameters({**BASE, "objective": "reg:tweedie", "tweedie_variance_power": "1.123456789"})
    assert hps.eval_metrics == ["tweedie-nloglik@1.12346"]  # XGBoost's log line: 6 significant digits


@pytest.mark.parametrize("metric", ["ndcg@5", "ndcg-", "ndcg@10-", "map@3", "pre@2", "ndcg", "error@0.7", "auc"])
def test_metric_forms_parse(metric):
    objective = "binary:logistic" if metric.startswith(("error", "auc")) else "rank:ndcg"
    hps = parse_hyperparameters({**BASE, "objective": objective, "group_column": "Q" if "rank" in objective else "",
                                 "eval_metric": metric})
    assert hps.eval_metrics == [metric]


@pytest.mark.parametrize(("given", "fragment"), [
    ({"eval_metric": "ndcg@five"}, "'eval_metric' must list metrics from"),
    ({"eval_metric": "rmse@3"}, "'eval_metric' must list metrics from"),
    ({"eval_metric": "aft-nloglik"}, "eval_metric aft-nloglik needs label bounds: use objective=survival:aft"),
    ({"objective": "binary:logistic", "eval_metric": "cox-nloglik"}, "needs censored times"),
    ({"objective": "multi:softprob", "eval_metric": "logloss"}, "use mlogloss or merror"),
    ({"eval_metric": "quantile"}, "needs quantile_alpha: use objective=reg:quantileerror"),
    ({"objective": "rank:ndcg"}, "set group_column to the table's query (group) column"),
    ({"group_column": "Q"}, "group_column applies to rank:* objectives"),
    ({"objective": "survival:aft"}, "set label_upper_column"),
    ({"objective": "survival:aft", "target": "", "label_upper_column": "U"}, "set label_lower_column (or target)"),
    ({"label_upper_column": "U"}, "label_upper_column applies to objective=survival:aft"),
    ({"target": ""}, "hyperparameter 'target' is required"),
])
def test_objective_misfits_fail_naming_the_fix(given, fragment):
    with pytest.raises(HyperparameterError, match=re.escape(fragment)):
        parse_hyperparameters({**BASE, **given})


def test_ranking_reads_by_group_in_hash_mode_with_one_note_each():
    hps = parse_hyperparameters({**BASE, "objective": "rank:pairwise", "group_column": "Q", "shard_key": "ID"})
    assert hps["read_mode"] == "hash" and hps.ranking and hps.eval_metrics == ["ndcg@32"]
    assert [n.split(" ", 1)[0] for n in hps.notes] == ["read_mode=scan", "shard_key"]
    aft = parse_hyperparameters({**BASE, "objective": "survival:aft", "label_upper_column": "U",
                                 "aft_loss_distribution": "extreme", "aft_loss_distribution_scale": "0.7"})
    params = aft.xgboost_params()
    assert aft.interval and (params["aft_loss_distribution"], params["aft_loss_distribution_scale"]) == ("extreme", 0.7)
    tweedie = parse_hyperparameters({**BASE, "objective": "reg:tweedie", "tweedie_variance_power": "1.3"})
    assert tweedie.eval_metrics == ["tweedie-nloglik@1.3"]  # as XGBoost names it in its log


@pytest.mark.parametrize(("metric", "higher"), [
    ("validation-ndcg@5", True), ("validation-ndcg@5-", True), ("validation-map", True), ("validation-pre@3", True),
    ("validation-interval-regression-accuracy", True), ("validation-auc", True), ("validation-mape", False),
    ("validation-aft-nloglik", False), ("validation-cox-nloglik", False), ("validation-rmse", False)])
def test_a_tuning_job_picks_the_best_trial_in_each_metric_s_direction(metric, higher):
    assert maximized(metric) is higher


def test_metric_definitions_read_ranking_and_survival_names_from_the_log():
    line = "2026-11-02 10:00:00 127.0.0.1 [3]\ttrain-ndcg@5-:0.91\tvalidation-ndcg@5-:0.8712\tvalidation-aft-nloglik:1.5e-01"
    found = {d["Name"]: re.search(d["Regex"], line) for d in metric_definitions(["ndcg@5-", "aft-nloglik"])}
    assert float(found["validation:ndcg@5-"].group(1)) == 0.8712
    assert float(found["validation:aft-nloglik"].group(1)) == 0.15
