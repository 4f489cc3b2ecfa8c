"""The validation evaluation of the final model: every host scores its own validation rows, and the
summaries are all-reduced (:mod:`training.evaluation.report`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import xgboost as xgb

from training.collective.cluster import Cluster, allreduce_max, allreduce_sum
from training.evaluation import report as evaluation
from training.objectives.outputs import probabilities
from training.read.columns import ColumnPlan
from training.train.dataset import matrix_batches


def evaluate(booster: xgb.Booster, dvalid: Any, validation_path: Path, columns: ColumnPlan, objective: str,
             cluster: Cluster) -> evaluation.Report | None:
    """The validation evaluation (every host: two all-reduces), scored by the final model over this
    host's validation matrix and read with its labels from the spilled rows in batches; None for
    objectives without one.

    One prediction over ``dvalid``, not a matrix per batch: building any XGBoost matrix inside the
    collective all-reduces its column count (XGBoost's own, native call), so a matrix per batch
    would make a number of calls that only this host knows (its validation rows) and pair the
    hosts' calls wrongly. Predicting makes no collective call. The predictions are held at once:
    4 bytes per validation row and class, a fraction of the matrix itself (a byte or more per value).
    """
    kind = evaluation.family(objective)
    if kind is None:
        return None
    classes = len(columns.classes or [])
    names = [str(c) for c in columns.classes or []]
    weighted = columns.weight is not None
    # classifiers: margins, turned into probabilities alike for every binary:*/multi:* objective;
    # regression: the prediction itself (a Poisson or gamma model's margin is a logarithm)
    output = booster.predict(dvalid, output_margin=kind in (evaluation.BINARY, evaluation.MULTICLASS))

    def scored() -> Iterator[evaluation.Scores]:
        start = 0
        for fields in matrix_batches(validation_path, columns):
            rows = len(fields["label"])
            scores = probabilities(objective, output[start:start + rows], classes)
            start += rows
            yield evaluation.Scores.of(fields["label"], scores, fields["weight"] if weighted else None,
                                       fields.get("qid"))

    def batches() -> Iterator[evaluation.Scores]:
        return evaluation.whole_groups(scored())

    return evaluation.evaluate(kind, batches, lambda a: allreduce_sum(a, cluster, "evaluation: sums"),
                               lambda a: allreduce_max(a, cluster, "evaluation: maxima"), names)
