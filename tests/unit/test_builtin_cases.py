"""The built-in SageMaker XGBoost algorithm's own hyperparameter test cases and documented ranges, run
against our parser.

Sources (aws/sagemaker-xgboost-container at cb8df91): test/unit/algorithm_mode/
test_hyperparameter_validation.py and test_algorithm_mode.py (their literal cases), and the ranges
declared in src/sagemaker_xgboost_container/algorithm_mode/hyperparameter_validation.py, each at its
bounds. Every case states the built-in's verdict; where ours differs, the case names the difference,
and docs/hyperparameters.md's table "Where we differ from the built-in algorithm, and why" must
list it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from training.errors import HyperparameterError
from training.hyperparameters import parse_hyperparameters

BASE = {"table": "T", "target": "Y"}
"""What our job needs besides the built-in's hyperparameters: the table and its target column."""
DOCS = Path(__file__).resolve().parents[2] / "docs" / "hyperparameters.md"

ACCEPT, REFUSE = True, False

# (case, hyperparameters, the built-in's verdict, the difference's key in the docs table or None)
LITERAL = [
    *[(f"auc with {objective}", {"eval_metric": "auc", "objective": objective}, REFUSE,
       "auc-softprob" if objective == "multi:softprob" else None)
      for objective in ("count:poisson", "reg:gamma", "reg:logistic", "reg:squarederror", "reg:tweedie",
                        "multi:softmax", "multi:softprob", "survival:cox")],
    ("verbosity 0", {"num_round": "1", "verbosity": "0"}, ACCEPT, None),
    ("verbosity 3", {"num_round": "1", "verbosity": "3"}, ACCEPT, None),
    ("verbosity 4", {"num_round": "1", "verbosity": "4"}, REFUSE, None),
    ("num_parallel_tree 10", {"num_round": "5", "num_parallel_tree": "10"}, ACCEPT, None),
    ("num_parallel_tree -1", {"num_round": "5", "num_parallel_tree": "-1"}, REFUSE, None),
    ("num_parallel_tree 0", {"num_round": "5", "num_parallel_tree": "0"}, REFUSE, None),
    ("save_model_on_termination true", {"num_round": "5", "save_model_on_termination": "true"}, ACCEPT, None),
    ("save_model_on_termination false", {"num_round": "5", "save_model_on_termination": "false"}, ACCEPT, None),
    ("save_model_on_termination incorrect", {"num_round": "5", "save_model_on_termination": "incorrect"}, REFUSE,
     None),
    ("hyperparameters 1", {"max_depth": "5", "eta": "0.2", "gamma": "4", "min_child_weight": "6", "subsample": "0.8",
                           "objective": "binary:logistic", "num_round": "100"}, ACCEPT, None),
    ("hyperparameters 2", {"eval_metric": "auc", "objective": "binary:logistic", "num_round": "100", "rate_drop": "0.3",
                           "tweedie_variance_power": "1.4"}, ACCEPT, None),
    ("hyperparameters 3", {"max_depth": "5", "eta": "0.2", "gamma": "4", "min_child_weight": "6", "subsample": "0.7",
                           "objective": "reg:squarederror", "num_round": "50"}, ACCEPT, None),
    *[(f"hyperparameters {n}", {"max_depth": "5", "eta": "0.2", "gamma": "4", "min_child_weight": "6",
                                "objective": "multi:softmax", "num_class": "10", "num_round": "10", **extra},
       ACCEPT, None)
      for n, extra in ((4, {}),
                       (5, {"tree_method": "exact", "monotone_constraints": "(1,0)",
                            "interaction_constraints": "[[1,2,4],[3,5]]"}),
                       (6, {"tree_method": "approx", "interaction_constraints": "[[1,2,4],[3,5]]"}),
                       (9, {"reg_lambda": "10"}), (10, {"reg_alpha": "10"}), (11, {"reg_alpha": "10", "_kfold": "5"}))],
    ("hyperparameters 7", {"max_depth": "5", "learning_rate": "0.2", "gamma": "4", "min_child_weight": "6",
                           "tree_method": "approx", "objective": "multi:softmax", "num_class": "10", "num_round": "10",
                           "interaction_constraints": "[[1,2,4],[3,5]]"}, ACCEPT, None),
    ("hyperparameters 8", {"max_depth": "5", "eta": "0.2", "min_split_loss": "4", "min_child_weight": "6",
                           "tree_method": "approx", "objective": "multi:softmax", "num_class": "10", "num_round": "10",
                           "interaction_constraints": "[[1,2,4],[3,5]]"}, ACCEPT, None),
]

