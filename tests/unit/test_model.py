"""The model file carries its column plan: scored rows come back with the table's class names, and a
checkpoint never continues with other category codes."""

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from training.errors import DataError
from training.model import booster as model
from training.read.columns import FEATURE, LABEL, ColumnPlan, ColumnSpec
from training.train.boosting import _check_resumable

PLAN = ColumnPlan((ColumnSpec("x", "REAL", "numeric", FEATURE), ColumnSpec("city", "TEXT", "categorical", FEATURE),
                   ColumnSpec("label", "TEXT", "class", LABEL)),
                  {"city": ("lima", "oslo", "rome"), "label": ("cat", "dog", "emu")})


def _train(objective: str, classes: int, plan: ColumnPlan = PLAN) -> xgb.Booster:
    rng = np.random.default_rng(0)
    x = np.c_[rng.normal(size=300), rng.integers(0, 3, 300)].astype(np.float32)
    y = (x[:, 1] % classes).astype(np.float32)
    data = xgb.DMatrix(x, y, feature_names=plan.feature_names, feature_types=plan.feature_types,
                       enable_categorical=True)
    params = {"objective": objective, "max_depth": 2, **({"num_class": classes} if classes > 2 else {})}
    booster = xgb.train(params, data, 5)
    model.embed_plan(booster, plan)  # as the job does before the first round
    return booster


def test_the_saved_model_alone_scores_raw_rows_with_class_names(tmp_path):
    path = tmp_path / "xgboost-model"
    path.write_bytes(_train("multi:softprob", 3).save_raw("ubj"))
    booster, plan = model.load(path)
    assert plan == PLAN
    rows = pd.DataFrame({"x": [0.1, -1.0, 2.0, 0.0], "city": ["lima", "oslo", "rome", "paris"]})
    out = model.predict_rows(booster, plan, rows)
    assert list(out.columns) == ["prediction", "cat", "dog", "emu"]
    assert list(out["prediction"][:3]) == ["cat", "dog", "emu"]  # city code i -> class i
    np.testing.assert_allclose(out[["cat", "dog", "emu"]].sum(axis=1), 1.0, rtol=1e-5)


def test_binary_predictions_name_the_class_and_the_second_class_probability():
    plan = ColumnPlan(PLAN.columns, {"city": PLAN.vocabularies["city"], "label": ("no", "yes")})
    booster = _train("binary:logistic", 2, plan)
    out = model.predict_rows(booster, plan, pd.DataFrame({"x": [0.0, 0.0], "city": ["lima", "oslo"]}))
    assert list(out["prediction"]) == ["no", "yes"] and out["probability"][1] > 0.5 > out["probability"][0]


def test_a_checkpoint_never_continues_with_other_category_codes():
    booster = _train("multi:softprob", 3)
    _check_resumable(booster, PLAN, 5)  # same plan: fine
    shifted = ColumnPlan(PLAN.columns, {"city": ("berlin", "lima", "oslo", "rome"), "label": ("cat", "dog", "emu")})
    with pytest.raises(DataError, match="the checkpoint after round 5 was trained on other columns or category"):
        _check_resumable(booster, shifted, 5)
