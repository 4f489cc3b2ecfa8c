"""The model file carries its column plan, so the model alone can score rows as the table has them.

SageMaker's XGBoost serving container loads the *first* file it lists in ``model/``, so the model
directory holds exactly one file. The column plan (each column's kind, every category vocabulary
and the label's classes) is stored inside it as the booster attribute :data:`PLAN_ATTRIBUTE`:
``xgb.Booster(model_file=path)`` alone can code raw rows (:func:`predict_rows`).

This module needs only xgboost, numpy, pyarrow and pandas (the MLflow model runs it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

from training.model.explain import top_contributions
from training.objectives.outputs import predicted_classes
from training.read.columns import ColumnPlan

PLAN_ATTRIBUTE = "column_plan"
"""Booster attribute holding :meth:`ColumnPlan.to_json`."""
PREDICTION = "prediction"
"""Output column: the predicted value, or the predicted class as the table names it."""
PROBABILITY = "probability"
"""Output column of a binary classifier: the probability of the second class (``classes[1]``)."""


def embed_plan(booster: xgb.Booster, plan: ColumnPlan) -> None:
    """Store ``plan`` in the booster, so every saved model file carries it."""
    booster.set_attr(**{PLAN_ATTRIBUTE: plan.to_json()})


def read_plan(booster: xgb.Booster) -> ColumnPlan:
    """The column plan a model was trained with."""
    text = booster.attr(PLAN_ATTRIBUTE)
    if text is None:
        raise ValueError(f"the model has no {PLAN_ATTRIBUTE!r} attribute: it was not written by this project")
    return ColumnPlan.from_json(text)


def load(path: Path | str) -> tuple[xgb.Booster, ColumnPlan]:
    """A model file and its column plan."""
    booster = xgb.Booster(model_file=str(path))
    return booster, read_plan(booster)


def objective(booster: xgb.Booster) -> str:
    return json.loads(booster.save_config())["learner"]["objective"]["name"]


def scoring_matrix(plan: ColumnPlan, features: np.ndarray) -> xgb.DMatrix:
    """A DMatrix of coded feature values (the plan's :meth:`~ColumnPlan.matrix` or
    :meth:`~ColumnPlan.feature_matrix`) under the names and types the model was trained with."""
    return xgb.DMatrix(features, feature_names=plan.xgboost_feature_names, feature_types=plan.feature_types,
                       enable_categorical=plan.categorical)


def raw_predictions(booster: xgb.Booster, plan: ColumnPlan, features: np.ndarray) -> np.ndarray:
    """XGBoost's output for raw rows' coded values (the plan's :meth:`~ColumnPlan.feature_matrix`).

    ``inplace_predict`` on the coded values, not ``predict`` on a DMatrix: the same numbers (the
    booster knows its features' names and types), and no matrix is built. Building one inside a
    job's collective all-reduces its column count (XGBoost's own, native call), so a scoring host
    that predicted once per result batch would make as many collective calls as it has batches and
    pair the hosts' calls wrongly (:mod:`training.scoring.job` predicts inside the collective). A linear
    model, which XGBoost does not predict in place, goes through a DMatrix (the scoring job predicts one
    outside its collective: :mod:`training.scoring.predictor`).
    """
    if linear(booster):  # XGBoost 3.0 predicts a linear model in place: "not supported by the current booster"
        return booster.predict(scoring_matrix(plan, features))
    return booster.inplace_predict(features)


def linear(booster: xgb.Booster) -> bool:
    """Whether ``booster`` is a linear model (``booster=gblinear``), which XGBoost predicts only through a DMatrix."""
    return json.loads(booster.save_config())["learner"]["gradient_booster"]["name"] == "gblinear"


def predict_rows(booster: xgb.Booster, plan: ColumnPlan, rows: Any, explain: int = 0) -> Any:
    """Predictions for raw rows (a DataFrame or a mapping of column name to values) as a DataFrame, with
    classes named as the table names them; with ``explain=K``, each row's K largest SHAP contributions
    after them (:func:`explain_rows`' columns, from the same coded values).

    Regression: ``prediction``. Binary: ``prediction`` (the class) and ``probability`` (of
    ``classes[1]``). ``multi:softprob``: ``prediction`` and one probability column per class.
    """
    features = plan.feature_matrix(rows)
    frame = _named(booster, plan, raw_predictions(booster, plan, features))
    return frame.join(_explanations(booster, plan, features, explain)) if explain else frame


def explain_rows(booster: xgb.Booster, plan: ColumnPlan, rows: Any, k: int) -> Any:
    """Each raw row's ``k`` (at least 1) largest SHAP contributions (XGBoost's ``pred_contribs``) as a DataFrame
    of :func:`training.model.explain.explanation_columns`, without the predictions (:func:`predict_rows` with
    ``explain=k`` gives both)."""
    return _explanations(booster, plan, plan.feature_matrix(rows), k)


def _explanations(booster: xgb.Booster, plan: ColumnPlan, features: np.ndarray, k: int) -> Any:
    return top_contributions(booster.predict(scoring_matrix(plan, features), pred_contribs=True), plan.feature_names, k)


def _named(booster: xgb.Booster, plan: ColumnPlan, output: np.ndarray) -> Any:
    import pandas as pd

    classes = plan.classes
    if classes is None:
        return pd.DataFrame({PREDICTION: output})
    picked, probabilities = predicted_classes(objective(booster), output, classes)
    frame = pd.DataFrame({PREDICTION: picked})
    if probabilities is None:
        return frame
    if probabilities.ndim == 1:
        frame[PROBABILITY] = probabilities
        return frame
    return pd.concat([frame, pd.DataFrame(probabilities, columns=[str(c) for c in classes])], axis=1)
