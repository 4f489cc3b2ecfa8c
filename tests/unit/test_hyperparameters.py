"""The hyperparameter table: what a job accepts, what it rejects, and how it says so."""

import json

import pytest

from training.errors import HyperparameterError
from training.hyperparameters import HYPERPARAMETERS, SPECS, parse_hyperparameters, tunable

BASE = {"table": "T", "target": "Y"}


def test_values_arrive_as_strings_and_are_typed():
    hps = parse_hyperparameters({**BASE, "eta": "0.1", "max_depth": "8", "num_round": "50", "objective": "reg:gamma"})
    assert hps["eta"] == 0.1 and hps["max_depth"] == 8 and hps["num_round"] == 50
    assert hps["objective"] == "reg:gamma"


def test_json_encoded_strings_are_decoded_once():
    # SageMaker SDKs sometimes JSON-encode string values again ("\"T\"")
    hps = parse_hyperparameters({"table": json.dumps("DB.S.T"), "target": json.dumps("Y"), "eta": json.dumps(0.2)})
    assert hps["table"] == "DB.S.T" and hps["eta"] == 0.2


def test_defaults_fill_every_declared_hyperparameter():
    hps = parse_hyperparameters(BASE)
    assert set(hps.values) == set(SPECS)
    assert hps["num_round"] == 100 and hps["validation_fraction"] == 0.2


def test_reserved_keys_are_ignored():
    hps = parse_hyperparameters({**BASE, "_tuning_objective_metric": "validation:rmse", "sagemaker_program": "x"})
    assert "_tuning_objective_metric" not in hps.values


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("etaa", "0.1", "unknown hyperparameter 'etaa'"),
        ("eta", "fast", "'eta' must be a number in (0, 1]"),
        ("eta", "0", "'eta' must be a number in (0, 1]"),
        ("max_depth", "6.5", "'max_depth' must be an integer in [0, inf], got '6.5'"),
        ("num_round", "true", "'num_round' must be an integer"),
        ("validation_fraction", "0", "'validation_fraction' must be a number in (0, 1)"),
        ("validation_fraction", "1", "'validation_fraction' must be a number in (0, 1)"),
        ("objective", "rank:lambdamart", "'objective' must be one of"),
        ("eval_metric", "rmse,bogus", "'eval_metric' must list metrics"),
        ("eta", "nan", "'eta' must be a number"),
    ],
)
def test_bad_values_name_the_key_and_the_fix(key, value, fragment):
    with pytest.raises(HyperparameterError) as info:
        parse_hyperparameters({**BASE, key: value})
    message = str(info.value)
    assert fragment in message
    assert ":" in message and "\n" not in message


def test_required_hyperparameters_are_named():
    with pytest.raises(HyperparameterError, match="'table' is required"):
        parse_hyperparameters({"target": "Y"})


def test_every_tuning_range_lies_within_the_valid_range():
    for spec in tunable():
        for bound in (spec.tuning.low, spec.tuning.high):
            raw = str(int(bound)) if spec.type is int else str(bound)
            parse_hyperparameters({**BASE, spec.name: raw})  # raises if the range is invalid


def test_xgboost_params_are_identical_for_identical_input():
    a = parse_hyperparameters({**BASE, "eta": "0.05", "eval_metric": "rmse,mae"}).xgboost_params()
    b = parse_hyperparameters({**BASE, "eta": "0.05", "eval_metric": "rmse,mae"}).xgboost_params()
    assert a == b and a["eval_metric"] == ["rmse", "mae"] and a["eta"] == 0.05
    assert "table" not in a and "num_round" not in a


def test_table_has_unique_names_and_help():
    names = [s.name for s in HYPERPARAMETERS]
    assert len(names) == len(set(names))
    assert all(s.help for s in HYPERPARAMETERS)


@pytest.mark.parametrize("method", ["approx", "exact", "auto"])
def test_a_built_in_tree_method_is_accepted_and_trains_as_hist(method: str) -> None:
    """QuantileDMatrix refuses approx and exact ('Only the hist tree method can use QuantileDMatrix')."""
    import numpy as np
    import xgboost as xgb

    params = parse_hyperparameters({"table": "T", "target": "Y", "tree_method": method}).xgboost_params()
    assert params["tree_method"] == "hist"
    rng = np.random.default_rng(0)
    matrix = xgb.QuantileDMatrix(rng.normal(size=(200, 3)), rng.normal(size=200), max_bin=16)
    assert xgb.train({**params, "max_bin": 16}, matrix, num_boost_round=2).num_boosted_rounds() == 2


@pytest.mark.parametrize("objective", ["reg:squarederror", "reg:gamma", "reg:tweedie", "reg:logistic", "count:poisson",
                                       "reg:quantileerror", "survival:cox", "multi:softmax"])
@pytest.mark.parametrize("metric", ["auc", "aucpr"])
def test_auc_is_refused_where_it_means_nothing_naming_the_metrics_that_apply(objective, metric):
    """XGBoost reports a meaningless number, nan, or fails its own check for a regression or survival label,
    and a class id has no order: a tuning job on it would waste every trial."""
    first = "mlogloss" if objective.startswith("multi:") else "rmse"
    with pytest.raises(HyperparameterError) as info:
        parse_hyperparameters({**BASE, "objective": objective, "eval_metric": f"{first},{metric}"})
    message = str(info.value)
    assert f"eval_metric {metric} needs classes or ranked lists" in message
    applicable = message.split(f"(metrics of {objective}: ", 1)[1].rstrip(")").split(", ")
    assert metric not in applicable and applicable  # the line names the metrics that do apply


@pytest.mark.parametrize("objective", ["binary:logistic", "binary:hinge", "multi:softprob", "rank:ndcg"])
def test_auc_goes_with_classes_and_ranked_lists(objective):
    extra = {"group_column": "Q"} if objective.startswith("rank:") else {}
    assert parse_hyperparameters({**BASE, "objective": objective, "eval_metric": "auc,aucpr", **extra})


def test_aucpr_on_ranked_lists_asks_for_relevant_or_not_labels():
    """XGBoost's PR-AUC of a ranking fails on graded relevance: the job counts such rows and fails in one line."""
    hps = parse_hyperparameters({**BASE, "objective": "rank:ndcg", "group_column": "Q", "eval_metric": "ndcg,aucpr"})
    asks, rule = hps.read_options().label_rule
    assert asks == "eval_metric aucpr" and (rule.low, rule.high, rule.whole) == (0.0, 1.0, True)


def test_num_class_1_is_refused_and_0_or_none_counts_the_classes():
    with pytest.raises(HyperparameterError, match=r"'num_class' is 1, and objective multi:softprob needs 2 classes"):
        parse_hyperparameters({**BASE, "objective": "multi:softprob", "num_class": "1"})
    for given in ({}, {"num_class": "0"}):
        assert parse_hyperparameters({**BASE, "objective": "multi:softprob", **given})["num_class"] == 0


@pytest.mark.parametrize(("text", "value"), [(".5", 0.5), ("+0.5", 0.5), ("5e-1", 0.5), (" 0.5", 0.5)])
def test_a_number_is_read_as_xgboost_reads_it(text, value):
    assert parse_hyperparameters({**BASE, "eta": text})["eta"] == value


@pytest.mark.parametrize("text", ["1_000", "0x10", "inf", "1.5.2"])
def test_what_is_not_a_number_is_refused_as_such(text):
    with pytest.raises(HyperparameterError, match=rf"'max_depth' must be an integer in \[0, inf\], got '{text}': fix"):
        parse_hyperparameters({**BASE, "max_depth": text})
