"""Batch scoring (issue 24): a 3-host model scores a 3-host read of a table into another table, all or nothing.

The source has case-sensitive names, text, NULLs and a region the model never saw; the target's rows
must equal ``predict_rows`` on the same rows, exactly, every key once. A rerun replaces the target, and
a job that fails (a source without a model column) leaves the previous target as it was. Every job logs
one MLflow run to a real ``mlflow server``, linked to the registered version it scores with.
"""

from __future__ import annotations

import re
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from launch import datasets
from launch.local.hosts import LocalJobResult, container_command, run_local_job, start_local_job
from launch.local.services import LocalStack, free_port
from launch.registry import Registration, register
from tests.helpers import SECRET_PASSWORD
from tests.integration.mlflow_server import MlflowServer
from training import contract
from training.model.booster import load, predict_rows, scoring_matrix

pytestmark = pytest.mark.slow

TRAIN, SOURCE, NO_REGION, BAD_ROW, BIG, TARGET = ("DEMO.PUBLIC.SCORE_TRAIN", "DEMO.PUBLIC.SCORE_SOURCE",
                                                  "DEMO.PUBLIC.SCORE_NO_REGION", "DEMO.PUBLIC.SCORE_BAD_ROW",
                                                  "DEMO.PUBLIC.SCORE_BIG", 'DEMO.PUBLIC."Churn Scores"')
EXPLAINED, LINEAR = "DEMO.PUBLIC.EXPLAINED_SCORES", "DEMO.PUBLIC.LINEAR_SCORES"
STAGING = "Churn Scores__SCORING_"
"""TARGET's staging tables' names begin so (jobs on EXPLAINED and LINEAR run beside the ones on TARGET)."""
FEATURES = '"Price","Units Sold","is_member","signup_date","last_seen","region","noise"'
ROWS = 3_000
BIG_ROWS = 60_000
EXPERIMENT = "batch-scoring"
"""This module's experiment on the session's MLflow server: every scoring job of the fixture logs its run there."""


