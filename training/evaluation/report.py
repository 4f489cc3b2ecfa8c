"""Evaluation of the validation rows across hosts, from summaries that add up: no row leaves its host.

Each host scores its own validation rows and reduces them to fixed-size arrays that add up
across hosts (weighted counts in fixed bins, sums of squares); the arrays are all-reduced, and
every host turns the same totals into the same curves. What comes out (:class:`Report`):

- regression: RMSE, MAE, MSE, R², a residual histogram and predicted against actual, binned by
  the actual value;
- binary classification: ROC and precision-recall curves from score histograms per class
  (:data:`SCORE_BINS` bins on [0, 1]: the curves have that resolution), AUC and average
  precision, the confusion matrix at 0.5, accuracy, precision, recall, F1, and a calibration curve;
- multiclass: the confusion matrix, accuracy and per-class/macro/micro precision, recall and F1,
  one-vs-rest ROC curves and AUC per class, and the calibration of the top class's probability;
- ranking: NDCG@k for k in :data:`NDCG_KS`, averaged over the validation groups (every group is
  whole on one host), as XGBoost computes it: gain 2^label - 1, a group without relevant rows
  counts 1, row weights are not used.

A two-pass sum (the value ranges first, by an all-reduced maximum, then the histograms) keeps
every bin identical on every host. The same summaries give the built-in algorithm's
``eval_metric`` values XGBoost does not compute (``accuracy``, ``f1``, ``r2``, ...) in every
round (:func:`custom_metric`). Feature importance comes from the model alone (leader). Plots
and files are :mod:`training.evaluation.files`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from training.objectives.catalog import BINARY, MULTICLASS, RANKING, REGRESSION, entry
from training.objectives.metrics import CUSTOM_METRICS
from training.objectives.outputs import transformed_scores

SCORE_BINS = 1000
"""Bins of a binary classifier's score histograms (the ROC and PR curves' resolution)."""
CLASS_SCORE_BINS = 100
"""Bins of each class's one-vs-rest score histograms (multiclass)."""
CALIBRATION_BINS = 10
RESIDUAL_BINS = 50
ACTUAL_BINS = 20
"""Bins of the actual value in the predicted-against-actual plot."""
NDCG_KS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 20, 32)
"""The cut-offs of the NDCG@k-by-k curve (ranking)."""

Reduce = Callable[[np.ndarray], np.ndarray]


def family(name: str) -> str | None:
    """Which evaluation an objective gets (its catalog family; None: no evaluation summaries, survival)."""
    found = entry(name)
    return found.family if found.evaluated else None


@dataclass(frozen=True)
class Scores:
    """One host's validation rows as evaluation sees them: labels, scores and weights.

    ``scores``: the prediction (regression), the positive class's probability (binary), or
    one probability per class (multiclass, shape rows x classes). ``labels`` of a classifier are
    class codes.
    """

    labels: np.ndarray
    scores: np.ndarray
    weights: np.ndarray
    groups: np.ndarray | None = None
    """Ranking: each row's query id (a group's rows are contiguous, and only whole groups are given)."""

    @classmethod
    def of(cls, labels: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None,
           groups: np.ndarray | None = None) -> Scores:
        labels = np.asarray(labels, dtype=np.float64)
        weights = np.ones(len(labels)) if weights is None or len(weights) == 0 else np.asarray(weights, np.float64)
        return cls(labels, np.asarray(scores, dtype=np.float64), weights, groups)


def whole_groups(batches: Iterable[Scores]) -> Iterator[Scores]:
    """Ranking batches regrouped so that no group is cut between two (a batch ends mid-group when its
    rows run out): each batch's last group waits for the next batch. Other batches pass as they are."""
    pending: Scores | None = None
    for batch in batches:
        if batch.groups is None:
            yield batch
            continue
        joined = batch if pending is None else _concat(pending, batch)
        if len(joined.labels) == 0:
            pending = joined
            continue
        others = np.flatnonzero(joined.groups != joined.groups[-1])
        last = int(others[-1]) + 1 if len(others) else 0  # where the last group starts
        yield _slice(joined, 0, last)
        pending = _slice(joined, last, len(joined.labels))
    if pending is not None:
        yield pending


def _concat(a: Scores, b: Scores) -> Scores:
    assert a.groups is not None and b.groups is not None
    return Scores(*(np.concatenate([x, y]) for x, y in ((a.labels, b.labels), (a.scores, b.scores),
                                                         (a.weights, b.weights), (a.groups, b.groups))))


