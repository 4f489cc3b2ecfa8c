"""The built-in SageMaker XGBoost algorithm's hyperparameters run unchanged here.

BUILT_IN lists every hyperparameter the built-in algorithm declares, with a value it accepts:
aws/sagemaker-xgboost-container, src/sagemaker_xgboost_container/algorithm_mode/
hyperparameter_validation.py (commit cb8df91), plus its four aliases. Each must parse, or be
ignored or renamed with one note, never fail.
"""

import json

import numpy as np
import pytest
import xgboost as xgb

from launch.tuning_space import default_space, parse_range
from training.errors import DataError, HyperparameterError
from training.hyperparameters import ALIASES, RETIRED, SPECS, constraints, parse_hyperparameters

BASE = {"table": "T", "target": "Y"}

BUILT_IN = {
    "num_round": "100", "csv_weights": "0", "early_stopping_rounds": "10", "booster": "gbtree", "verbosity": "1",
    "nthread": "4", "eta": "0.2", "gamma": "4", "max_depth": "5", "min_child_weight": "6", "max_delta_step": "1",
    "subsample": "0.8", "colsample_bytree": "0.9", "colsample_bylevel": "0.9", "colsample_bynode": "0.9",
    "lambda": "1", "alpha": "0", "tree_method": "hist", "sketch_eps": "0.03", "scale_pos_weight": "1",
    "updater": "grow_histmaker,prune", "dsplit": "row", "refresh_leaf": "1", "process_type": "default",
    "grow_policy": "depthwise", "max_leaves": "0", "max_bin": "256", "predictor": "auto",
    "monotone_constraints": "(1,0,-1)", "interaction_constraints": "[[0,1],[2]]", "sample_type": "uniform",
    "normalize_type": "tree", "rate_drop": "0.1", "one_drop": "0", "skip_drop": "0", "lambda_bias": "0",
    "tweedie_variance_power": "1.5", "objective": "reg:squarederror", "num_class": "3", "base_score": "0.5",
    "_kfold": "5", "_num_cv_round": "1", "_tuning_objective_metric": "validation:rmse", "eval_metric": "rmse",
    "seed": "7", "num_parallel_tree": "1", "save_model_on_termination": "false", "aft_loss_distribution": "normal",
    "aft_loss_distribution_scale": "1.0", "deterministic_histogram": "true", "sampling_method": "uniform",
    "prob_buffer_row": "2", "use_dask_gpu_training": "false",
    "learning_rate": "0.2", "min_split_loss": "4", "reg_lambda": "1", "reg_alpha": "0",
}
BUILT_IN_OBJECTIVES = ("binary:hinge", "binary:logistic", "binary:logitraw", "count:poisson", "multi:softmax",
                       "multi:softprob", "rank:map", "rank:ndcg", "rank:pairwise", "reg:absoluteerror", "reg:gamma",
                       "reg:linear", "reg:logistic", "reg:pseudohubererror", "reg:squarederror", "reg:squaredlogerror",
                       "reg:tweedie", "survival:aft", "survival:cox")
"""The built-in algorithm's objectives (algorithm_mode/hyperparameter_validation.py)."""
COLUMNS = {"rank:": {"group_column": "QUERY"}, "survival:aft": {"label_upper_column": "UPPER"}}
"""What the objectives of a family need besides the target."""


@pytest.mark.parametrize("name", sorted(BUILT_IN))
def test_every_built_in_hyperparameter_parses_or_is_noted(name):
    value = BUILT_IN[name]
    hps = parse_hyperparameters({**BASE, name: value})
    if name in RETIRED:
        assert any(note.startswith(f"{name} is ignored: ") for note in hps.notes), hps.notes
    elif name in ALIASES:
        assert hps[ALIASES[name]] == parse_hyperparameters({**BASE, ALIASES[name]: value})[ALIASES[name]]
    elif not name.startswith("_"):
        assert name in SPECS


