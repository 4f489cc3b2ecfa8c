"""Boosting: what XGBoost is given (the hyperparameters plus what the data decides), and the rounds
themselves, resumed from the last checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xgboost as xgb

from training.collective.cluster import Cluster, allreduce_max, allreduce_sum
from training.errors import DataError
from training.evaluation import report as evaluation
from training.hyperparameters import Hyperparameters, constraints
from training.model.booster import PLAN_ATTRIBUTE
from training.objectives.metrics import maximized
from training.read.columns import ColumnPlan
from training.train.checkpoints import StopFlag, resume_point
from training.train.rounds import TRAIN, VALIDATION, EarlyStop, RoundOwner


def params(hps: Hyperparameters, columns: ColumnPlan) -> dict[str, Any]:
    """``xgb.train``'s parameters: the hyperparameters, plus what the data decides (``num_class``, the
    constraints' feature positions)."""
    params = hps.xgboost_params()
    if hps.multiclass:
        params["num_class"] = len(columns.classes or [])
    monotone = constraints.resolve_monotone(hps["monotone_constraints"], columns.feature_names)
    interaction = constraints.resolve_interaction(hps["interaction_constraints"], columns.feature_names)
    if monotone:
        params["monotone_constraints"] = monotone
    if interaction:
        params["interaction_constraints"] = interaction
    return params


@dataclass(frozen=True)
class Trained:
    """What boosting produced; the same on every host, but ``saved_at``, the leader's last checkpoint."""

    booster: xgb.Booster
    rounds: int
    signalled: tuple[str, ...] = ()
    """The hosts whose SIGTERM stopped training (empty: it ran its rounds, or stopped early)."""
    saved_at: int | None = None


def train(hps: Hyperparameters, columns: ColumnPlan, dtrain: Any, dvalid: Any, cluster: Cluster, stop: StopFlag,
          checkpoint_dir: Path | None, record_round: Callable[[int], Any]) -> Trained:
    """The model, its rounds, and the hosts whose stop signal ended training (the same on every host).

    ``xgb.train`` gets one callback, :class:`~training.train.rounds.RoundOwner`: XGBoost runs its
    callbacks in no fixed order, so a round's collective calls have a single owner.
    """
    done, model = resume_point(checkpoint_dir, cluster)
    remaining = max(hps["num_round"] - done, 0)
    start = xgb.Booster(model_file=bytearray(model)) if model else None
    if start is not None:
        _check_resumable(start, columns, done)
    if remaining == 0:
        return Trained(start, done, saved_at=done)
    early = None
    if hps["early_stopping_rounds"]:
        first = hps.eval_metrics[0]
        early = EarlyStop(rounds=hps["early_stopping_rounds"], metric=first, data=VALIDATION, maximize=maximized(first))
    owner = RoundOwner(cluster, stop, columns, done, checkpoint_dir, hps["checkpoint_interval"],
                       record_round(done), early)
    booster = xgb.train(params(hps, columns), dtrain, num_boost_round=remaining, xgb_model=start,
                        evals=[(dtrain, TRAIN), (dvalid, VALIDATION)], callbacks=[owner], verbose_eval=False,
                        custom_metric=custom_metric(hps, columns, cluster))
    return Trained(booster, owner.stopped_at or booster.num_boosted_rounds(), owner.signalled, owner.saved_at)


def _check_resumable(start: xgb.Booster, columns: ColumnPlan, done: int) -> None:
    """A checkpoint continues only the model of the same columns and category codes.

    Between a stop and its restart the table may have changed (a new category sorts in and shifts
    the codes): continuing the trees with other codes would silently corrupt the model.
    """
    text = start.attr(PLAN_ATTRIBUTE)
    if text is not None and ColumnPlan.from_json(text) != columns:
        raise DataError(f"the checkpoint after round {done} was trained on other columns or category values than "
                        "the table has now: restart the job with an empty checkpoint location to train afresh")


def custom_metric(hps: Hyperparameters, columns: ColumnPlan, cluster: Cluster) -> Any:
    """The job's own metrics (the built-in algorithm's ``f1``, ``r2``, ...), all-reduced; None if none."""
    if not hps.custom_metrics:
        return None
    return evaluation.custom_metric(hps.custom_metrics, hps["objective"], max(len(columns.classes or []), 2),
                                    lambda a: allreduce_sum(a, cluster, "round: custom metric sums"),
                                    lambda a: allreduce_max(a, cluster, "round: custom metric maxima"),
                                    weighted=columns.weight is not None)


def final_metrics(booster: xgb.Booster, dtrain: Any, dvalid: Any, custom: Any = None) -> dict[str, float]:
    """The model's metrics on both sets (all-reduced across hosts), e.g. ``validation-rmse``."""
    text = booster.eval_set([(dtrain, TRAIN), (dvalid, VALIDATION)], feval=custom, output_margin=False)
    metrics = {}
    for item in text.split("\t")[1:]:
        name, value = item.rsplit(":", 1)
        metrics[name] = float(value)
    return metrics