def _slice(s: Scores, start: int, end: int) -> Scores:
    return Scores(s.labels[start:end], s.scores[start:end], s.weights[start:end],
                  None if s.groups is None else s.groups[start:end])


# ---------------------------------------------------------------------------------------------
# Pass 1: the value ranges (all-reduced by maximum)


def ranges(kind: str, s: Scores) -> np.ndarray:
    """What the histogram edges depend on, as maxima: regression's ``[max y, -min y, max |residual|]``."""
    if kind != REGRESSION or len(s.labels) == 0:
        return np.full(3, -np.inf)
    residual = s.scores - s.labels
    return np.array([s.labels.max(), -s.labels.min(), np.abs(residual).max()])


# ---------------------------------------------------------------------------------------------
# Pass 2: the summaries (all-reduced by sum)


def summary(kind: str, s: Scores, limits: np.ndarray, classes: int = 2) -> np.ndarray:
    """This host's additive summary: a fixed-length float64 vector whose sum over hosts is the job's.

    float64 whatever the rows: ``np.bincount`` of no rows gives integers even with weights, and a
    host with no validation rows would all-reduce int64 against the others' float64.
    """
    if kind == REGRESSION:
        parts = _regression_summary(s, limits)
    elif kind == BINARY:
        parts = _binary_summary(s)
    elif kind == RANKING:
        parts = _ranking_summary(s)
    else:
        parts = _multiclass_summary(s, classes)
    return np.asarray(parts, dtype=np.float64)


def _bin(values: np.ndarray, low: float, high: float, bins: int) -> np.ndarray:
    if high <= low:
        return np.zeros(len(values), dtype=np.int64)
    index = np.floor((values - low) / (high - low) * bins).astype(np.int64)
    return np.clip(index, 0, bins - 1)


def _regression_summary(s: Scores, limits: np.ndarray) -> np.ndarray:
    y, p, w = s.labels, s.scores, s.weights
    r = p - y
    top, bottom, spread = limits[0], -limits[1], limits[2]
    residuals = np.bincount(_bin(r, -spread, spread, RESIDUAL_BINS), weights=w, minlength=RESIDUAL_BINS)
    where = _bin(y, bottom, top, ACTUAL_BINS)
    by_actual = [np.bincount(where, weights=v, minlength=ACTUAL_BINS) for v in (w, w * y, w * p)]
    totals = [w.sum(), (w * r * r).sum(), (w * np.abs(r)).sum(), (w * y).sum(), (w * y * y).sum()]
    return np.concatenate([totals, residuals, *by_actual])


def _binary_summary(s: Scores) -> np.ndarray:
    p, w, positive = s.scores, s.weights, s.labels > 0.5
    where = _bin(p, 0.0, 1.0, SCORE_BINS)
    pos = np.bincount(where[positive], weights=w[positive], minlength=SCORE_BINS)
    neg = np.bincount(where[~positive], weights=w[~positive], minlength=SCORE_BINS)
    calibration = np.bincount(_bin(p, 0.0, 1.0, CALIBRATION_BINS), weights=w * p, minlength=CALIBRATION_BINS)
    return np.concatenate([pos, neg, calibration])


def _ranking_summary(s: Scores) -> np.ndarray:
    """Sums of each group's NDCG@k over :data:`NDCG_KS`, and the number of groups."""
    total = np.zeros(len(NDCG_KS) + 1)
    if len(s.labels) == 0:
        return total
    groups = np.zeros(len(s.labels)) if s.groups is None else np.asarray(s.groups)
    starts = np.concatenate([[0], np.flatnonzero(np.diff(groups)) + 1, [len(groups)]])
    cut = np.array(NDCG_KS)
    for a, b in zip(starts[:-1], starts[1:], strict=True):
        total[:-1] += ndcg_at(s.labels[a:b], s.scores[a:b], cut)
        total[-1] += 1
    return total


def ndcg_at(labels: np.ndarray, scores: np.ndarray, ks: np.ndarray) -> np.ndarray:
    """One group's NDCG at each cut-off in ``ks`` (XGBoost's: gain 2^label - 1; 1 when no row is relevant)."""
    gains = np.exp2(labels) - 1.0
    discount = 1.0 / np.log2(np.arange(2, len(labels) + 2))
    dcg = np.cumsum(gains[np.argsort(-scores, kind="stable")] * discount)
    ideal = np.cumsum(np.sort(gains)[::-1] * discount)
    at = np.minimum(ks, len(labels)) - 1
    return np.where(ideal[at] > 0, dcg[at] / np.where(ideal[at] > 0, ideal[at], 1.0), 1.0)


