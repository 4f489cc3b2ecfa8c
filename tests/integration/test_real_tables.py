"""Tables shaped like users' own (issue 10): case-sensitive names, decimals, NULLs, booleans, dates,
timestamps, text columns, text class labels and weights, through the real container program.

The mixed table (``launch.datasets.mixed_chunk``) has quoted lower- and mixed-case names (one with
a space), ``NUMBER(10,2)``, NULLs in features, a BOOLEAN, a DATE, a TIMESTAMP, a text ``region``
that carries signal with one rare value in a single row (so in one host's shard only), the target
``Spend`` in the middle, text labels ``Segment`` (3 classes) and ``churned`` (2), and a VARIANT.
Independent jobs run side by side. The multiclass job also runs on one host, for the objective
families' check that several hosts train as one (test_objectives has the other families).
(A table with both ``Label`` and ``LABEL`` cannot exist in the local Snowflake, whose DuckDB names
are case-insensitive: tests/unit/test_names.py covers that case.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pyarrow as pa
import pyarrow.ipc
import pyarrow.parquet as pq
import pytest
import xgboost as xgb

from launch import datasets, jobs
from launch.local.hosts import LocalJobResult, run_local_job
from launch.local.services import LocalStack
from launch.settings import load_settings
from tests.helpers import assert_trains_on_several_hosts_as_on_one
from tests.integration.battery import assert_user_failure, run_parallel
from training import contract
from training.model import booster as table_model

pytestmark = pytest.mark.slow

ROWS = 6_000
TABLE, DIRTY, CLEAN = "DEMO.PUBLIC.MIXED", "DEMO.PUBLIC.MIXED_DIRTY", "DEMO.PUBLIC.MIXED_CLEAN"
FEATURES = ['"Price"', '"Units Sold"', '"is_member"', '"signup_date"', '"last_seen"', '"region"', '"noise"']
SETTINGS = """
region = "us-west-2"
role = "arn:aws:iam::123456789012:role/Training"
image = "123456789012.dkr.ecr.us-west-2.amazonaws.com/xgb:1"
[data]
table = "{table}"
target = '"Spend"'
features = {features}
snowflake_secret_id = "test/snowflake"
[output]
s3_path = "s3://bucket/out"
[hyperparameters]
shard_key = '"id"'
num_round = 40
max_depth = 4
eta = 0.2
collective_timeout = 120
"""


def _seed(stack: LocalStack, workdir: Path) -> None:
    table = datasets.mixed_chunk(0, ROWS, seed=11, rare_row=123)
    dirty = table.to_pandas()
    corrupt = np.random.default_rng(5).random(ROWS) < 0.3  # rows with a wrong target and weight 0
    dirty.loc[corrupt, "Spend"] = dirty.loc[corrupt, "Spend"].astype(float).add(400).map(lambda v: f"{v:.2f}")
    dirty["Spend"] = dirty["Spend"].astype(float)
    dirty.loc[corrupt, "w"] = 0.0
    conn = stack.connect()
    try:
        for name, data in ((TABLE, table), (DIRTY, pa.Table.from_pandas(dirty, preserve_index=False)),
                           (CLEAN, pa.Table.from_pandas(dirty[~corrupt], preserve_index=False))):
            path = workdir / f"{name.rsplit('.', 1)[-1].lower()}.parquet"
            pq.write_table(data, path)
            datasets.load_parquet(conn, name.rsplit(".", 1)[-1], path)
        conn.cursor().execute(f'ALTER TABLE {TABLE} ADD COLUMN "payload" VARIANT')
    finally:
        conn.close()


def _launcher_request(tmp: Path, table: str, features: list[str]) -> dict[str, str]:
    """The HyperParameters of the CreateTrainingJob request `launch/train.py --dry-run` builds."""
    path = tmp / f"settings-{len(features)}.toml"
    path.write_text(SETTINGS.format(table=table, features=json.dumps(features)))
    return dict(jobs.training_request(load_settings(path))["HyperParameters"])


def _sdk_v2(values: dict[str, Any]) -> dict[str, str]:
    """What SDK v2's Estimator writes: every value JSON-encoded."""
    return {key: json.dumps(value) for key, value in values.items()}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("real-tables")


def _tracking_uri(workdir: Path) -> str:
    return f"sqlite:///{workdir / 'mlflow.db'}"