def test_a_built_in_job_s_whole_set_parses_at_once_with_a_note_per_difference():
    given = {k: v for k, v in BUILT_IN.items() if k not in ("num_class", "learning_rate", "min_split_loss")}
    hps = parse_hyperparameters({**BASE, **given, "objective": "reg:linear", "booster": "dart",
                                 "sampling_method": "gradient_based"})
    assert hps["objective"] == "reg:squarederror" and hps["eta"] == 0.2 and hps["lambda"] == 1.0
    notes = "\n".join(hps.notes)
    for fragment in ("objective=reg:linear is read as reg:squarederror", "predictor is ignored",
                     "_kfold is ignored", "updater=grow_histmaker,prune is read as grow_quantile_histmaker,prune",
                     "sampling_method=gradient_based needs a GPU"):
        assert fragment in notes
    params = hps.xgboost_params()
    assert params["updater"] == "grow_quantile_histmaker,prune" and params["sampling_method"] == "uniform"
    assert params["rate_drop"] == 0.1 and "predictor" not in params and "sketch_eps" not in params


@pytest.mark.parametrize("objective", [*BUILT_IN_OBJECTIVES, "reg:quantileerror"])
def test_every_built_in_objective_parses_with_xgboost_s_default_metric(objective):
    needs = next((cols for prefix, cols in COLUMNS.items() if objective.startswith(prefix)), {})
    hps = parse_hyperparameters({**BASE, **needs, "objective": objective})
    assert hps.eval_metrics == [xgb_default_metric(objective, hps)]  # XGBoost trains with the parameters sent


def xgb_default_metric(objective, hps):
    """The metric XGBoost 3 reports for ``objective`` when none is set (tweedie: with its variance power)."""
    rng = np.random.default_rng(0)
    features, label = rng.normal(size=(40, 2)), rng.integers(0, 2, 40).astype(float) + 0.5 * (objective == "reg:gamma")
    data = xgb.DMatrix(features, label=label, qid=np.repeat(np.arange(4), 10))
    data.set_float_info("label_lower_bound", label + 1)
    data.set_float_info("label_upper_bound", label + 2)
    params = {k: v for k, v in hps.xgboost_params().items() if k != "eval_metric"}
    if objective.startswith("multi:"):
        params["num_class"] = 2
    booster = xgb.train(params, data, 1)
    assert json.loads(booster.save_config())["learner"]["objective"]["name"] == hps["objective"]
    return booster.eval(data).split("\t")[1].split(":")[0].removeprefix("eval-")


def test_xgboost_s_own_defaults_are_kept_where_they_depend_on_the_objective_or_booster():
    poisson = parse_hyperparameters({**BASE, "objective": "count:poisson"}).xgboost_params()
    assert "max_delta_step" not in poisson  # XGBoost's Poisson default is 0.7, not the table's
    assert "scale_pos_weight" not in poisson  # a logistic objective's: XGBoost would warn it is unused
    linear = parse_hyperparameters({**BASE, "booster": "gblinear", "max_depth": "3"})
    assert not {"max_depth", "subsample", "tree_method", "max_bin"} & set(linear.xgboost_params())
    assert "max_depth=3 is not used: it applies to trees, and booster is gblinear" in linear.notes


BUILT_IN_EVAL_METRICS = (
    "accuracy", "auc", "aucpr", "balanced_accuracy", "f1", "f1_binary", "f1_macro", "map", "ndcg", "precision", "r2",
    "recall", "precision_macro", "precision_micro", "recall_macro", "recall_micro", "aft-nloglik", "cox-nloglik",
    "error", "gamma-deviance", "gamma-nloglik", "interval-regression-accuracy", "logloss", "mae", "mape", "merror",
    "mlogloss", "mphe", "mse", "poisson-nloglik", "rmse", "rmsle", "tweedie-nloglik")
"""The built-in algorithm's eval_metric values (XGB_MAXIMIZE_METRICS + XGB_MINIMIZE_METRICS, xgb_constants.py)."""
OBJECTIVE_OF = {"reg:squarederror": {}, "binary:logistic": {}, "multi:softprob": {}, "rank:ndcg": {"group_column": "Q"},
                "survival:aft": {"label_upper_column": "U"}, "survival:cox": {}, "reg:gamma": {}, "reg:tweedie": {},
                "count:poisson": {}}


@pytest.mark.parametrize("metric", BUILT_IN_EVAL_METRICS)
def test_every_built_in_eval_metric_is_accepted_with_an_objective_it_fits(metric):
    fits = []
    for objective, extra in OBJECTIVE_OF.items():
        try:
            parse_hyperparameters({**BASE, "objective": objective, "eval_metric": metric, **extra})
        except HyperparameterError:
            continue
        fits.append(objective)
    assert fits, metric


