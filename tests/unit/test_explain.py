"""Per-row explanations: each row's largest SHAP contributions, named as the table names the features."""

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from training.model import booster as model
from training.model.booster import explain_rows
from training.model.explain import explanation_columns, top_k
from training.read.columns import FEATURE, LABEL, ColumnPlan, ColumnSpec

# "price[usd]" is not a name XGBoost accepts: the model knows it as price_usd_, the answer as the table does
PLAN = ColumnPlan((ColumnSpec("price[usd]", "REAL", "numeric", FEATURE), ColumnSpec("city", "TEXT", "categorical", FEATURE),
                   ColumnSpec("noise", "REAL", "numeric", FEATURE), ColumnSpec("label", "TEXT", "class", LABEL)),
                  {"city": ("lima", "oslo", "rome"), "label": ("cat", "dog", "emu")})
NUMERIC = ColumnPlan(PLAN.columns[:3] + (ColumnSpec("y", "REAL", "numeric", LABEL),), {"city": ("lima", "oslo", "rome")})


def _rows(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"price[usd]": rng.normal(size=n), "city": rng.choice(["lima", "oslo", "rome"], n),
                         "noise": rng.normal(size=n) * 0.01})


def _train(plan: ColumnPlan, label: np.ndarray, **params: object) -> xgb.Booster:
    rows = _rows()
    data = xgb.DMatrix(plan.feature_matrix(rows), label, feature_names=plan.xgboost_feature_names,
                       feature_types=plan.feature_types, enable_categorical=True)
    booster = xgb.train({"max_depth": 3, **params} if params.get("booster") != "gblinear" else params, data, 20)
    model.embed_plan(booster, plan)
    return booster


def test_a_row_is_explained_by_its_largest_contributions_named_as_the_table_names_them():
    rows = _rows()
    booster = _train(NUMERIC, 3.0 * rows["price[usd]"].to_numpy() + (rows["city"] == "rome").to_numpy())
    out = explain_rows(booster, NUMERIC, rows.head(50), 2)
    assert list(out.columns) == explanation_columns(2) == ["shap_1_feature", "shap_1_value", "shap_2_feature",
                                                           "shap_2_value"]
    assert set(out["shap_1_feature"]) <= {"price[usd]", "city"} and "price[usd]" in set(out["shap_1_feature"])
    assert (out["shap_1_value"].abs() >= out["shap_2_value"].abs()).all()
    assert "noise" not in set(out["shap_1_feature"])  # it never moved a prediction much
    # all three contributions and the bias add up to the prediction: what is left is the same for every row
    every = explain_rows(booster, NUMERIC, rows.head(50), 3)
    total = sum(every[f"shap_{i}_value"] for i in (1, 2, 3))
    left = model.predict_rows(booster, NUMERIC, rows.head(50))["prediction"] - total
    np.testing.assert_allclose(left, left.iloc[0], atol=1e-4)


def test_a_multiclass_row_is_explained_by_its_predicted_class():
    rows = _rows()
    codes = rows["city"].map({"lima": 0, "oslo": 1, "rome": 2}).to_numpy()
    booster = _train(PLAN, codes.astype(np.float32), objective="multi:softprob", num_class=3)
    out = explain_rows(booster, PLAN, rows.head(30), 1)
    assert set(out["shap_1_feature"]) == {"city"}  # the city decides the class
    assert (out["shap_1_value"] > 0).all()  # and pushes each row towards the class it predicts


def test_null_and_unseen_values_are_explained_as_missing():
    rows = _rows()
    booster = _train(NUMERIC, rows["price[usd]"].to_numpy())
    odd = pd.DataFrame({"price[usd]": [None, 1.0], "city": ["paris", None], "noise": [None, None]})
    out = explain_rows(booster, NUMERIC, odd, 3)
    assert len(out) == 2 and set(out.iloc[0][["shap_1_feature", "shap_2_feature", "shap_3_feature"]]) == {
        "price[usd]", "city", "noise"}


def test_a_linear_model_is_explained_by_coefficient_times_value():
    plan = ColumnPlan((NUMERIC.columns[0], NUMERIC.columns[2], NUMERIC.columns[3]), {})  # gblinear: numbers only
    rows = _rows()
    booster = _train(plan, 2.0 * rows["price[usd]"].to_numpy(), booster="gblinear", eta=0.5)
    out = explain_rows(booster, plan, pd.DataFrame({"price[usd]": [1.0, -2.0], "noise": [0.0, 0.0]}), 1)
    assert list(out["shap_1_feature"]) == ["price[usd]", "price[usd]"]
    assert out["shap_1_value"][1] == pytest.approx(-2.0 * out["shap_1_value"][0], rel=1e-4)


@pytest.mark.parametrize("value, expected", [(0, 0), ("2", 2), (" 3 ", 3), (None, 0), ("", 0), (np.int64(1), 1)])
def test_top_k_reads_a_whole_number_up_to_the_feature_count(value, expected):
    assert top_k(value, NUMERIC) == expected


@pytest.mark.parametrize("value", [4, "-1", "two", "2.5", 2.0, True])
def test_top_k_outside_the_features_is_refused_naming_the_range(value):
    with pytest.raises(ValueError, match=r"^explain=.* is not a whole number from 0 \(no explanation\) to 3 \(the "
                                         r"model's feature count\)"):
        top_k(value, NUMERIC)