@pytest.fixture(scope="module")
def outcomes(stack: LocalStack, job_env: dict[str, str], workdir: Path) -> dict[str, LocalJobResult]:
    _seed(stack, workdir)
    tracking = _tracking_uri(workdir)
    # Artifacts under the test's directory, not ./mlruns in the hosts' working directory (the repo).
    mlflow.MlflowClient(tracking).create_experiment("mixed", artifact_location=(workdir / "artifacts").as_uri())
    mlflow.MlflowClient(tracking).create_experiment("classes", artifact_location=(workdir / "classes").as_uri())
    classes = {contract.TRACKING_URI_ENV: tracking, contract.EXPERIMENT_ENV: "classes"}
    with_region = _launcher_request(workdir, TABLE, FEATURES)
    without_region = _sdk_v2({"table": TABLE, "target": '"Spend"', "shard_key": '"id"', "num_round": 40,
                              "max_depth": 4, "eta": 0.2, "collective_timeout": 120,
                              "features": ",".join(f for f in FEATURES if f != '"region"')})
    base = {"table": TABLE, "shard_key": '"id"', "num_round": "30", "max_depth": "4", "collective_timeout": "120"}
    weighted = {"table": DIRTY, "target": '"Spend"', "shard_key": '"id"', "num_round": "40", "max_depth": "4",
                "features": ",".join(FEATURES)}
    # features left empty: every column but target and shard key, the VARIANT left out with a warning
    binary = {**base, "target": '"churned"', "objective": "binary:logistic", "eval_metric": "logloss,auc,error,f1"}
    multiclass = {**base, "target": '"Segment"', "objective": "multi:softprob",
                  "eval_metric": "mlogloss,merror,auc,accuracy", "features": ",".join(FEATURES)}
    plan = {
        "with_region": (with_region, 3, {contract.TRACKING_URI_ENV: tracking, contract.EXPERIMENT_ENV: "mixed"}),
        "without_region": (without_region, 3, {}),
        "binary": (binary, 2, classes),
        "multiclass": (multiclass, 2, classes),
        "multiclass-1": (multiclass, 1, {}),  # the same job on one host
        "num_class_mismatch": ({**base, "target": '"Segment"', "objective": "multi:softmax", "num_class": "4",
                                "features": '"Price"'}, 1, {}),
        "weighted": ({**weighted, "weight_column": '"w"'}, 1, {}),
        "unweighted": (weighted, 1, {}),
        "clean": ({**weighted, "table": CLEAN}, 1, {}),
        "case_mismatch": ({**base, "target": "spend"}, 1, {}),
    }

    def job(name: str, hps: dict[str, str], hosts: int, env: dict[str, str]) -> Any:
        return lambda: run_local_job(hps, hosts=hosts, workdir=workdir, env={**job_env, **env}, job_name=name,
                                     timeout=400)

    return run_parallel({name: job(name, *spec) for name, spec in plan.items()}, workers=3)


def _ok(result: LocalJobResult) -> str:
    assert result.exit_code == 0, result.failure
    return result.logs[0].read_text()


def _rows(stack: LocalStack, table: str, where: str = "") -> tuple[Any, pa.Table]:
    """The table's rows as pandas (raw, as a user has them) and as the connector's Arrow batches."""
    conn = stack.connect()
    try:
        cursor = conn.cursor()
        cursor.execute(f'SELECT * FROM {table} {where} ORDER BY "id"')  # noqa: S608  (our own table)
        arrow = cursor.fetch_arrow_all()
        return arrow.to_pandas(), arrow
    finally:
        conn.close()


def test_mixed_table_trains_on_three_hosts_with_one_vocabulary(outcomes, stack) -> None:
    result = outcomes["with_region"]
    log = _ok(result)
    conn = stack.connect()
    try:
        assert datasets.table_rows(conn, TABLE) == ROWS
    finally:
        conn.close()
    assert f"total rows across 3 hosts: {ROWS:,}" in log  # all-reduced: every row read exactly once
    assert "1 boolean, 1 categorical, 1 date, 3 numeric, 1 timestamp; target Spend as numeric" in log
    # every host trained with the same codes, including the value only one host's shard holds
    digests = {line.split("digest ")[1] for path in result.logs for line in path.read_text().splitlines()
               if "category codes agreed across 3 host(s)" in line}
    assert len(digests) == 1, digests
    holders = [d for d in result.host_dirs if _spilled_values(d, "region") >= {"island"}]
    assert len(holders) == 1
    _, plan = table_model.load(result.model_path)
    assert plan.vocabularies["region"] == tuple(sorted([*datasets.MIXED_REGIONS, "island"]))
    assert plan.feature_names == ["Price", "Units Sold", "is_member", "signup_date", "last_seen", "region", "noise"]


def _spilled_values(host_dir: Path, column: str) -> set[str]:
    values: set[str] = set()
    for name in ("train.arrow", "validation.arrow"):
        with pa.memory_map(str(host_dir / "spill" / name)) as source:
            values |= set(pyarrow.ipc.open_file(source).read_all().column(column).to_pylist())
    return values


