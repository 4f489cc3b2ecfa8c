"""The global SHAP importance of real local jobs: a container process per host, the local Snowflake,
MLflow in sqlite. Two jobs side by side: regression on the synthetic table over 3 hosts (hash
shards), and a multiclass text label on a table small enough to come back as one result batch, so
that in scan mode one host gets every row and the two others an empty shard.

Checked: every host made the same calls (the ledgers, the SHAP calls in them), the run's
``evaluation/shap_importance.csv`` names the table's own columns, its values are the mean |SHAP
value| over the rows the hosts used (recomputed here from the spilled validation files with the
job's model, on one host), and the features that drive the label rank first.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import mlflow
import numpy as np
import pyarrow as pa
import pytest
import xgboost as xgb

from launch.local.hosts import LocalJobResult, run_local_job
from launch.local.services import LocalStack
from tests.helpers import synth_hps
from tests.integration.battery import run_parallel
from training import contract
from training.collective.ledger import compare_ledger_files, ledger_path, read_ledger
from training.evaluation import contributions
from training.model import booster as table_model
from training.train.dataset import matrix_batches

pytestmark = pytest.mark.slow

SMALL, SMALL_ROWS = "SHAP_SMALL", 900
"""Under the local Snowflake's inline part (1,000 rows): one result batch, so two of three hosts read none."""
MIXED_FEATURES = '"Price","Units Sold","is_member","signup_date","last_seen","region","noise"'
EXPERIMENT = "shap"
HOSTS = 3


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("shap")


@pytest.fixture(scope="module")
def outcomes(stack: LocalStack, job_env: dict[str, str], workdir: Path) -> dict[str, LocalJobResult]:
    stack.ensure_table(SMALL, data="mixed", rows=SMALL_ROWS, seed=5)
    tracking = f"sqlite:///{workdir / 'mlflow.db'}"
    mlflow.MlflowClient(tracking).create_experiment(EXPERIMENT, artifact_location=(workdir / "artifacts").as_uri())
    env = {**job_env, contract.TRACKING_URI_ENV: tracking, contract.EXPERIMENT_ENV: EXPERIMENT}
    synthetic = synth_hps(read_mode="hash", num_round=30)
    empty_shard = {"table": f"DEMO.PUBLIC.{SMALL}", "target": '"Segment"', "shard_key": '"id"', "read_mode": "scan",
                   "objective": "multi:softprob", "num_round": "30", "max_depth": "4", "eta": "0.3",
                   "features": MIXED_FEATURES, "collective_timeout": "60"}

    def job(name: str, hps: dict[str, str]) -> LocalJobResult:
        return run_local_job(hps, hosts=HOSTS, workdir=workdir, env=env, job_name=f"shap-{name}", timeout=300)

    return run_parallel({"synthetic": lambda: job("synthetic", synthetic),
                         "empty-shard": lambda: job("empty-shard", empty_shard)}, workers=2)