def test_an_alias_and_its_name_with_two_values_is_refused():
    with pytest.raises(HyperparameterError, match="'learning_rate' and 'eta' are one setting"):
        parse_hyperparameters({**BASE, "eta": "0.1", "learning_rate": "0.3"})


def test_parameters_of_another_booster_or_objective_are_not_sent_and_are_noted():
    hps = parse_hyperparameters({**BASE, "rate_drop": "0.2", "tweedie_variance_power": "1.3"})
    params = hps.xgboost_params()
    assert "rate_drop" not in params and "tweedie_variance_power" not in params  # XGBoost would warn
    assert "rate_drop=0.2 is not used: it applies with booster=dart" in hps.notes
    tweedie = parse_hyperparameters({**BASE, "objective": "reg:tweedie", "tweedie_variance_power": "1.3"})
    assert tweedie.xgboost_params()["tweedie_variance_power"] == 1.3 and not tweedie.notes
    assert "base_score" not in hps.xgboost_params()  # unset: XGBoost estimates it


@pytest.mark.parametrize(
    ("given", "fragment"),
    [
        ({"process_type": "update", "updater": "refresh"}, "remove process_type"),
        ({"csv_weights": "1"}, "set weight_column"),
        ({"updater": "grow_gpu_hist"}, "not a tree updater"),
        ({"booster": "gblinear", "updater": "grow_histmaker"}, "shotgun, coord_descent with booster=gblinear"),
        ({"booster": "gblinear", "monotone_constraints": "(1)"}, "use booster=gbtree"),
        ({"monotone_constraints": "(1,2)"}, "use -1 (decreasing), 0 (none) or 1 (increasing)"),
        ({"monotone_constraints": "up"}, "'monotone_constraints' must be a tuple"),
        ({"interaction_constraints": "[0,1]"}, "'interaction_constraints' must be a list of feature groups"),
        ({"tweedie_variance_power": "2"}, "must be a number in (1, 2)"),
    ],
)
def test_combinations_that_cannot_train_fail_in_one_line_with_the_fix(given, fragment):
    with pytest.raises(HyperparameterError) as info:
        parse_hyperparameters({**BASE, **given})
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_csv_weights_maps_to_the_weight_column():
    hps = parse_hyperparameters({**BASE, "csv_weights": "1", "weight_column": "W"})
    assert "csv_weights=1: the weights are the column weight_column=W" in hps.notes


FEATURES = ["AGE", "Income", "REGION", "Units Sold"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("(1,0,-1)", "(1,0,-1,0)"),  # XGBoost's tuple form; unnamed trailing features unconstrained
        ("[0,0,0,1]", "(0,0,0,1)"),
        ('{"age": 1, "\\"Income\\"": -1}', "(1,-1,0,0)"),  # SQL meaning: age is AGE, "Income" is Income
        ('{"Income": -1, "Units Sold": 1}', "(0,-1,0,1)"),  # a feature's stored name matches as it is
    ],
)
def test_monotone_constraints_by_index_or_by_name(text, expected):
    assert constraints.resolve_monotone(text, FEATURES) == expected


def test_interaction_constraints_by_index_or_by_name():
    assert constraints.resolve_interaction('[["age","Income"],[2, "Units Sold"]]', FEATURES) == "[[0,1],[2,3]]"
    with pytest.raises(DataError, match=r"names 'income'.*did you mean 'Income'"):
        constraints.resolve_interaction('[["income"]]', FEATURES)
    with pytest.raises(DataError, match="names feature 4, but the job has 4 features"):
        constraints.resolve_monotone("(0,0,0,0,1)", FEATURES)


def test_tuning_ranges_of_the_new_hyperparameters_are_there_but_not_searched_by_default():
    space = default_space()
    assert {"eta", "max_depth", "subsample"} <= set(space)
    assert not {"max_delta_step", "colsample_bynode", "rate_drop"} & set(space)  # the default search stays as it was
    assert parse_range("tuning.ranges.colsample_bynode", "colsample_bynode", {}) == SPECS["colsample_bynode"].tuning
    with pytest.raises(Exception, match="has no range of its own"):
        parse_range("tuning.ranges.booster", "booster", {})