def _multiclass_summary(s: Scores, k: int) -> np.ndarray:
    probs, w = s.scores.reshape(-1, k), s.weights
    truth = s.labels.astype(np.int64)
    predicted = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=np.int64)
    confusion = np.bincount(truth * k + predicted, weights=w, minlength=k * k)
    hist = np.zeros((2, k, CLASS_SCORE_BINS))
    for c in range(k):
        where, mine = _bin(probs[:, c], 0.0, 1.0, CLASS_SCORE_BINS), truth == c
        hist[0, c] = np.bincount(where[mine], weights=w[mine], minlength=CLASS_SCORE_BINS)
        hist[1, c] = np.bincount(where[~mine], weights=w[~mine], minlength=CLASS_SCORE_BINS)
    top = probs.max(axis=1) if len(probs) else np.zeros(0)
    cal = _bin(top, 0.0, 1.0, CALIBRATION_BINS)
    calibration = [np.bincount(cal, weights=v, minlength=CALIBRATION_BINS)
                   for v in (w, w * top, w * (predicted == truth))]
    return np.concatenate([confusion, hist.reshape(-1), *calibration])


# ---------------------------------------------------------------------------------------------
# The report: the same on every host, from the totals


@dataclass
class Report:
    """Scalars (``auc``, ``f1``, ``r2``, ...), curves (name -> columns of numbers) and matrices."""

    kind: str
    scalars: dict[str, float] = field(default_factory=dict)
    curves: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    confusion: list[list[float]] | None = None
    class_names: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "scalars": self.scalars, "curves": self.curves, "confusion_matrix": self.confusion,
                "classes": self.class_names}


def report(kind: str, totals: np.ndarray, limits: np.ndarray, class_names: Sequence[str] = ()) -> Report:
    """Turn the all-reduced ``totals`` (and ``limits``) into curves and scalars."""
    if kind == REGRESSION:
        return _regression_report(totals, limits)
    if kind == BINARY:
        return _binary_report(totals, list(class_names))
    if kind == RANKING:
        return _ranking_report(totals)
    return _multiclass_report(totals, list(class_names))


def _safe(num: float, den: float) -> float:
    return float(num / den) if den > 0 else 0.0


def _regression_report(t: np.ndarray, limits: np.ndarray) -> Report:
    sw, sr2, sabs, sy, sy2 = t[:5]
    residuals = t[5:5 + RESIDUAL_BINS]
    by_w, by_y, by_p = (t[5 + RESIDUAL_BINS + i * ACTUAL_BINS:5 + RESIDUAL_BINS + (i + 1) * ACTUAL_BINS]
                        for i in range(3))
    variance = sy2 - (sy * sy / sw if sw else 0.0)
    mse = _safe(sr2, sw)
    scalars = {"rmse": float(np.sqrt(mse)), "mse": mse, "mae": _safe(sabs, sw),
               "r2": 1.0 - sr2 / variance if variance > 0 else 0.0}
    top, bottom, spread = float(limits[0]), float(-limits[1]), float(limits[2])
    spread = spread if np.isfinite(spread) else 0.0
    edges = np.linspace(-spread, spread, RESIDUAL_BINS + 1)
    actual_edges = np.linspace(bottom, top, ACTUAL_BINS + 1) if np.isfinite(top) else np.zeros(ACTUAL_BINS + 1)
    kept = by_w > 0
    curves = {
        "residuals": {"bin_low": edges[:-1].tolist(), "bin_high": edges[1:].tolist(), "weight": residuals.tolist()},
        "predicted_vs_actual": {
            "actual_bin_low": actual_edges[:-1][kept].tolist(), "actual_bin_high": actual_edges[1:][kept].tolist(),
            "mean_actual": (by_y[kept] / by_w[kept]).tolist(), "mean_predicted": (by_p[kept] / by_w[kept]).tolist(),
            "weight": by_w[kept].tolist()},
    }
    return Report(REGRESSION, scalars, curves)


def _ranking_report(t: np.ndarray) -> Report:
    groups = t[-1]
    ndcg = t[:-1] / groups if groups > 0 else np.full(len(NDCG_KS), np.nan)
    scalars = {f"ndcg@{k}": float(v) for k, v in zip(NDCG_KS, ndcg, strict=True) if k in (1, 3, 5, 10)}
    curve = {"k": [float(k) for k in NDCG_KS], "ndcg": ndcg.tolist(), "groups": [float(groups)] * len(NDCG_KS)}
    return Report(RANKING, scalars, {"ndcg_at_k": curve})