def test_a_text_column_with_signal_makes_a_better_model(outcomes) -> None:
    # both jobs ran the container with names as our launcher sends them and as SDK v2 encodes them
    with_region, without_region = outcomes["with_region"], outcomes["without_region"]
    _ok(without_region)
    assert "region" not in table_model.load(without_region.model_path)[1].feature_names
    better, worse = with_region.final_metrics["validation-rmse"], without_region.final_metrics["validation-rmse"]
    assert better < 0.8 * worse, (better, worse)


def test_the_mlflow_model_scores_raw_rows_exactly_as_the_container_codes_them(outcomes, stack, workdir) -> None:
    import mlflow

    result = outcomes["with_region"]
    mlflow.set_tracking_uri(_tracking_uri(workdir))
    [logged] = mlflow.search_logged_models(experiment_ids=[mlflow.get_experiment_by_name("mixed").experiment_id],
                                           output_format="list")
    model = mlflow.pyfunc.load_model(logged.model_uri)
    raw, arrow = _rows(stack, TABLE)
    assert raw["region"].isna().any() and raw["is_member"].isna().any() and (raw["region"] == "island").any()
    scored = model.predict(raw[[name.strip('"') for name in FEATURES]])["prediction"].to_numpy()
    # the container's own coding: the spill cast of the connector's batches, then the matrix codes
    booster, plan = table_model.load(result.model_path)
    spilled = plan.to_spill([arrow.column(c.name).combine_chunks() for c in plan.columns])
    features, _, _ = plan.matrix(spilled)
    expected = booster.predict(xgb.DMatrix(features, feature_names=plan.xgboost_feature_names,
                                           feature_types=plan.feature_types, enable_categorical=True))
    np.testing.assert_array_equal(scored, expected)
    schema = {c["name"]: c["type"] for c in model.metadata.get_input_schema().to_dict()}
    assert schema == dict.fromkeys(["Price", "Units Sold", "is_member", "signup_date", "last_seen", "region", "noise"],
                                   "any")  # MLflow hands raw values on: the model reads them as the table has them


@pytest.mark.parametrize(("name", "classes"), [("binary", ["no", "yes"]), ("multiclass", ["bronze", "gold", "silver"])])
def test_text_labels_train_and_predict_class_names(outcomes, stack, name, classes) -> None:
    result = outcomes[name]
    log = _ok(result)
    if name == "binary":
        assert "left out 1 column(s) of types the job cannot train on: payload (VARIANT)" in log
    metrics = result.final_metrics
    expected = {"binary": ("logloss", "auc", "error"), "multiclass": ("mlogloss", "merror", "auc")}[name]
    assert all(f"validation-{m}" in metrics for m in expected), metrics
    booster, plan = table_model.load(result.model_path)
    assert plan.classes == classes
    raw, _ = _rows(stack, TABLE)
    label = "churned" if name == "binary" else "Segment"
    predicted = table_model.predict_rows(booster, plan, raw)
    assert set(predicted["prediction"]) <= set(classes)
    accuracy = float((predicted["prediction"] == raw[label]).mean())
    majority = float(raw[label].value_counts(normalize=True).max())
    assert accuracy > majority + 0.05, (accuracy, majority)
    if name == "multiclass":
        assert list(predicted.columns) == ["prediction", *classes]
        np.testing.assert_allclose(predicted[classes].sum(axis=1), 1.0, rtol=1e-5)


def test_multiclass_trains_on_two_hosts_as_on_one(outcomes) -> None:
    """The objective families' check (test_objectives) for multiclass, on this table's job."""
    assert_trains_on_several_hosts_as_on_one(outcomes["multiclass"], outcomes["multiclass-1"], "mlogloss", 2, ROWS, 30)


def test_num_class_that_disagrees_with_the_label_fails_in_one_line(outcomes) -> None:
    assert_user_failure(outcomes["num_class_mismatch"], "hyperparameter 'num_class' is 4, but target 'Segment' has "
                        "3 classes (bronze, gold, silver): set num_class=3 or leave it out")


def test_zero_weights_remove_rows_influence(outcomes, stack) -> None:
    for name in ("weighted", "unweighted", "clean"):
        _ok(outcomes[name])
    raw, _ = _rows(stack, CLEAN)
    truth = raw["Spend"].astype(float).to_numpy()

    def rmse(name: str) -> float:
        booster, plan = table_model.load(outcomes[name].model_path)
        return float(np.sqrt(np.mean((table_model.predict_rows(booster, plan, raw)["prediction"] - truth) ** 2)))

    weighted, unweighted, clean = rmse("weighted"), rmse("unweighted"), rmse("clean")
    assert weighted == pytest.approx(clean, rel=0.15), (weighted, clean)  # the zero-weight rows did not count
    assert unweighted > 2 * weighted, (unweighted, weighted)  # and without weights they do
    assert table_model.load(outcomes["weighted"].model_path)[1].weight.name == "w"