# (name, value, the built-in's verdict, the difference's key or None): each documented range at its bounds
BOUNDS = [
    ("num_round", "1", ACCEPT, None), ("num_round", "0", REFUSE, None), ("num_round", "100001", ACCEPT, None),
    ("csv_weights", "2", REFUSE, None),
    ("early_stopping_rounds", "1", ACCEPT, None), ("early_stopping_rounds", "0", REFUSE, "early_stopping_rounds=0"),
    ("verbosity", "0", ACCEPT, None), ("verbosity", "3", ACCEPT, None), ("verbosity", "4", REFUSE, None),
    ("nthread", "1", ACCEPT, None), ("nthread", "0", REFUSE, "nthread=0"), ("nthread", "1025", ACCEPT, None),
    ("eta", "0", ACCEPT, "eta=0"), ("eta", "1", ACCEPT, None), ("eta", "1.1", REFUSE, None),
    ("eta", ".5", ACCEPT, None), ("eta", "+0.5", ACCEPT, None),
    ("gamma", "0", ACCEPT, None), ("gamma", "-0.1", REFUSE, None),
    ("max_depth", "0", ACCEPT, None), ("max_depth", "65", ACCEPT, None), ("max_depth", "1000", ACCEPT, None),
    ("max_depth", "-1", REFUSE, None),
    ("min_child_weight", "0", ACCEPT, None), ("min_child_weight", "-1", REFUSE, None),
    ("max_delta_step", "0", ACCEPT, None), ("max_delta_step", "-1", REFUSE, None),
    *[(name, value, verdict, None) for name in ("subsample", "colsample_bytree", "colsample_bylevel", "colsample_bynode")
      for value, verdict in (("0", REFUSE), ("1", ACCEPT))],
    ("lambda", "0", ACCEPT, None), ("lambda", "-1", REFUSE, None), ("alpha", "0", ACCEPT, None),
    ("alpha", "-1", REFUSE, None),
    ("scale_pos_weight", "0", REFUSE, None), ("scale_pos_weight", "0.01", ACCEPT, None),
    ("max_leaves", "0", ACCEPT, None), ("max_leaves", "-1", REFUSE, None),
    ("max_bin", "0", ACCEPT, "max_bin<2"), ("max_bin", "1", ACCEPT, "max_bin<2"), ("max_bin", "2", ACCEPT, None),
    ("max_bin", "65537", ACCEPT, None),
    *[(name, value, verdict, None) for name in ("rate_drop", "skip_drop")
      for value, verdict in (("0", ACCEPT), ("1", ACCEPT), ("1.1", REFUSE))],
    ("one_drop", "0", ACCEPT, None), ("one_drop", "1", ACCEPT, None), ("one_drop", "2", REFUSE, None),
    ("tweedie_variance_power", "1", REFUSE, None), ("tweedie_variance_power", "1.5", ACCEPT, None),
    ("tweedie_variance_power", "2", REFUSE, None),
    ("base_score", "0", ACCEPT, None), ("base_score", "-1", REFUSE, "base_score<0"),
    ("seed", "-2147483648", REFUSE, None), ("seed", "-2147483647", ACCEPT, None),
    ("seed", "2147483646", ACCEPT, None), ("seed", "2147483647", REFUSE, "seed=2147483647"),
    ("num_parallel_tree", "1", ACCEPT, None), ("num_parallel_tree", "0", REFUSE, None),
    ("num_class", "2", ACCEPT, None), ("num_class", "1", REFUSE, None), ("num_class", "0", REFUSE, "num_class=0"),
]
CONTEXT = {"rate_drop": {"booster": "dart"}, "one_drop": {"booster": "dart"}, "skip_drop": {"booster": "dart"},
           "tweedie_variance_power": {"objective": "reg:tweedie"}, "num_class": {"objective": "multi:softprob"}}
"""What makes a bound's hyperparameter mean something to our parser (as the built-in's case implies)."""

# Pairings the built-in's validator lets through and ours refuses, found by the side-by-side run
OTHER_DIFFERENCES = [
    ("accuracy with reg:squarederror", {"eval_metric": "accuracy", "objective": "reg:squarederror"}, ACCEPT,
     "classification metric with a regression objective"),
    ("mlogloss with reg:squarederror", {"eval_metric": "mlogloss", "objective": "reg:squarederror"}, ACCEPT,
     "mlogloss or merror with a one-output objective"),
    ("csv_weights without weight_column", {"csv_weights": "1"}, ACCEPT, "csv_weights=1 without weight_column"),
]


def _verdict(hyperparameters: dict[str, str]) -> bool:
    try:
        parse_hyperparameters({**BASE, **hyperparameters})
    except HyperparameterError as err:
        message = str(err)
        assert "\n" not in message and ": " in message, message  # one line, with its fix
        return REFUSE
    return ACCEPT


CASES = [pytest.param(hps, verdict, key, id=name) for name, hps, verdict, key in LITERAL] + \
        [pytest.param({**CONTEXT.get(name, {}), name: value}, verdict, key, id=f"{name}={value}")
         for name, value, verdict, key in BOUNDS] + \
        [pytest.param(hps, verdict, key, id=name) for name, hps, verdict, key in OTHER_DIFFERENCES]


@pytest.mark.parametrize(("hyperparameters", "built_in", "difference"), CASES)
def test_the_built_ins_case_gets_its_verdict_or_a_documented_difference(hyperparameters, built_in, difference):
    ours = _verdict(hyperparameters)
    if difference is None:
        assert ours == built_in
    else:
        assert ours != built_in
        assert f"| {difference} |" in DOCS.read_text(), f"docs/hyperparameters.md must say why: {difference}"


def test_the_differences_table_lists_only_differences_the_cases_show():
    keys = {case.values[2] for case in CASES if case.values[2]}
    table = DOCS.read_text().split("## Where we differ from the built-in algorithm, and why", 1)[1].split("\n## ", 1)[0]
    rows = {line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ") and "---" not in line}
    assert rows - {"Case"} == keys | {"num_round left out"}


def test_num_round_may_be_left_out():
    """The built-in requires num_round; ours defaults it (the table's 100), a documented difference."""
    assert parse_hyperparameters(BASE)["num_round"] == 100
