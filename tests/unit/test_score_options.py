"""A scoring job's settings: read once, every mistake one line naming the fix."""

from __future__ import annotations

import pytest

from training.errors import ConfigError
from training.scoring.options import ScoreOptions


def test_names_are_quoted_and_keys_stored_as_snowflake_stores_them() -> None:
    options = ScoreOptions.parse({"source_table": "db.public.customers", "target_table": 'DB.PUBLIC."Churn Scores"',
                                  "key_columns": 'id,"Region Code"', "tracker_port": "9100", "sagemaker_x": "y"})
    assert options.source_sql == '"DB"."PUBLIC"."CUSTOMERS"'
    assert options.target_sql == '"DB"."PUBLIC"."Churn Scores"'
    assert options.keys == ("ID", "Region Code")
    assert options.tracker_port == 9100 and options.batch_rows == 100_000


@pytest.mark.parametrize(("raw", "says"), [
    ({"target_table": "T"}, "scoring setting 'source_table' is required: name the Snowflake table (to score)"),
    ({"source_table": "S"}, "scoring setting 'target_table' is required"),
    ({"source_table": "S", "target_table": "s"}, "target_table 's' is the source table: write the predictions to "
                                                 "another table"),
    ({"source_table": "S", "target_table": "T", "keys": "ID"}, "unknown scoring setting 'keys': use one of"),
    ({"source_table": "S", "target_table": "T", "key_columns": "ID,id"}, "names a column twice"),
    ({"source_table": "S; DROP TABLE X", "target_table": "T"}, "is not a valid Snowflake table name"),
    ({"source_table": "S", "target_table": "T", "batch_rows": "10"}, "'batch_rows' must be a whole number, at least "
                                                                      "1000"),
])
def test_a_bad_setting_is_one_line(raw: dict[str, str], says: str) -> None:
    with pytest.raises(ConfigError) as err:
        ScoreOptions.parse(raw)
    assert says in str(err.value) and "\n" not in str(err.value)


def test_a_model_without_a_column_plan_is_refused_before_snowflake_is_contacted(tmp_path) -> None:
    import numpy as np
    import xgboost as xgb

    from training.collective.cluster import Cluster
    from training.scoring.job import ScoreSpec, run_scoring

    bare = tmp_path / "xgboost-model"
    xgb.train({}, xgb.DMatrix(np.eye(3), np.arange(3.0)), 2).save_model(bare)  # not written by this project
    spec = ScoreSpec(ScoreOptions.parse({"source_table": "S", "target_table": "T"}), Cluster.from_hosts(["h"], "h"), bare)
    with pytest.raises(ConfigError) as err:
        run_scoring(spec)  # no secret, no connection: it stops first
    assert str(err.value) == (f"{bare} cannot score rows as the table has them: the model has no 'column_plan' "
                              "attribute: it was not written by this project; score with a model from this project's "
                              "training job (its xgboost-model, or the MLflow model it logged)")


def test_a_linear_model_scores_through_predict_rows_with_xgboosts_own_numbers(tmp_path) -> None:
    """XGBoost 3.0 predicts a gblinear model only through a matrix: predict_rows (the endpoint, the MLflow model,
    the batch job's child process) takes that path and gives XGBoost's own numbers."""
    import numpy as np
    import xgboost as xgb

    from training.model.booster import embed_plan, predict_rows, scoring_matrix
    from training.read.columns import FEATURE, LABEL, ColumnPlan, ColumnSpec

    plan = ColumnPlan((ColumnSpec("a", "REAL", "numeric", FEATURE), ColumnSpec("b", "REAL", "numeric", FEATURE),
                       ColumnSpec("y", "REAL", "numeric", LABEL)))
    x = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
    booster = xgb.train({"booster": "gblinear"}, xgb.DMatrix(x, x @ [1.0, -2.0], feature_names=plan.xgboost_feature_names),
                        5)
    embed_plan(booster, plan)
    got = predict_rows(booster, plan, {"a": x[:, 0], "b": x[:, 1]})["prediction"].to_numpy()
    np.testing.assert_array_equal(got, booster.predict(scoring_matrix(plan, x)))


@pytest.mark.parametrize("explain", ["3", "-1", "many"])
def test_an_explanation_beyond_the_models_features_is_refused_before_snowflake_is_contacted(tmp_path, explain) -> None:
    import numpy as np
    import xgboost as xgb

    from training.collective.cluster import Cluster
    from training.model.booster import embed_plan
    from training.read.columns import FEATURE, LABEL, ColumnPlan, ColumnSpec
    from training.scoring.job import ScoreSpec, run_scoring

    plan = ColumnPlan((ColumnSpec("a", "REAL", "numeric", FEATURE), ColumnSpec("b", "REAL", "numeric", FEATURE),
                       ColumnSpec("y", "REAL", "numeric", LABEL)))
    booster = xgb.train({}, xgb.DMatrix(np.eye(2, dtype=np.float32), [0.0, 1.0], feature_names=["a", "b"]), 2)
    embed_plan(booster, plan)
    path = tmp_path / "xgboost-model"
    booster.save_model(path)
    with pytest.raises(ConfigError) as err:
        spec = ScoreSpec(ScoreOptions.parse({"source_table": "S", "target_table": "T", "explain": explain}),
                         Cluster.from_hosts(["h"], "h"), path)
        run_scoring(spec)  # no secret, no connection: it stops first
    assert str(err.value) == (
        "scoring setting explain=3 is not a whole number from 0 (no explanation) to 2 (the model's feature count): "
        "give how many features to explain each row with" if explain == "3" else
        "scoring setting 'explain' must be a whole number, at least 0: fix its value")