def test_a_name_in_the_wrong_case_fails_naming_the_column_and_how_to_write_it(outcomes) -> None:
    assert_user_failure(outcomes["case_mismatch"], "target column 'spend' is not in table 'DEMO.PUBLIC.MIXED' "
                        "(unquoted names mean upper case in Snowflake), but column 'Spend' is: write it as \"Spend\"")


EVALUATION_FILES = {
    "with_region": ("residuals.png", "residuals.csv", "predicted_vs_actual.png", "predicted_vs_actual.csv"),
    "binary": ("roc.png", "roc.csv", "precision_recall.png", "calibration.png", "confusion_matrix.png",
               "confusion_matrix.csv"),
    "multiclass": ("roc.png", "roc_0.csv", "calibration.png", "confusion_matrix.png", "confusion_matrix.csv"),
}
HEADLINE = {"with_region": ("validation-r2", "validation-mae"), "binary": ("validation-accuracy", "validation-aucpr"),
            "multiclass": ("validation-f1_macro", "validation-accuracy")}


@pytest.mark.parametrize(("name", "experiment"), [("with_region", "mixed"), ("binary", "classes"),
                                                  ("multiclass", "classes")])
def test_the_evaluation_is_charts_and_numbers_equal_to_all_rows_scored_on_one_host(outcomes, workdir, name,
                                                                                  experiment) -> None:
    """Each host reduced its own validation rows; the run's evaluation equals scoring them all at once."""
    from training.evaluation import report as evaluation
    from training.objectives.outputs import probabilities

    result = outcomes[name]
    _ok(result)
    client = mlflow.MlflowClient(_tracking_uri(workdir))
    [run] = client.search_runs([client.get_experiment_by_name(experiment).experiment_id],
                               filter_string=f"tags.`sagemaker.job_name` = '{name}'")
    files = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert {"evaluation.json", "feature_importance.csv", "feature_importance.png", *EVALUATION_FILES[name]} <= files
    for metric in HEADLINE[name]:
        assert 0 < run.data.metrics[metric] <= 1 or metric.endswith("mae")
    tags = run.data.tags
    assert tags["mlflow.source.name"] == "local" and tags["mlflow.source.type"] == "JOB"
    assert tags["mlflow.note.content"].startswith(f"XGBoost {'reg:squarederror' if name == 'with_region' else ''}")
    assert f"Snowflake table {TABLE}" in tags["mlflow.note.content"] and "host(s)" in tags["mlflow.note.content"]
    logged = json.loads(Path(client.download_artifacts(run.info.run_id, "evaluation/evaluation.json")).read_text())

    # all of the job's validation rows, scored on one host by the job's model
    booster, plan = table_model.load(result.model_path)
    objective = table_model.objective(booster)
    kind, classes = evaluation.family(objective), len(plan.classes or [])

    def batches():
        for host in result.host_dirs:
            for fields in datasets_batches(host, plan):
                margin = booster.predict(xgb.DMatrix(fields["data"], feature_names=plan.xgboost_feature_names,
                                                     feature_types=plan.feature_types, enable_categorical=True),
                                         output_margin=True)
                yield evaluation.Scores.of(fields["label"], probabilities(objective, margin, classes),
                                           fields["weight"])

    same = lambda values: values  # noqa: E731 - one host holds every row
    expected = evaluation.evaluate(kind, batches, same, same, [str(c) for c in plan.classes or []]).to_json()
    assert logged["kind"] == expected["kind"] and logged["classes"] == expected["classes"]
    for key, value in expected["scalars"].items():
        assert logged["scalars"][key] == pytest.approx(value, rel=1e-9, abs=1e-12, nan_ok=True), key
    for curve, columns in expected["curves"].items():
        for column, values in columns.items():
            if values and not isinstance(values[0], str):
                np.testing.assert_allclose(logged["curves"][curve][column], values, rtol=1e-9, atol=1e-12)
    assert logged["confusion_matrix"] == expected["confusion_matrix"]
    assert set(logged["feature_importance"]) == set(plan.feature_names)  # the table's own names


def datasets_batches(host_dir: Path, plan):
    from training.train.dataset import matrix_batches

    return matrix_batches(contract.default_spill_dir(host_dir) / "validation.arrow", plan)