@pytest.fixture(scope="module")
def scored(stack: LocalStack, job_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory,
           shared_tracking: MlflowServer) -> dict[str, Any]:
    workdir = tmp_path_factory.mktemp("scoring")
    source = datasets.mixed_chunk(10_000, ROWS, seed=21, rare_row=None)
    unseen = pa.array(np.arange(ROWS) % 97 == 5)  # ~31 rows in a region the model never saw
    source = source.set_column(source.schema.get_field_index("region"), "region",
                               pc.if_else(unseen, pa.scalar("atlantis"), source.column("region")))
    conn = stack.connect()
    try:
        noise = source.schema.get_field_index("noise")
        beyond = pc.if_else(pa.array(np.arange(ROWS) == ROWS - 1), pa.scalar(1e39), source.column("noise"))
        for name, table in ((TRAIN, datasets.mixed_chunk(0, ROWS, seed=20, rare_row=None)), (SOURCE, source),
                            (NO_REGION, source.drop(["region"])), (BAD_ROW, source.set_column(noise, "noise", beyond)),
                            (BIG, datasets.mixed_chunk(50_000, BIG_ROWS, seed=22, rare_row=None))):
            path = workdir / f"{name.rsplit('.', 1)[-1].lower()}.parquet"
            pq.write_table(table, path)
            datasets.load_parquet(conn, name.rsplit(".", 1)[-1], path)
    finally:
        conn.close()
    trained = run_local_job({"table": TRAIN, "target": '"churned"', "features": FEATURES, "objective": "binary:logistic",
                             "num_round": "15", "max_depth": "4", "collective_timeout": "120", "read_mode": "scan"},
                            hosts=3, workdir=workdir, env=job_env, job_name="score-model", timeout=300)
    assert trained.exit_code == 0, trained.failure
    model = contract.model_dir(trained.host_dirs[0])
    version = _register(shared_tracking, model / contract.MODEL_FILE)
    tracked = {**job_env, contract.TRACKING_URI_ENV: shared_tracking.uri, contract.EXPERIMENT_ENV: EXPERIMENT}

    channel = workdir / "channel"  # as SageMaker hands a scoring job a training job's model: the archive itself
    channel.mkdir()
    with tarfile.open(channel / "model.tar.gz", "w:gz") as tar:
        tar.add(model / contract.MODEL_FILE, arcname=contract.MODEL_FILE)

    def score(name: str, source_table: str, model_folder: Path = model, env: dict[str, str] | None = None,
              **settings: str) -> LocalJobResult:
        return run_local_job({"source_table": source_table, "target_table": TARGET, "key_columns": '"id"',
                              "batch_rows": "1000", "collective_timeout": "120", "model_name": "churn",
                              "model_version": version.version, "run_id": version.run_id, **settings},
                             hosts=3, workdir=workdir,
                             env={**tracked, contract.SCORING_MODEL_ENV: str(model_folder), **(env or {})},
                             job_name=name, command=container_command(contract.SCORE_COMMAND), timeout=300)

    def other_targets() -> dict[str, Any]:
        """The jobs on other targets than TARGET (the explained and the linear one), beside the ones on TARGET
        (each job's leader drops the staging tables earlier jobs on its target left, so those go one by one)."""
        explained = score("score-9", SOURCE, target_table=EXPLAINED, explain="3")
        linear = run_local_job({"table": TRAIN, "target": '"Price"', "features": '"Units Sold","noise","is_member"',
                                "booster": "gblinear", "num_round": "10", "collective_timeout": "120"},
                               hosts=2, workdir=workdir, env=job_env, job_name="score-linear-model", timeout=300)
        assert linear.exit_code == 0, linear.failure
        linear_model = contract.model_dir(linear.host_dirs[0])
        linear_scored = score("score-10", SOURCE, linear_model, target_table=LINEAR)
        return {"explained": explained, "after_explained": _target(stack, EXPLAINED), "linear": linear_scored,
                "linear_model": linear_model / contract.MODEL_FILE, "after_linear": _target(stack, LINEAR)}

    beside = ThreadPoolExecutor(max_workers=1).submit(other_targets)
    first = score("score-1", SOURCE)
    assert first.exit_code == 0, (first.failure, first.logs[0].read_text()[-3000:])
    target_after_first = _target(stack)
    again = score("score-2", SOURCE, channel)  # the model as a model.tar.gz, unpacked by the container
    target_after_second = _target(stack)
    failed = score("score-3", NO_REGION)
    after_failed = _target(stack)
    bad_row = score("score-4", BAD_ROW)  # fails while the hosts score: some may have appended already
    after_bad_row = _target(stack)
    killed = _kill_a_host_mid_write(stack, workdir, {**tracked, contract.SCORING_MODEL_ENV: str(model)})
    after_killed, tables_after_killed = _target(stack), _tables(stack)
    _leave_a_staging_table(stack)  # what a leader killed outright (SIGKILL, its instance lost) leaves
    rerun = score("score-6", BIG)
    after_rerun = _target(stack)
    stopped = _stop_mid_write(stack, workdir, {**tracked, contract.SCORING_MODEL_ENV: str(model)})
    after_stopped, tables_after_stop = _target(stack), _tables(stack)
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    untracked = score("score-7", SOURCE, env={contract.TRACKING_URI_ENV: nowhere, contract.REQUIRE_TRACKING_ENV: "false"})
    after_untracked = _target(stack)
    required = score("score-8", SOURCE, env={contract.TRACKING_URI_ENV: nowhere})
    return {**beside.result(timeout=600),
            "model": model / contract.MODEL_FILE, "source": source, "first": first, "again": again,
            "failed": failed, "after_first": target_after_first, "after_second": target_after_second,
            "after_failed": after_failed, "bad_row": bad_row, "after_bad_row": after_bad_row, "killed": killed,
            "after_killed": after_killed, "tables_after_killed": tables_after_killed, "rerun": rerun,
            "after_rerun": after_rerun, "tables": _tables(stack),
            "version": version, "tracking": shared_tracking, "untracked": untracked, "required": required,
            "after_untracked": after_untracked, "after_required": _target(stack),
            "nowhere": nowhere, "stopped": stopped, "after_stopped": after_stopped,
            "tables_after_stop": tables_after_stop}


