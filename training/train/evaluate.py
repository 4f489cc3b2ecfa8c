"""The validation evaluation of the final model: every host scores its own validation rows, and the
summaries are all-reduced (:mod:`training.evaluation.report`); the global SHAP importance likewise
(:mod:`training.evaluation.contributions`)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import xgboost as xgb

from training.collective.cluster import Cluster, allreduce_max, allreduce_sum, note_native
from training.evaluation import contributions
from training.evaluation import report as evaluation
from training.objectives.outputs import probabilities
from training.read.columns import ColumnPlan
from training.train.dataset import matrix_batches

log = logging.getLogger(__name__)


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


def shap_importance(booster: xgb.Booster, validation_path: Path, columns: ColumnPlan, outputs: int, max_rows: int,
                    cluster: Cluster) -> contributions.ShapImportance | None:
    """The job's mean |SHAP value| per feature over at most ``max_rows`` validation rows (``shap_rows``),
    from every host's rows; None on every host alike when ``max_rows`` is 0 or the job has no validation rows.

    Every host makes the same calls: one all-reduce (maximum) of the slices each host needs, then
    exactly that many matrices on every host (a host with fewer rows builds empty ones), then one
    all-reduce (sum). The matrices are plain ``DMatrix``es of a slice of the spilled validation
    rows, not ``dvalid``: XGBoost predicts contributions on a ``QuantileDMatrix`` or
    ``ExtMemQuantileDMatrix`` but cannot slice one, and the contributions of a whole shard at once
    take rows x outputs x (features + 1) x 4 bytes. Building a matrix inside the collective
    all-reduces its column count (XGBoost's own, native call): the same number of them on every
    host pair those calls; predicting makes none. Each host uses its share of ``max_rows`` (rows
    spread evenly over its shard) and holds one slice's contributions at a time
    (:data:`~training.evaluation.contributions.SLICE_BYTES`).
    """
    if max_rows == 0:  # the same hyperparameters on every host
        if cluster.leader:
            log.info("SHAP importance skipped: shap_rows=0")
        return None
    started = time.monotonic()
    features, outputs = len(columns.features), max(outputs, 1)
    rows = _file_rows(validation_path)
    used = min(rows, contributions.rows_per_host(max_rows, cluster.size))
    step = contributions.slice_rows(features, outputs, max_rows)
    mine = math.ceil(used / step)
    slices = int(allreduce_max(np.array([mine], dtype=np.int64), cluster, "shap: slices")[0])
    if slices == 0:  # no host has a validation row: every host learned it from the same maximum
        if cluster.leader:
            log.info("SHAP importance skipped: the job has no validation rows")
        return None
    sampled = _sampled_rows(validation_path, columns, rows, used, step)
    total = contributions.empty_sums(features, outputs)
    for _ in range(slices):  # the same count on every host: each matrix all-reduces natively
        data = next(sampled, np.zeros((0, features), dtype=np.float32))
        note_native(cluster, "shap: slice matrix", "allreduce:max (column count)")
        matrix = xgb.DMatrix(data, feature_names=columns.xgboost_feature_names, feature_types=columns.feature_types,
                             enable_categorical=columns.categorical)
        total += contributions.contribution_sums(booster.predict(matrix, pred_contribs=True), features, outputs)
    totals = allreduce_sum(np.append(total, float(rows)), cluster, "shap: sums")
    found = contributions.shap_importance(totals, columns.feature_names, outputs, [str(c) for c in columns.classes or []])
    if cluster.leader:
        top = ", ".join(f"{name} {value:.4g}" for name, value in found.ranked()[:3])
        log.info("SHAP importance over %s of %s validation rows (%d slice(s) per host) in %.1f s; top: %s",
                 f"{found.rows:,}", f"{found.validation_rows:,}", slices, time.monotonic() - started, top)
    return found


def _file_rows(path: Path) -> int:
    """Rows of a spilled Arrow file (its record batches' lengths; the file is memory-mapped, not read)."""
    with pa.memory_map(str(path)) as source:
        reader = pa.ipc.open_file(source)
        return sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))


def _sampled_rows(path: Path, columns: ColumnPlan, rows: int, used: int, step: int) -> Iterator[np.ndarray]:
    """The features of ``used`` of the spilled file's ``rows`` rows, evenly spaced
    (:func:`~training.evaluation.contributions.sampled`), ``step`` rows at a time (the last slice
    shorter): ``ceil(used / step)`` slices."""
    pending: list[np.ndarray] = []
    count = seen = 0
    for fields in matrix_batches(path, columns):
        data = fields["data"]
        taken = data[contributions.sampled(seen, seen + len(data), rows, used)]
        seen += len(data)
        while len(taken):
            part, taken = taken[:step - count], taken[step - count:]
            pending.append(part)
            count += len(part)
            if count == step:
                yield np.concatenate(pending)
                pending, count = [], 0
    if count:
        yield np.concatenate(pending)
