"""A job's run moved to another MLflow server with mlflow-export-import, the AWS guide's route to a
SageMaker MLflow App (docs/tracking.md, "Moving runs to a SageMaker MLflow App").

One 2-host job on a small mixed table (text, decimals, booleans, dates, NULLs) logs to ``mlflow
server`` A, started for this module; the tool's ``export-experiment`` and ``import-experiment`` copy
the experiment to a second server B (the session's shared server), and A is stopped before B is
read, so nothing on B can lean on A. On B the model
loads from the run's artifacts and scores raw rows exactly as on A, the run keeps its params,
metric histories and tags, its dataset input reads back as our Snowflake source (the
``mlflow.dataset_source`` entry point), and the launcher registers the moved run's model.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest

from launch import datasets
from launch.local.demo import demo_hyperparameters
from launch.local.hosts import LocalJobResult, start_local_job
from launch.local.services import LocalStack
from tests.integration.mlflow_server import MlflowServer, mlflow_server
from training import contract
from training.tracking import lineage

pytestmark = pytest.mark.slow

ROWS = 2_000
TABLE = f"MIGRATE_MIXED_{ROWS}"
EXPERIMENT = "migrate"
FEATURES = [name.strip('"') for name in datasets.MIXED_FEATURES]
MODEL_URI = f"runs:/{{}}/{contract.MLFLOW_MODEL_NAME}"


@dataclass(frozen=True)
class Migration:
    """The job, its run on A (read before A stopped) and the run imported into B (which still runs)."""

    job: LocalJobResult
    source_run: Any
    source_history: dict[str, list[tuple[int, float]]]
    source_predictions: pd.DataFrame
    rows: pd.DataFrame
    target_uri: str
    target_run: Any


def _tool(command: str, tracking_uri: str, *args: str) -> None:
    """Run one mlflow-export-import command (installed with requirements-dev.txt) against ``tracking_uri``."""
    program = Path(sys.executable).with_name(command)
    assert program.exists(), f"{command} not found: install requirements-dev.txt (make venv)"
    done = subprocess.run([str(program), *args], env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


def _raw_rows(stack: LocalStack) -> pd.DataFrame:
    """The table's feature columns as the connector returns them (decimals, text, NULLs, dates)."""
    conn = stack.connect()
    try:
        cursor = conn.cursor()
        cursor.execute(f'SELECT * FROM {TABLE} ORDER BY "id" LIMIT 300')  # noqa: S608  (our own table)
        return cursor.fetch_arrow_all().to_pandas()[FEATURES]
    finally:
        conn.close()


def _only_run(client: mlflow.MlflowClient) -> Any:
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None, f"experiment {EXPERIMENT!r} missing"
    [run] = client.search_runs([experiment.experiment_id])
    return run


def _history(client: mlflow.MlflowClient, run: Any) -> dict[str, list[tuple[int, float]]]:
    return {key: sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))
            for key in run.data.metrics}


@pytest.fixture(scope="module")
def migration(stack: LocalStack, job_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory,
              shared_tracking: MlflowServer) -> Iterator[Migration]:
    import mlflow.tracking._tracking_service.utils as service_utils

    root = tmp_path_factory.mktemp("migration")
    stack.ensure_table(TABLE, data="mixed", rows=ROWS, seed=3)
    rows = _raw_rows(stack)
    hps = {**demo_hyperparameters("mixed", TABLE), "num_round": "15", "collective_timeout": "60"}
    with pytest.MonkeyPatch.context() as mp, mlflow_server(root / "a") as source:
        mp.setattr(service_utils, "_tracking_uri", service_utils._tracking_uri)  # restored afterwards
        env = {**job_env, contract.TRACKING_URI_ENV: source.uri, contract.EXPERIMENT_ENV: EXPERIMENT}
        job = start_local_job(hps, hosts=2, workdir=root, env=env).wait(timeout=300)
        assert job.exit_code == 0, job.failure
        _tool("export-experiment", source.uri, "--experiment", EXPERIMENT, "--output-dir", str(root / "export"))
        client = mlflow.MlflowClient(source.uri)
        source_run = _only_run(client)
        history = _history(client, source_run)
        mlflow.set_tracking_uri(source.uri)
        predictions = mlflow.pyfunc.load_model(MODEL_URI.format(source_run.info.run_id)).predict(rows)
        source.stop()
        target = shared_tracking
        _tool("import-experiment", target.uri, "--experiment-name", EXPERIMENT, "--input-dir", str(root / "export"),
              "--import-source-tags", "true")
        mlflow.set_tracking_uri(target.uri)
        yield Migration(job, source_run, history, predictions, rows, target.uri,
                        _only_run(mlflow.MlflowClient(target.uri)))


def test_the_model_loads_from_the_moved_run_and_predicts_the_same(migration: Migration) -> None:
    assert migration.rows["region"].map(lambda v: isinstance(v, str)).any()  # a text column reaches the model
    model = mlflow.pyfunc.load_model(MODEL_URI.format(migration.target_run.info.run_id))
    pd.testing.assert_frame_equal(model.predict(migration.rows), migration.source_predictions)
    assert np.isfinite(migration.source_predictions["prediction"]).all()
    assert list(model.metadata.get_input_schema().input_names()) == FEATURES


def test_params_metric_histories_and_tags_survive(migration: Migration) -> None:
    source, moved = migration.source_run, migration.target_run
    assert moved.info.run_id != source.info.run_id
    assert moved.data.params == source.data.params and moved.data.params["num_round"] == "15"
    assert _history(mlflow.MlflowClient(migration.target_uri), moved) == migration.source_history
    assert [step for step, _ in migration.source_history["validation-rmse"]][:15] == list(range(15))
    ours = {k: v for k, v in source.data.tags.items() if k.startswith(("sagemaker.", "version."))}
    assert len(ours) >= 7 and {k: moved.data.tags.get(k) for k in ours} == ours
    assert moved.data.tags["mlflow.runName"] == migration.job.job_name
    # --import-source-tags: the old run's id and times, which the new run's own info does not keep
    assert moved.data.tags["mlflow_exim.run_info.run_id"] == source.info.run_id
    assert moved.data.tags["mlflow_exim.run_info.start_time"] == str(source.info.start_time)


def test_the_dataset_input_reads_back_as_the_snowflake_source(migration: Migration) -> None:
    [dataset_input] = migration.target_run.inputs.dataset_inputs
    source = mlflow.data.get_source(dataset_input)  # "unrecognized source type" without the entry point
    assert isinstance(source, lineage.SnowflakeSource)
    recorded = source.lineage
    assert (recorded.database, recorded.schema, recorded.table, recorded.rows) == ("DEMO", "PUBLIC", TABLE, ROWS)
    assert recorded.query_ids and recorded.read_mode == "scan"


def test_the_moved_run_registers_and_the_alias_loads(migration: Migration) -> None:
    from launch.registry import register

    done = register(migration.target_uri, "migrated", run_id=migration.target_run.info.run_id)
    assert done.model_uri == MODEL_URI.format(migration.target_run.info.run_id)  # no logged model on B
    model = mlflow.pyfunc.load_model("models:/migrated@champion")
    pd.testing.assert_frame_equal(model.predict(migration.rows), migration.source_predictions)