def _register(server: MlflowServer, model_file: Path) -> Registration:
    """The trained model as ``churn`` version N of the server's registry, from a logged model (as ``register`` makes it)."""
    from training.tracking import pyfunc
    from training.tracking.mlflow_client import configure_client

    client = configure_client(server.uri)
    experiment = client.create_experiment("scoring-models")
    run = client.create_run(experiment)
    booster, plan = load(model_file)
    pyfunc.log_model(client, run.info.run_id, experiment, "model", booster, plan, None, {})
    client.set_terminated(run.info.run_id)
    return register(server.uri, "churn", run_id=run.info.run_id)


def _kill_a_host_mid_write(stack: LocalStack, workdir: Path, env: dict[str, str]) -> dict[str, Any]:
    """Host 3 is killed (SIGKILL) once the staging table holds rows and before it has written its part."""
    job = start_local_job({"source_table": BIG, "target_table": TARGET, "key_columns": '"id"', "batch_rows": "1000",
                           "collective_timeout": "20"}, 3, workdir, env, "score-5",
                          command=container_command(contract.SCORE_COMMAND))
    staged = _wait_for_staged_rows(stack, job)
    victim = job.processes[2][0]
    still_writing = victim.poll() is None and "predictions to the staging table" not in \
        (job.host_dirs[2] / "log.txt").read_text()
    victim.kill()
    return {"result": job.wait(timeout=180), "staged": staged, "still_writing": still_writing}


def _leave_a_staging_table(stack: LocalStack) -> None:
    """An empty staging table of the target, named as a job called ``score-leader-killed`` names its own."""
    from training.scoring.write import Tables

    conn = stack.connect()
    try:
        staging = Tables.for_job(TARGET, "score-leader-killed").staging_sql
        conn.cursor().execute(f"CREATE TABLE {staging} AS SELECT * FROM {TARGET} LIMIT 0")  # noqa: S608
    finally:
        conn.close()


