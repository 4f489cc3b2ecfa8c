"""The global SHAP importance: sums that add up across hosts give the mean over every host's rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import xgboost as xgb

from training.evaluation import contributions
from training.read.columns import FEATURE, LABEL, ColumnPlan, ColumnSpec
from training.train.evaluate import _sampled_rows

NAMES = ["Price", "Units Sold", "noise"]
"""Table names (one with a space): the importance is reported under these, never XGBoost's."""


def _rows(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(NAMES))).astype(np.float32)
    return x, (3 * x[:, 0] + x[:, 1] + rng.normal(scale=0.1, size=n)).astype(np.float32)


def _host_totals(booster: xgb.Booster, parts: list[np.ndarray], outputs: int) -> np.ndarray:
    """What the all-reduce adds up: each host's slices' sums and its validation rows, summed over hosts."""
    total = np.zeros(len(contributions.empty_sums(len(NAMES), outputs)) + 1)
    for part in parts:
        host = contributions.empty_sums(len(NAMES), outputs)
        for start in range(0, max(len(part), 1), 300):  # slices of 300 rows; a host with none predicts one empty
            contribs = booster.predict(xgb.DMatrix(part[start:start + 300]), pred_contribs=True)
            host += contributions.contribution_sums(contribs, len(NAMES), outputs)
        total += np.append(host, len(part))
    return total


@pytest.mark.parametrize("params", [{"max_depth": 3}, {"booster": "gblinear"}], ids=["trees", "gblinear"])
def test_the_sum_over_hosts_is_the_mean_over_all_their_rows_on_one_host(params: dict) -> None:
    x, y = _rows(1_000)
    booster = xgb.train(params, xgb.DMatrix(x, y), 20)
    parts = [x[:700], x[700:700], x[700:]]  # the second host has no validation rows
    found = contributions.shap_importance(_host_totals(booster, parts, 1), NAMES)
    everything = booster.predict(xgb.DMatrix(x), pred_contribs=True).astype(np.float64)
    expected = np.abs(everything[:, :-1]).mean(axis=0)
    assert list(found.mean_abs_shap) == NAMES
    np.testing.assert_allclose(list(found.mean_abs_shap.values()), expected, rtol=1e-6)
    assert found.expected_value == pytest.approx([everything[:, -1].mean()], rel=1e-6)  # the bias, apart
    assert (found.rows, found.validation_rows, found.per_class) == (1_000, 1_000, {})
    assert [name for name, _ in found.ranked()] == NAMES  # 3 x Price + Units Sold; noise last
    if params.get("booster") == "gblinear":  # a linear model's contribution: coefficient x value
        weights = np.array([float(w) for w in booster.get_dump()[0].split("weight:")[1].split()])
        np.testing.assert_allclose(expected, np.abs(x * weights).mean(axis=0), rtol=1e-5)


def test_a_multiclass_feature_counts_its_mean_absolute_value_in_every_class() -> None:
    x, y = _rows(900, seed=1)
    label = np.digitize(y, [-1.0, 1.0])  # three classes by the value
    booster = xgb.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 3}, xgb.DMatrix(x, label), 10)
    found = contributions.shap_importance(_host_totals(booster, [x[:400], x[400:], x[:0]], 3), NAMES, 3,
                                          ["low", "mid", "high"])
    everything = booster.predict(xgb.DMatrix(x), pred_contribs=True).astype(np.float64)  # rows x classes x (f + 1)
    per_class = np.abs(everything[:, :, :-1]).mean(axis=0)
    for c, name in enumerate(["low", "mid", "high"]):
        np.testing.assert_allclose(list(found.per_class[name].values()), per_class[c], rtol=1e-5)
    np.testing.assert_allclose(list(found.mean_abs_shap.values()), per_class.sum(axis=0), rtol=1e-5)
    assert found.expected_value == pytest.approx(everything[:, :, -1].mean(axis=0).tolist(), rel=1e-5)
    assert found.ranked()[0][0] == "Price"


@pytest.mark.parametrize("hosts_rows", [[0, 7, 10_001, 3], [5_000, 5_000], [123_457], [0, 0]])
def test_the_rows_used_stay_under_the_cap_spread_over_each_shard_and_the_slices_under_the_memory_bound(
        hosts_rows: list[int]) -> None:
    cap = contributions.rows_per_host(10, len(hosts_rows))
    for rows in hosts_rows:
        used = min(rows, cap)
        picked = np.concatenate([start + contributions.sampled(start, min(start + 999, rows), rows, used)
                                 for start in range(0, rows, 999)] or [np.zeros(0, dtype=np.int64)])
        assert len(picked) == used and len(set(picked)) == used and (used == 0 or picked[-1] < rows)
        if used > 1:  # evenly spread: the gaps differ by at most one row, the first row is taken
            gaps = np.diff(picked)
            assert picked[0] == 0 and gaps.max() - gaps.min() <= 1
    assert sum(min(rows, cap) for rows in hosts_rows) <= 10
    step = contributions.slice_rows(features=1_000, outputs=10, max_rows=1_000_000)
    assert step * 10 * 1_001 * 4 <= contributions.SLICE_BYTES and step > 0
    assert contributions.slice_rows(features=3, outputs=1, max_rows=50) == 50  # never more than the cap


def test_evenly_spaced_rows_of_the_spilled_file_in_slices(tmp_path: Path) -> None:
    plan = ColumnPlan((ColumnSpec("a", "REAL", "numeric", FEATURE), ColumnSpec("y", "REAL", "numeric", LABEL)))
    values = np.arange(1_000, dtype=np.float64)
    path = tmp_path / "validation.arrow"
    with pa.ipc.new_file(str(path), plan.spill_schema) as out:
        for start, end in ((0, 333), (333, 600), (600, 1_000)):  # record batches of uneven lengths
            out.write_batch(plan.to_spill([pa.array(values[start:end]), pa.array(values[start:end])]))
    slices = list(_sampled_rows(path, plan, rows=1_000, used=143, step=40))
    assert [len(s) for s in slices] == [40, 40, 40, 23]
    np.testing.assert_array_equal(np.concatenate(slices)[:, 0], np.arange(143) * 1_000 // 143)


def test_the_files_rank_the_features_name_the_classes_and_say_how_many_rows(tmp_path: Path) -> None:
    from training.evaluation.files import write_evaluation

    totals = np.array([1.0, 4.0, 0.0,  # class "no": |SHAP| sums of Price, Units Sold, noise
                       3.0, 4.0, 0.5,  # class "yes"
                       -1.0, 2.0,  # bias sums
                       2.0, 5.0])  # rows used, validation rows
    shap = contributions.shap_importance(totals, NAMES, 2, ["no", "yes"])
    files = write_evaluation(None, {}, tmp_path, "T, multi:softprob, 2 host(s)", shap)
    assert {f.name for f in files} == {"evaluation.json", "shap_importance.csv", "shap_importance.png"}
    lines = (tmp_path / "shap_importance.csv").read_text().splitlines()
    assert lines == ["feature,mean_abs_shap,mean_abs_shap[no],mean_abs_shap[yes],rows",
                     "Units Sold,4.0,2.0,2.0,2", "Price,2.0,0.5,1.5,2", "noise,0.25,0.0,0.25,2"]
    logged = json.loads((tmp_path / "evaluation.json").read_text())["shap_importance"]
    assert (logged["expected_value"], logged["rows"], logged["validation_rows"]) == ([-0.5, 1.0], 2, 5)