def _artifacts(workdir: Path, result: LocalJobResult) -> tuple[list[dict[str, str]], dict, dict[str, float]]:
    """The run's SHAP CSV rows, its evaluation.json and its metrics."""
    client = mlflow.MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    [run] = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id],
                               filter_string=f"tags.`sagemaker.job_name` = '{result.job_name}'")
    files = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert {"shap_importance.csv", "shap_importance.png", "feature_importance.csv"} <= files
    with open(client.download_artifacts(run.info.run_id, "evaluation/shap_importance.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    logged = json.loads(Path(client.download_artifacts(run.info.run_id, "evaluation/evaluation.json")).read_text())
    return rows, logged, run.data.metrics


def _assert_hosts_made_the_same_calls(result: LocalJobResult) -> int:
    """Equal ledgers, with the SHAP calls in them; returns how many slice matrices every host built."""
    assert result.exit_code == 0, result.failure
    ledgers = result.host_dirs[0].parent / "ledgers"
    assert result.ledger_mismatch is None
    assert compare_ledger_files(ledgers, [d.name for d in result.host_dirs], complete=True) is None
    sites = [call.split("\t")[0] for call in read_ledger(ledger_path(ledgers, result.host_dirs[-1].name))]
    first = sites.index("shap: slices")
    slices = sites.count("shap: slice matrix")
    assert slices >= 1 and sites[first:first + slices + 2] == [
        "shap: slices", *["shap: slice matrix"] * slices, "shap: sums"]
    return slices


def _expected(result: LocalJobResult, max_rows: int = 10_000) -> tuple[np.ndarray, int, int]:
    """Mean |SHAP value| per output and feature over the rows every host used (spread evenly over its
    validation file), scored here on one host by the job's model; the rows used and the validation rows."""
    booster, plan = table_model.load(result.model_path)
    outputs = len(plan.classes) if plan.classes and len(plan.classes) > 2 else 1
    used, total = [], 0
    for host_dir in result.host_dirs:
        data = [fields["data"] for fields in matrix_batches(contract.default_spill_dir(host_dir) / "validation.arrow",
                                                            plan)]
        rows = np.concatenate(data)
        total += len(rows)
        share = min(len(rows), contributions.rows_per_host(max_rows, HOSTS))
        used.append(rows[contributions.sampled(0, len(rows), len(rows), share)])
    matrix = xgb.DMatrix(np.concatenate(used), feature_names=plan.xgboost_feature_names,
                         feature_types=plan.feature_types, enable_categorical=True)
    contribs = booster.predict(matrix, pred_contribs=True).astype(np.float64)
    contribs = contribs.reshape(-1, outputs, len(plan.features) + 1)
    return np.abs(contribs[:, :, :-1]).mean(axis=0), sum(map(len, used)), total


def test_a_regression_jobs_shap_importance_is_every_hosts_rows_under_the_tables_names(outcomes, workdir) -> None:
    result = outcomes["synthetic"]
    _assert_hosts_made_the_same_calls(result)
    rows, logged, metrics = _artifacts(workdir, result)
    expected, used, total = _expected(result)
    names = [row["feature"] for row in rows]
    assert sorted(names) == [f"F{i}" for i in range(8)]  # the table's columns, highest first
    values = {row["feature"]: float(row["mean_abs_shap"]) for row in rows}
    assert all(v >= 0 for v in values.values())
    np.testing.assert_allclose([values[f"F{i}"] for i in range(8)], expected[0], rtol=1e-5)
    assert {int(row["rows"]) for row in rows} == {used} and 0 < used <= 10_000
    # Y = 3 sin(F0) + F1 + 0.5 F1 F2 + 0.5 F3^2 - F4 + noise: F5..F7 are noise
    assert names[0] == "F0" and set(names[-3:]) == {"F5", "F6", "F7"}
    assert logged["shap_importance"]["validation_rows"] == total and logged["shap_importance"]["rows"] == used
    assert "shap_seconds" in metrics
    assert f"SHAP importance over {used:,} of {total:,} validation rows" in (result.host_dirs[0] / "log.txt").read_text()


def test_hosts_with_empty_shards_make_the_same_calls_and_a_multiclass_importance_sums_its_classes(
        outcomes, workdir) -> None:
    result = outcomes["empty-shard"]
    assert "train on an empty shard" in (result.host_dirs[0] / "log.txt").read_text()  # the case is exercised
    assert [_rows_of(d) > 0 for d in result.host_dirs].count(True) == 1  # one host holds every validation row
    _assert_hosts_made_the_same_calls(result)
    rows, logged, _ = _artifacts(workdir, result)
    expected, used, total = _expected(result)
    booster, plan = table_model.load(result.model_path)
    classes = [str(c) for c in plan.classes or []]
    assert len(classes) == 3
    assert list(rows[0]) == ["feature", "mean_abs_shap", *(f"mean_abs_shap[{c}]" for c in classes), "rows"]
    assert sorted(row["feature"] for row in rows) == sorted(plan.feature_names)  # "Units Sold", not f1
    by_name = {row["feature"]: row for row in rows}
    for i, name in enumerate(plan.feature_names):
        per_class = [float(by_name[name][f"mean_abs_shap[{c}]"]) for c in classes]
        np.testing.assert_allclose(per_class, expected[:, i], rtol=1e-5, atol=1e-9)
        assert float(by_name[name]["mean_abs_shap"]) == pytest.approx(sum(per_class), rel=1e-9)
        assert min(per_class) >= 0
    # Segment is Spend plus noise, binned: Spend is 0.2 Price + 3 Units Sold + the region's effect + 20 is_member
    top = {row["feature"] for row in rows[:3]}
    assert top <= {"Price", "Units Sold", "region", "is_member"} and "noise" not in top
    assert used == total == logged["shap_importance"]["validation_rows"]  # under the cap: every row
    assert len(logged["shap_importance"]["expected_value"]) == 3


def _rows_of(host_dir: Path) -> int:
    with pa.memory_map(str(contract.default_spill_dir(host_dir) / "validation.arrow")) as source:
        return pa.ipc.open_file(source).read_all().num_rows