def _stop_mid_write(stack: LocalStack, workdir: Path, env: dict[str, str]) -> dict[str, Any]:
    """SageMaker's stop (SIGTERM to every host) once the staging table holds rows; explain=2, so each host has its
    child process (whose ids are noted first)."""
    job = start_local_job({"source_table": BIG, "target_table": TARGET, "key_columns": '"id"', "batch_rows": "1000",
                           "collective_timeout": "60", "explain": "2"}, 3, workdir, env, "score-stopped",
                          command=container_command(contract.SCORE_COMMAND))
    staged = _wait_for_staged_rows(stack, job)
    children = [child for process, _ in job.processes for child in _children(process.pid)]
    job.signal()
    result = job.wait(timeout=180)
    deadline = time.monotonic() + 10
    while (alive := [pid for pid in children if _alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return {"result": result, "staged": staged, "children": children, "alive": alive}


def _children(pid: int) -> list[int]:
    tasks = Path(f"/proc/{pid}/task")
    return [int(c) for task in tasks.iterdir() for c in (task / "children").read_text().split()] if tasks.exists() \
        else []


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] != "Z"
    except OSError:
        return False


def _wait_for_staged_rows(stack: LocalStack, job: Any) -> int:
    """Once the job's staging table holds rows (or a host ended first): how many."""
    conn, staged = stack.connect(), 0
    try:
        deadline = time.monotonic() + 120
        while staged == 0 and time.monotonic() < deadline and all(p.poll() is None for p, _ in job.processes):
            cursor = conn.cursor()
            try:
                cursor.execute("SHOW TABLES LIKE '%__SCORING_%' IN SCHEMA DEMO.PUBLIC")
                names = [row[1] for row in cursor.fetchall() if row[1].startswith(STAGING)]
                if names:
                    cursor.execute(f'SELECT COUNT(*) FROM DEMO.PUBLIC."{names[0]}"')
                    staged = cursor.fetchone()[0]
            finally:
                cursor.close()
            time.sleep(0.02)
    finally:
        conn.close()
    return staged


def _target(stack: LocalStack, table: str = TARGET) -> pa.Table:
    conn = stack.connect()
    try:
        cursor = conn.cursor()
        cursor.execute(f'SELECT * FROM {table} ORDER BY "id"')
        return cursor.fetch_arrow_all()
    finally:
        conn.close()


def _tables(stack: LocalStack) -> list[str]:
    conn = stack.connect()
    try:
        cursor = conn.cursor()
        cursor.execute("SHOW TABLES IN SCHEMA DEMO.PUBLIC")
        return [row[1] for row in cursor.fetchall()]
    finally:
        conn.close()


def test_every_key_is_scored_once_exactly_as_predict_rows_scores_it(scored: dict[str, Any]) -> None:
    first = scored["first"]
    assert first.exit_code == 0, first.failure
    target = scored["after_first"]
    source = scored["source"]
    assert target.num_rows == ROWS and sorted(target.column("id").to_pylist()) == source.column("id").to_pylist()
    booster, plan = load(scored["model"])
    columns = {name: source.column(name) for name in plan.feature_names}
    expected = predict_rows(booster, plan, columns)
    order = np.argsort(np.asarray(source.column("id")))
    np.testing.assert_array_equal(target.column("PROBABILITY").to_numpy(), expected["probability"].to_numpy()[order])
    through_a_matrix = booster.predict(scoring_matrix(plan, plan.feature_matrix(columns)))  # not predict_rows' path
    np.testing.assert_array_equal(target.column("PROBABILITY").to_numpy(), through_a_matrix[order])
    assert target.column("PREDICTION").to_pylist() == list(expected["prediction"].to_numpy()[order])
    assert set(target.column("PREDICTION").to_pylist()) <= {"no", "yes"}  # the class as the table has it
    assert set(target.column("MODEL_NAME").to_pylist()) == {"churn"}
    assert set(target.column("RUN_ID").to_pylist()) == {scored["version"].run_id}
    assert target.column("SCORED_AT").null_count == 0
    assert target.column_names == ["id", "PREDICTION", "PROBABILITY", "MODEL_NAME", "MODEL_VERSION", "RUN_ID",
                                   "SCORED_AT"]


def test_the_hosts_share_the_one_query_and_each_writes_its_part(scored: dict[str, Any]) -> None:
    logs = [log.read_text() for log in scored["first"].logs]
    assert logs[0].count("one query for 3 host(s)") == 1
    assert all("wrote" in log and "predictions to the staging table" in log for log in logs)
    assert 'target "DEMO"."PUBLIC"."Churn Scores" created: 3,000 rows (rows per host: 1,000, 1,000, 1,000)' in logs[0]


def test_a_rerun_replaces_the_target_and_never_appends(scored: dict[str, Any]) -> None:
    """The rerun's model is a training job's model.tar.gz, as a SageMaker scoring job's model channel gets it."""
    assert scored["again"].exit_code == 0, scored["again"].failure
    assert "replaced: 3,000 rows" in scored["again"].logs[0].read_text()
    again = scored["after_second"]
    assert again.num_rows == ROWS and len(set(again.column("id").to_pylist())) == ROWS
    assert not [t for t in scored["tables"] if "__SCORING_" in t]  # no staging table left behind
    assert again.column("SCORED_AT")[0] != scored["after_first"].column("SCORED_AT")[0]  # new rows, not the old ones
    assert len(set(again.column("SCORED_AT").to_pylist())) == 1  # one scoring time for the job, every host


def test_a_source_without_a_model_column_fails_in_one_line_and_leaves_the_target(scored: dict[str, Any]) -> None:
    failed = scored["failed"]
    assert failed.exit_code == 1
    assert failed.failure == ("source table \"DEMO\".\"PUBLIC\".\"SCORE_NO_REGION\" has no column 'region', which the "
                              "model was trained on: score a table (or a view) with every feature column of the model")
    assert all("predictions to the staging table" not in log.read_text() for log in failed.logs)  # nothing downloaded
    assert scored["after_failed"].equals(scored["after_second"])


def test_the_score_command_scores_a_data_file_locally_and_exports_the_target(
        scored: dict[str, Any], tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`python -m launch score --local --data FILE`: the user's path, its own embedded Snowflake, the rows exported,
    the run in the local MLflow store, as `train --local` logs."""
    from mlflow import MlflowClient

    from launch import cli

    monkeypatch.delenv(contract.TRACKING_URI_ENV, raising=False)
    monkeypatch.delenv(contract.EXPERIMENT_ENV, raising=False)
    workdir = tmp_path_factory.mktemp("score-cli")
    data, out = workdir / "customers.parquet", workdir / "scores.csv"
    pq.write_table(scored["source"], data)
    code = cli.main(["score", "--local", "--model", str(scored["model"].parent), "--data", str(data),
                     "--source", "CUSTOMERS", "--target", "CUSTOMER_SCORES", "--keys", '"id"', "--hosts", "2",
                     "--workdir", str(workdir / "work"), "--output", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed[-3000:]
    assert f"{ROWS:,} rows in CUSTOMER_SCORES" in printed
    import pandas as pd

    rows = pd.read_csv(out).sort_values("id")
    booster, plan = load(scored["model"])
    expected = predict_rows(booster, plan, {name: scored["source"].column(name) for name in plan.feature_names})
    order = np.argsort(np.asarray(scored["source"].column("id")))
    np.testing.assert_allclose(rows["PROBABILITY"].to_numpy(), expected["probability"].to_numpy()[order], rtol=1e-6)
    assert rows["MODEL_NAME"].isna().all()  # a model given by its path names no registered model
    store = f"sqlite:///{workdir / 'work' / 'mlflow' / 'mlflow.db'}"
    assert f"MLflow: .venv/bin/mlflow ui --backend-store-uri {store}" in printed
    client = MlflowClient(store)
    [run] = client.search_runs([client.get_experiment_by_name("snowflake-xgboost-demo").experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["job_kind"] == "scoring"
    metrics = run.data.metrics
    assert metrics["rows_total"] == ROWS and metrics["rows_host_0"] + metrics["rows_host_1"] == ROWS
    assert "scoring.model_name" not in run.data.tags


def test_a_host_that_fails_while_scoring_leaves_the_target_and_no_staging_table(scored: dict[str, Any]) -> None:
    """One row beyond float32 in the last result batch: its host fails after the others may have appended; every
    host fails with its line, the leader drops the staging table, and the target keeps the previous rows."""
    bad = scored["bad_row"]
    assert bad.exit_code == 1
    assert bad.failure is not None and bad.failure.startswith("a source row cannot be scored: column 'noise' (REAL) "
                                                               "has a value beyond float32's range")
    assert scored["after_bad_row"].equals(scored["after_second"])
    assert not [t for t in scored["tables"] if "__SCORING_" in t]


def test_a_host_killed_mid_write_leaves_the_target_and_the_rerun_succeeds(scored: dict[str, Any]) -> None:
    killed = scored["killed"]
    assert killed["staged"] > 0 and killed["still_writing"]  # killed while the staging table filled, before its part
    result = killed["result"]
    assert result.exit_code != 0 and result.exit_codes[2] == -9
    assert "lost contact with the other hosts" in (result.failure or ""), result.failure
    assert scored["after_killed"].equals(scored["after_bad_row"])  # the previous target, row for row
    # the leader, whose stop signal only sets a flag, failed with the others and dropped its staging table
    assert not [t for t in scored["tables_after_killed"] if t.startswith(STAGING)]
    rerun = scored["rerun"]
    assert rerun.exit_code == 0, rerun.failure
    # a leader killed outright leaves its staging table: the next job on the target drops it
    assert "dropped 1 staging table(s) an earlier job on" in rerun.logs[0].read_text()
    assert scored["after_rerun"].num_rows == BIG_ROWS and len(set(scored["after_rerun"].column("id").to_pylist())) \
        == BIG_ROWS
    assert not [t for t in scored["tables"] if "__SCORING_" in t]


def test_the_score_command_scores_with_a_registered_model_of_the_local_mlflow(
        scored: dict[str, Any], tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]) -> None:
    """`score --local --model-name NAME`: the version @champion is downloaded from the local MLflow; its name,
    version and run fill the target's lineage columns."""
    import pandas as pd
    from mlflow import MlflowClient

    from launch import cli
    from launch.registry import register
    from training.tracking import pyfunc

    workdir = tmp_path_factory.mktemp("score-registry")
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("scoring", artifact_location=(workdir / "artifacts").as_uri())
    run = client.create_run(experiment)
    booster, plan = load(scored["model"])
    pyfunc.log_model(client, run.info.run_id, experiment, "model", booster, plan, None, {})
    client.set_terminated(run.info.run_id)
    register(uri, "churn", run_id=run.info.run_id)
    data, out = workdir / "customers.parquet", workdir / "scores.parquet"
    pq.write_table(scored["source"].slice(0, 500), data)
    code = cli.main(["score", "--local", "--model-name", "churn", "--tracking-uri", uri, "--data", str(data),
                     "--source", "CUSTOMERS", "--target", "CUSTOMER_SCORES", "--keys", '"id"', "--hosts", "1",
                     "--workdir", str(workdir / "work"), "--output", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed[-3000:]
    rows = pq.read_table(out).to_pandas()
    assert len(rows) == 500 and set(rows["MODEL_NAME"]) == {"churn"} and set(rows["MODEL_VERSION"]) == {"1"}
    assert set(rows["RUN_ID"]) == {run.info.run_id}
    expected = predict_rows(booster, plan, {name: scored["source"].slice(0, 500).column(name)
                                            for name in plan.feature_names})
    by_id = pd.Series(expected["probability"].to_numpy(), index=scored["source"].slice(0, 500).column("id").to_pylist())
    np.testing.assert_array_equal(rows["PROBABILITY"].to_numpy(), by_id.loc[rows["id"]].to_numpy())


def test_each_row_is_written_with_its_largest_contributions_as_explain_rows_gives_them(scored: dict[str, Any]) -> None:
    """explain=3 on 3 hosts: SHAP_<i>_FEATURE / SHAP_<i>_VALUE columns, the same as the endpoint's and the MLflow
    model's (one function), made in each host's child process: the hosts' collective calls stay the same."""
    from training.model.booster import explain_rows

    explained = scored["explained"]
    assert explained.exit_code == 0 and explained.ledger_mismatch is None, explained.failure
    target, source = scored["after_explained"], scored["source"]
    shap = [f"SHAP_{i}_{part}" for i in (1, 2, 3) for part in ("FEATURE", "VALUE")]
    assert target.column_names == ["id", "PREDICTION", "PROBABILITY", *shap, "MODEL_NAME", "MODEL_VERSION", "RUN_ID",
                                   "SCORED_AT"]
    booster, plan = load(scored["model"])
    columns = {name: source.column(name) for name in plan.feature_names}
    expected = explain_rows(booster, plan, columns, 3)
    order = np.argsort(np.asarray(source.column("id")))
    for i in (1, 2, 3):
        assert target.column(f"SHAP_{i}_FEATURE").to_pylist() == list(expected[f"shap_{i}_feature"].to_numpy()[order])
        np.testing.assert_array_equal(target.column(f"SHAP_{i}_VALUE").to_numpy(),
                                      expected[f"shap_{i}_value"].to_numpy()[order])
    assert set(target.column("SHAP_1_FEATURE").to_pylist()) <= set(plan.feature_names)  # the table's own names
    np.testing.assert_array_equal(target.column("PROBABILITY").to_numpy(),
                                  predict_rows(booster, plan, columns)["probability"].to_numpy()[order])


def test_a_linear_model_is_batch_scored_with_xgboosts_own_numbers(scored: dict[str, Any]) -> None:
    """booster=gblinear, which XGBoost predicts only through a matrix: predicted in each host's child process,
    outside the collective, so the hosts' calls stay the same."""
    linear = scored["linear"]
    assert linear.exit_code == 0 and linear.ledger_mismatch is None, linear.failure
    target, source = scored["after_linear"], scored["source"]
    booster, plan = load(scored["linear_model"])
    columns = {name: source.column(name) for name in plan.feature_names}
    order = np.argsort(np.asarray(source.column("id")))
    np.testing.assert_array_equal(target.column("PREDICTION").to_numpy(),
                                  booster.predict(scoring_matrix(plan, plan.feature_matrix(columns)))[order])


# --- the job's MLflow run ------------------------------------------------------------------------------


def _run_of(scored: dict[str, Any], job_name: str) -> Any:
    """The one run the job logged (its name is the job's)."""
    from mlflow import MlflowClient

    client = MlflowClient(scored["tracking"].uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.`sagemaker.job_name` = '{job_name}'")
    assert len(runs) == 1, [r.info.run_id for r in runs]
    return client.get_run(runs[0].info.run_id)  # search_runs leaves a run's model inputs out


def test_a_scoring_job_logs_one_run_with_its_input_output_rows_and_durations(scored: dict[str, Any]) -> None:
    """Only the leader talks to MLflow: one run for the 3 hosts, holding what was read (the source and its query
    id), what was written (the target, its rows per host) and how long each phase took."""
    import json

    first = scored["first"]
    assert first.exit_code == 0 and first.ledger_mismatch is None  # the hosts' collective calls were the same
    run = _run_of(scored, "score-1")
    assert run.info.status == "FINISHED" and run.info.run_name == "score-1"
    tags, metrics, params = run.data.tags, run.data.metrics, run.data.params
    assert tags["job_kind"] == "scoring" and tags["sagemaker.instance_count"] == "3"
    assert tags["scoring.source_table"] == '"DEMO"."PUBLIC"."SCORE_SOURCE"'
    assert (tags["scoring.target_table"], tags["scoring.outcome"]) == ('"DEMO"."PUBLIC"."Churn Scores"', "created")
    assert {k: metrics[k] for k in ("rows_host_0", "rows_host_1", "rows_host_2", "rows_total")} == \
        {"rows_host_0": 1000.0, "rows_host_1": 1000.0, "rows_host_2": 1000.0, "rows_total": 3000.0}
    phases = [metrics[k] for k in ("query_seconds", "score_seconds", "publish_seconds")]
    assert all(seconds > 0 for seconds in phases) and metrics["total_seconds"] >= sum(phases)
    assert params["source_sql"] == '"DEMO"."PUBLIC"."SCORE_SOURCE"' and params["keys"] == "id"
    # the input: the source table and the leader's one query, whose id its log names
    query_id = re.search(r"one query for 3 host\(s\): .* \(query (\S+)\)", first.logs[0].read_text()).group(1)
    assert tags["scoring.query_id"] == query_id
    (dataset_input,) = run.inputs.dataset_inputs
    dataset = dataset_input.dataset
    assert (dataset.name, dataset.source_type) == ("DEMO.PUBLIC.SCORE_SOURCE", "snowflake")
    assert {t.key: t.value for t in dataset_input.tags}["mlflow.data.context"] == "scoring"
    source = json.loads(dataset.source)
    assert source["query_ids"] == [query_id] and source["rows"] == ROWS and source["read_mode"] == "scan"
    assert source["query_template"].startswith('SELECT "id", "Price", "Units Sold"') and \
        source["query_template"].endswith('FROM "DEMO"."PUBLIC"."SCORE_SOURCE"')
    assert [c["name"] for c in json.loads(dataset.schema)["mlflow_colspec"]][:2] == ["id", "Price"]
    assert "Batch scoring of Snowflake table" in tags["mlflow.note.content"]
    assert SECRET_PASSWORD not in repr(run.data) + dataset.source


def test_the_run_links_the_registered_version_it_scored_with(scored: dict[str, Any]) -> None:
    """Tags name the version and its training run; MLflow 3's model input is the version's logged model."""
    from mlflow import MlflowClient

    version = scored["version"]
    uri = scored["tracking"].uri
    registered = MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version("churn", version.version)
    run = _run_of(scored, "score-1")
    tags = run.data.tags
    assert (tags["scoring.model_name"], tags["scoring.model_version"], tags["scoring.training_run_id"]) == \
        ("churn", version.version, registered.run_id)
    model_id = tags["scoring.model_id"]
    assert registered.source == f"models:/{model_id}"  # the version was registered from this logged model
    assert MlflowClient(uri).get_logged_model(model_id).source_run_id == registered.run_id
    assert [m.model_id for m in run.inputs.model_inputs] == [model_id]


def test_a_failed_scoring_job_s_run_is_failed_with_its_one_line_reason(scored: dict[str, Any]) -> None:
    """Before the query (a missing column) and after it (a row that cannot be scored: the run keeps what was read)."""
    failed = _run_of(scored, "score-3")
    assert failed.info.status == "FAILED"
    assert failed.data.tags["failure_reason"] == scored["failed"].failure
    bad_row = _run_of(scored, "score-4")
    assert bad_row.info.status == "FAILED"
    assert bad_row.data.tags["failure_reason"] == scored["bad_row"].failure
    assert bad_row.data.tags["failure_reason"].startswith("a source row cannot be scored")
    assert [d.dataset.name for d in bad_row.inputs.dataset_inputs] == ["DEMO.PUBLIC.SCORE_BAD_ROW"]
    assert "rows_total" not in bad_row.data.metrics


def test_an_unreachable_tracking_server_fails_the_job_before_any_row_unless_tracking_is_optional(
        scored: dict[str, Any]) -> None:
    """As a training job: MLFLOW_REQUIRED (default true) fails the job in one line before any row is read;
    MLFLOW_REQUIRED=false scores without a run, every host in step."""
    required = scored["required"]
    assert required.exit_code == 1
    assert required.failure is not None and required.failure.startswith(
        f"MLflow tracking at {scored['nowhere']} cannot be reached (connection refused)")
    assert scored["after_required"].equals(scored["after_untracked"])
    assert all("predictions to the staging table" not in log.read_text() for log in required.logs)
    untracked = scored["untracked"]
    assert untracked.exit_code == 0 and untracked.ledger_mismatch is None, untracked.failure
    assert untracked.logs[0].read_text().count("cannot be reached") == 1
    assert scored["after_untracked"].num_rows == ROWS


def test_a_stopped_job_stops_every_host_together_and_leaves_the_target(scored: dict[str, Any]) -> None:
    """SageMaker's stop (SIGTERM to every host) while the hosts write: they agree to stop before their next batch,
    each exits 1 with one line, the leader drops the staging table, the run is FAILED with the reason, and no host's
    child process (explain=2) outlives it."""
    stopped = scored["stopped"]
    result = stopped["result"]
    assert stopped["staged"] > 0 and result.exit_codes == [1, 1, 1], result.exit_codes
    assert result.failure is not None and re.match(r"stopped by SIGTERM \(received by host \S+\) while the hosts "
                                                   r"scored: the target is unchanged; run the job again", result.failure)
    assert result.ledger_mismatch is None
    assert scored["after_stopped"].equals(scored["after_rerun"])  # the previous target, row for row
    assert not [t for t in scored["tables_after_stop"] if t.startswith(STAGING)]
    run = _run_of(scored, "score-stopped")
    assert run.info.status == "FAILED" and run.data.tags["failure_reason"] == result.failure
    assert len(stopped["children"]) >= 3 and stopped["alive"] == [], stopped  # a child each (and a resource tracker)