def _rates(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True and false positives at each threshold, from the highest score bin down (first point 0, 0)."""
    tp = np.concatenate([[0.0], np.cumsum(pos[::-1])])
    fp = np.concatenate([[0.0], np.cumsum(neg[::-1])])
    return tp, fp


def _roc(pos: np.ndarray, neg: np.ndarray, bins: int) -> tuple[dict[str, list[float]], float]:
    tp, fp = _rates(pos, neg)
    tpr, fpr = tp / max(tp[-1], 1e-300), fp / max(fp[-1], 1e-300)
    thresholds = np.concatenate([[1.0], np.arange(bins - 1, -1, -1) / bins])
    auc = float(np.trapezoid(tpr, fpr)) if tp[-1] > 0 and fp[-1] > 0 else float("nan")
    return {"threshold": thresholds.tolist(), "false_positive_rate": fpr.tolist(),
            "true_positive_rate": tpr.tolist()}, auc


def _binary_report(t: np.ndarray, names: list[str]) -> Report:
    pos, neg = t[:SCORE_BINS], t[SCORE_BINS:2 * SCORE_BINS]
    cal_p = t[2 * SCORE_BINS:2 * SCORE_BINS + CALIBRATION_BINS]
    roc, auc = _roc(pos, neg, SCORE_BINS)
    tp, fp = _rates(pos, neg)
    positives = tp[-1]
    step = tp[1:] - tp[:-1]
    precision_at = np.divide(tp[1:], tp[1:] + fp[1:], out=np.ones(SCORE_BINS), where=(tp[1:] + fp[1:]) > 0)
    average_precision = float((step * precision_at).sum() / positives) if positives > 0 else float("nan")
    nonempty = (tp[1:] + fp[1:]) > 0
    thresholds = np.arange(SCORE_BINS - 1, -1, -1) / SCORE_BINS
    pr = {"threshold": thresholds[nonempty].tolist(), "recall": (tp[1:][nonempty] / max(positives, 1e-300)).tolist(),
          "precision": precision_at[nonempty].tolist()}
    half = SCORE_BINS // 2
    tp5, fp5 = pos[half:].sum(), neg[half:].sum()
    fn5, tn5 = pos[:half].sum(), neg[:half].sum()
    precision, recall = _safe(tp5, tp5 + fp5), _safe(tp5, tp5 + fn5)
    scalars = {
        "auc": auc, "aucpr": average_precision, "accuracy": _safe(tp5 + tn5, tp5 + tn5 + fp5 + fn5),
        "precision": precision, "recall": recall, "f1": _safe(2 * precision * recall, precision + recall),
        "balanced_accuracy": 0.5 * (recall + _safe(tn5, tn5 + fp5)),
    }
    # the macro and micro forms too: the built-in algorithm accepts them as eval metrics of binary objectives
    scalars = {**_multiclass_scalars(np.array([[tn5, fp5], [fn5, tp5]])), **scalars}
    group = SCORE_BINS // CALIBRATION_BINS
    weight = (pos + neg).reshape(CALIBRATION_BINS, group).sum(axis=1)
    positive = pos.reshape(CALIBRATION_BINS, group).sum(axis=1)
    kept = weight > 0
    calibration = {"mean_predicted": (cal_p[kept] / weight[kept]).tolist(),
                   "fraction_positive": (positive[kept] / weight[kept]).tolist(), "weight": weight[kept].tolist()}
    return Report(BINARY, scalars, {"roc": roc, "precision_recall": pr, "calibration": calibration},
                  [[float(tn5), float(fp5)], [float(fn5), float(tp5)]], names)


def _multiclass_scalars(confusion: np.ndarray) -> dict[str, float]:
    total, correct = confusion.sum(), np.trace(confusion)
    predicted, actual = confusion.sum(axis=0), confusion.sum(axis=1)
    diagonal = np.diag(confusion)
    precision = np.divide(diagonal, predicted, out=np.zeros_like(diagonal), where=predicted > 0)
    recall = np.divide(diagonal, actual, out=np.zeros_like(diagonal), where=actual > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(diagonal),
                   where=(precision + recall) > 0)
    micro = _safe(correct, total)
    return {"accuracy": micro, "precision_macro": float(precision.mean()), "recall_macro": float(recall.mean()),
            "f1_macro": float(f1.mean()), "precision_micro": micro, "recall_micro": micro,
            "balanced_accuracy": float(recall[actual > 0].mean()) if (actual > 0).any() else 0.0}


def _multiclass_report(t: np.ndarray, names: list[str]) -> Report:
    k = len(names)
    confusion = t[:k * k].reshape(k, k)
    hist = t[k * k:k * k + 2 * k * CLASS_SCORE_BINS].reshape(2, k, CLASS_SCORE_BINS)
    cal_w, cal_p, cal_ok = t[k * k + 2 * k * CLASS_SCORE_BINS:].reshape(3, CALIBRATION_BINS)
    scalars = _multiclass_scalars(confusion)
    scalars["precision"], scalars["recall"], scalars["f1"] = (scalars["precision_macro"], scalars["recall_macro"],
                                                              scalars["f1_macro"])
    curves: dict[str, dict[str, list[float]]] = {}
    aucs = []
    for c, name in enumerate(names):
        roc, auc = _roc(hist[0, c], hist[1, c], CLASS_SCORE_BINS)
        aucs.append(auc)
        curves[f"roc_{c}"] = {**roc, "class": [name]}  # type: ignore[dict-item]
    valid = [a for a in aucs if np.isfinite(a)]
    scalars["auc"] = float(np.mean(valid)) if valid else float("nan")
    kept = cal_w > 0
    curves["calibration"] = {"mean_predicted": (cal_p[kept] / cal_w[kept]).tolist(),
                             "fraction_positive": (cal_ok[kept] / cal_w[kept]).tolist(), "weight": cal_w[kept].tolist()}
    return Report(MULTICLASS, scalars, curves, confusion.tolist(), names)


# ---------------------------------------------------------------------------------------------
# The whole pass, on every host


def evaluate(kind: str, batches: Callable[[], Iterable[Scores]], reduce_sum: Reduce, reduce_max: Reduce,
             class_names: Sequence[str] = ()) -> Report:
    """The job's report from this host's validation rows, read twice in ``batches()`` (bounded memory).

    Every host calls it at the same point: two all-reduces, of the same lengths on every host.
    """
    classes = max(len(class_names), 2)
    empty = Scores.of(np.zeros(0), np.zeros((0, classes)) if kind == MULTICLASS else np.zeros(0))
    limits = reduce_max(np.max([ranges(kind, b) for b in (empty, *batches())], axis=0))
    total = summary(kind, empty, limits, classes)
    for b in batches():
        total = total + summary(kind, b, limits, classes)
    return report(kind, reduce_sum(total), limits, class_names)


def custom_metric(names: Sequence[str], objective: str, classes: int, reduce_sum: Reduce, reduce_max: Reduce,
                  weighted: bool) -> Callable[[np.ndarray, Any], list[tuple[str, float]]]:
    """XGBoost's ``custom_metric`` for the built-in algorithm's metrics XGBoost lacks, all-reduced.

    XGBoost calls it with each evaluation set's predictions in every round, in the same order on
    every host, so the all-reduces inside line up.
    """
    kind = family(objective)

    def metric(predt: np.ndarray, dmatrix: Any) -> list[tuple[str, float]]:
        scores = transformed_scores(objective, predt, classes)
        s = Scores.of(dmatrix.get_label(), scores, dmatrix.get_weight() if weighted else None)
        result = evaluate(kind or REGRESSION, lambda: [s], reduce_sum, reduce_max, [str(c) for c in range(classes)])
        return [(name, float(result.scalars[CUSTOM_METRICS[name]])) for name in names]

    return metric


# ---------------------------------------------------------------------------------------------
# Feature importance (the model alone: the leader)

IMPORTANCE_TYPES = ("gain", "cover", "weight", "total_gain", "total_cover")


def feature_importance(booster: Any, xgboost_names: Sequence[str], table_names: Sequence[str],
                       linear: bool = False) -> dict[str, dict[str, float]]:
    """``{table column name: {importance type: value}}`` for every feature (0 where never split on).

    ``booster=gblinear`` has no splits: its one "importance" is each feature's coefficient.
    """
    rename = dict(zip(xgboost_names, table_names, strict=True))
    out = {name: {} for name in table_names}  # type: dict[str, dict[str, float]]
    for kind in ("weight",) if linear else IMPORTANCE_TYPES:
        scores = booster.get_score(importance_type=kind)
        for name in table_names:
            out[name]["coefficient" if linear else kind] = 0.0
        for key, value in scores.items():
            column = rename.get(key, key)
            value = value[0] if isinstance(value, list) else value
            out.setdefault(column, {})["coefficient" if linear else kind] = float(value)
    return out
