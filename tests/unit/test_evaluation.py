"""Evaluation from summaries that add up across hosts equals evaluation of all rows on one host.

Each case splits the rows over three "hosts" (uneven, one empty), sums their summaries as the
collective does, and compares the report with scikit-learn on all rows at once (on the laptop's
environment: the image environment's Python 3.10 check skips this file, as it has no scikit-learn).
"""

import numpy as np
import pytest

from training.evaluation import report as ev
from training.objectives.outputs import probabilities

skm = pytest.importorskip("sklearn.metrics", reason="scikit-learn is the reference here; the image has none")
calibration_curve = pytest.importorskip("sklearn.calibration").calibration_curve

RNG = np.random.default_rng(7)


def _hosts(s: ev.Scores, cuts=(0.5, 0.5, 0.8)) -> list[ev.Scores]:
    """Three shares of ``s``: the middle one empty."""
    n = len(s.labels)
    bounds = [0, *(int(c * n) for c in cuts), n]
    return [ev.Scores(s.labels[a:b], s.scores[a:b], s.weights[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)]


def _across_hosts(kind: str, s: ev.Scores, names=()) -> ev.Report:
    parts = _hosts(s)
    limits = np.max([ev.ranges(kind, p) for p in parts], axis=0)
    totals = np.sum([ev.summary(kind, p, limits, max(len(names), 2)) for p in parts], axis=0)
    return ev.report(kind, totals, limits, names)


def test_regression_scalars_and_curves_add_up_across_hosts():
    y = RNG.normal(size=5000) * 3
    p = y + RNG.normal(size=5000)
    w = RNG.uniform(0.5, 2.0, size=5000)
    s = ev.Scores.of(y, p, w)
    got = _across_hosts(ev.REGRESSION, s)
    assert got.scalars["mse"] == pytest.approx(skm.mean_squared_error(y, p, sample_weight=w), rel=1e-9)
    assert got.scalars["mae"] == pytest.approx(skm.mean_absolute_error(y, p, sample_weight=w), rel=1e-9)
    assert got.scalars["r2"] == pytest.approx(skm.r2_score(y, p, sample_weight=w), rel=1e-9)
    one = ev.report(ev.REGRESSION, ev.summary(ev.REGRESSION, s, ev.ranges(ev.REGRESSION, s)), ev.ranges(ev.REGRESSION, s))
    for name, curve in got.curves.items():  # the same bins and values as one host with every row
        for column, values in curve.items():
            assert np.allclose(values, one.curves[name][column], rtol=1e-9), (name, column)
    hist = got.curves["residuals"]
    assert sum(hist["weight"]) == pytest.approx(w.sum())
    expected, _ = np.histogram(p - y, bins=ev.RESIDUAL_BINS, range=(hist["bin_low"][0], hist["bin_high"][-1]),
                               weights=w)
    assert np.allclose(hist["weight"], expected)
    pva = got.curves["predicted_vs_actual"]
    assert np.allclose(pva["mean_predicted"], pva["mean_actual"], atol=0.6)  # a good model sits on the diagonal


def test_binary_curves_match_scikit_learn():
    y = RNG.integers(0, 2, size=20_000)
    p = np.clip(0.3 * y + RNG.uniform(0, 0.7, size=20_000), 0, 1)
    s = ev.Scores.of(y, p)
    got = _across_hosts(ev.BINARY, s, ["no", "yes"])
    assert got.scalars["auc"] == pytest.approx(skm.roc_auc_score(y, p), abs=2e-3)
    assert got.scalars["aucpr"] == pytest.approx(skm.average_precision_score(y, p), abs=5e-3)
    predicted = (p >= 0.5).astype(int)
    assert got.confusion == skm.confusion_matrix(y, predicted).astype(float).tolist()
    assert got.scalars["f1"] == pytest.approx(skm.f1_score(y, predicted))
    assert got.scalars["accuracy"] == pytest.approx(skm.accuracy_score(y, predicted))
    assert got.scalars["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, predicted))
    for name in ("precision", "recall", "f1"):  # the macro and micro forms, which binary objectives accept too
        score = getattr(skm, f"{name}_score")
        assert got.scalars[f"{name}_macro"] == pytest.approx(score(y, predicted, average="macro"))
        if name != "f1":
            assert got.scalars[f"{name}_micro"] == pytest.approx(score(y, predicted, average="micro"))
    roc = got.curves["roc"]
    for i in (0, 1, 200, 500, 700, 999, 1000):  # each point: the rates of the rows scoring at least its threshold
        t = roc["threshold"][i]
        kept = p >= t if i else np.zeros_like(p, dtype=bool)
        assert roc["true_positive_rate"][i] == pytest.approx(kept[y == 1].mean())
        assert roc["false_positive_rate"][i] == pytest.approx(kept[y == 0].mean())
    frac, mean = calibration_curve(y, p, n_bins=ev.CALIBRATION_BINS)
    assert np.allclose(got.curves["calibration"]["fraction_positive"], frac, atol=1e-2)
    assert np.allclose(got.curves["calibration"]["mean_predicted"], mean, atol=1e-9)


def test_multiclass_confusion_and_scores_match_scikit_learn():
    k, n = 4, 12_000
    y = RNG.integers(0, k, size=n)
    logits = RNG.normal(size=(n, k))
    logits[np.arange(n), y] += 1.5
    probs = probabilities("multi:softprob", logits, k)
    got = _across_hosts(ev.MULTICLASS, ev.Scores.of(y, probs), ["a", "b", "c", "d"])
    predicted = probs.argmax(axis=1)
    assert got.confusion == skm.confusion_matrix(y, predicted).astype(float).tolist()
    assert got.scalars["accuracy"] == pytest.approx(skm.accuracy_score(y, predicted))
    assert got.scalars["f1_macro"] == pytest.approx(skm.f1_score(y, predicted, average="macro"))
    assert got.scalars["precision_macro"] == pytest.approx(skm.precision_score(y, predicted, average="macro"))
    assert got.scalars["recall_macro"] == pytest.approx(skm.recall_score(y, predicted, average="macro"))
    assert got.scalars["auc"] == pytest.approx(skm.roc_auc_score(y, probs, multi_class="ovr"), abs=5e-3)


def test_custom_metrics_are_the_report_s_scalars_each_round():
    """The built-in algorithm's f1/accuracy/r2/... as XGBoost custom metrics (one host: reductions are identity)."""

    class Matrix:
        def __init__(self, label):
            self.label = label

        def get_label(self):
            return self.label

        def get_weight(self):
            return np.array([])

    same = lambda a: a  # noqa: E731
    y = RNG.integers(0, 2, size=1000).astype(float)
    p = np.clip(0.4 * y + RNG.uniform(0, 0.6, size=1000), 0, 1)
    metric = ev.custom_metric(["f1", "accuracy", "precision_macro", "recall_micro"], "binary:logistic", 2, same, same,
                              weighted=False)
    values = dict(metric(p, Matrix(y)))
    assert values["f1"] == pytest.approx(skm.f1_score(y, p >= 0.5))
    assert values["accuracy"] == pytest.approx(skm.accuracy_score(y, p >= 0.5))
    assert values["precision_macro"] == pytest.approx(skm.precision_score(y, p >= 0.5, average="macro"))
    assert values["recall_micro"] == pytest.approx(skm.recall_score(y, p >= 0.5, average="micro"))
    r2 = ev.custom_metric(["r2", "mse"], "reg:squarederror", 2, same, same, weighted=False)
    values = dict(r2(p, Matrix(y)))
    assert values["r2"] == pytest.approx(skm.r2_score(y, p)) and values["mse"] == pytest.approx(
        skm.mean_squared_error(y, p))


def test_an_empty_validation_share_adds_nothing():
    empty = ev.Scores.of(np.zeros(0), np.zeros(0))
    assert not ev.summary(ev.BINARY, empty, ev.ranges(ev.BINARY, empty)).any()
    assert np.isneginf(ev.ranges(ev.REGRESSION, empty)).all()


def test_a_host_s_rows_read_in_batches_give_the_report_of_all_its_rows():
    y = RNG.integers(0, 3, size=3000)
    probs = probabilities("multi:softprob", RNG.normal(size=(3000, 3)), 3)
    whole = ev.Scores.of(y, probs)
    batches = lambda: _hosts(whole, cuts=(0.1, 0.5, 0.5))  # noqa: E731 - uneven batches, one empty
    same = lambda a: a  # noqa: E731 - one host: the reductions are identity
    got = ev.evaluate(ev.MULTICLASS, batches, same, same, ["x", "y", "z"])
    _close(got.to_json(), ev.evaluate(ev.MULTICLASS, lambda: [whole], same, same, ["x", "y", "z"]).to_json())


def _close(a, b):
    """Equal structure, numbers equal but for the order of floating-point sums."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _close(a[key], b[key])
    elif isinstance(a, str) or (isinstance(a, list) and a and isinstance(a[0], str)):
        assert a == b
    elif isinstance(a, list):
        assert np.allclose(np.array(a, dtype=float), np.array(b, dtype=float), rtol=1e-12, equal_nan=True)
    else:
        assert a == pytest.approx(b, rel=1e-12, nan_ok=True)


def _ndcg_brute(labels, scores, k):
    """NDCG@k written out from its definition, one group at a time."""
    order = sorted(range(len(labels)), key=lambda i: -scores[i])
    dcg = sum((2 ** labels[i] - 1) / np.log2(r + 2) for r, i in enumerate(order[:k]))
    ideal = sum((2 ** g - 1) / np.log2(r + 2) for r, g in enumerate(sorted(labels, reverse=True)[:k]))
    return dcg / ideal if ideal > 0 else 1.0


def test_ndcg_by_k_is_the_mean_over_groups_cut_anywhere_between_batches_and_hosts():
    sizes = RNG.integers(1, 30, size=300)
    groups = np.repeat(np.arange(len(sizes)), sizes)
    labels = RNG.integers(0, 4, size=len(groups)).astype(float)
    labels[groups == 3] = 0  # a group without a relevant row counts 1, as in XGBoost
    scores = labels + RNG.normal(scale=1.5, size=len(groups))
    cuts = [0, 517, 518, 2000, len(groups)]  # batches ending mid-group, one of a single row
    batches = [ev.Scores.of(labels[a:b], scores[a:b], groups=groups[a:b]) for a, b in zip(cuts, cuts[1:],
                                                                                        strict=False)]
    regrouped = list(ev.whole_groups(batches))
    assert sum(len(b.labels) for b in regrouped) == len(groups)
    assert all(set(a.groups).isdisjoint(b.groups) for a, b in zip(regrouped, regrouped[1:], strict=False))
    # whole groups summed as the collective sums hosts' (a ranking shard holds whole groups)
    total = sum(ev.summary(ev.RANKING, p, ev.ranges(ev.RANKING, p)) for p in regrouped)
    got = ev.report(ev.RANKING, total, np.full(3, -np.inf))
    for k in (1, 3, 5, 10):
        expected = np.mean([_ndcg_brute(labels[groups == g].tolist(), scores[groups == g].tolist(), k)
                            for g in range(len(sizes))])
        assert got.scalars[f"ndcg@{k}"] == pytest.approx(expected, rel=1e-12)
    assert got.curves["ndcg_at_k"]["groups"][0] == len(sizes)
