"""MLflow tracking of whole local jobs against a real ``mlflow server`` over HTTP.

One run per multi-host job (only the leader talks to MLflow), tuning trials run in parallel under
one parent, and a tracking server that dies mid-run never costs the model.
"""

import concurrent.futures
import json
import re

import mlflow
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from launch.local.hosts import start_local_job
from tests.helpers import SECRET_PASSWORD, synth_hps, wait_for_log
from tests.integration.mlflow_server import mlflow_server
from training import contract

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tracking(shared_tracking):
    return shared_tracking


def _client(server):
    return mlflow.MlflowClient(tracking_uri=server.uri)


def _runs(server, experiment):
    client = _client(server)
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id]) if exp else []


def test_two_host_job_logs_exactly_one_complete_run(run_job, tracking):
    env = {contract.TRACKING_URI_ENV: tracking.uri, contract.EXPERIMENT_ENV: "two-hosts"}
    # read_mode=hash pinned to one time: one query per host, all at the leader's snapshot=job_start time
    result = run_job(synth_hps(num_round=12, read_mode="hash", snapshot="job_start"), hosts=2, env=env)
    assert result.exit_code == 0, result.failure
    runs = _runs(tracking, "two-hosts")
    assert len(runs) == 1
    run, client = runs[0], _client(tracking)
    assert run.info.status == "FINISHED"
    assert run.data.params["num_round"] == "12" and run.data.params["table"] == "DEMO.PUBLIC.SYNTH50K"
    for name in ("train-rmse", "validation-rmse"):
        steps = sorted({m.step for m in client.get_metric_history(run.info.run_id, name)})
        assert steps == list(range(12))
    assert run.data.metrics["validation-rmse"] == pytest.approx(result.final_metrics["validation-rmse"], rel=1e-5)
    assert run.data.metrics["rows_total"] == 50_000
    assert run.data.metrics["rows_host_0"] + run.data.metrics["rows_host_1"] == 50_000
    assert run.data.tags["sagemaker.job_name"] == result.job_name
    assert run.data.tags["sagemaker.instance_count"] == "2"
    # the dataset input records the Snowflake source, with both hosts' query ids and their one snapshot time
    (dataset_input,) = run.inputs.dataset_inputs
    source = dataset_input.dataset.source
    for fragment in ('"account": "local"', '"table": "SYNTH50K"', '"database": "DEMO"', "MOD(ABS(HASH(",
                     "AT(TIMESTAMP => %(snapshot)s::TIMESTAMP_LTZ)"):
        assert fragment in source
    recorded = json.loads(source)
    assert recorded["read_mode"] == "hash" and len(recorded["query_ids"]) == 2
    host_times = {m for log in result.logs for m in re.findall(r"reading shard \d of 2 at snapshot (\S+)", log.read_text())}
    assert host_times == {recorded["snapshot_at"]}  # the time every host read at
    # the logged model predicts exactly like the model file
    mlflow.set_tracking_uri(tracking.uri)
    models = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id], output_format="list")
    assert len(models) == 1
    logged = mlflow.pyfunc.load_model(models[0].model_uri)
    booster = xgb.Booster(model_file=str(result.model_path))
    x = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)
    names = [f"F{i}" for i in range(8)]
    rows = pd.DataFrame(x.astype(np.float64), columns=names)
    np.testing.assert_array_equal(logged.predict(rows)["prediction"],
                                  booster.predict(xgb.DMatrix(x, feature_names=names)))
    # the secret never reaches MLflow
    assert SECRET_PASSWORD not in str(run.data.params) + str(run.data.tags) + str(run.data.metrics) + source


def test_parallel_tuning_trials_share_one_parent(run_job, tracking):
    env = {contract.TRACKING_URI_ENV: tracking.uri, contract.EXPERIMENT_ENV: "tuning",
           contract.TUNING_JOB_ENV: "tune-parallel-1"}
    etas = (0.1, 0.2, 0.3)
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda eta: run_job(synth_hps(num_round=5, eta=eta), hosts=1, env=env), etas))
    assert all(r.exit_code == 0 for r in results), [r.failure for r in results]
    runs = _runs(tracking, "tuning")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 3
    assert parents[0].info.run_name == "tune-parallel-1"
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    best = min(children, key=lambda r: r.data.metrics["validation-rmse"])
    assert parents[0].data.tags["best_trial_run_id"] == best.info.run_id


def test_lost_tracking_server_never_costs_the_model(run_job, tmp_path, job_env):
    with mlflow_server(tmp_path / "doomed") as server:
        env = {**job_env, contract.TRACKING_URI_ENV: server.uri, contract.EXPERIMENT_ENV: "doomed"}
        job = start_local_job(synth_hps(num_round=150, max_depth=6, eta=0.05), hosts=2, workdir=tmp_path, env=env)
        wait_for_log(job, "[5]\t")
        server.stop()
        result = job.wait(timeout=300)
    assert result.exit_code == 0, result.failure
    assert result.model_path is not None and result.rounds == 150
    log = result.logs[0].read_text()
    assert log.count("MLflow tracking lost") == 1
