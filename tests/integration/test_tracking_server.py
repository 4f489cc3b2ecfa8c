"""MlflowRecorder end to end against a real ``mlflow server`` (SQLite backend, served artifacts) over HTTP.

The session's shared server (tests/integration/conftest.py), in this module's own experiments and
model names. A tiny XGBoost model is trained in-process on random data through the recorder's
callback; tuning trials run as three parallel processes; the ARN test goes through
sagemaker-mlflow's own endpoint override to a recording endpoint that forwards to the same server.
"""

from __future__ import annotations

import http.client
import http.server
import logging
import multiprocessing
import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from tests.helpers import numeric_plan, recorder_from_environment
from tests.integration.mlflow_server import MlflowServer
from training import contract
from training.tracking import mlflow_client
from training.tracking.lineage import SnowflakeLineage
from training.tracking.mlflow_recorder import MlflowRecorder

pytestmark = pytest.mark.slow

SECRET = "zq-SECRET-7f3a91c4-do-not-log"
FEATURES = ["f0", "f1", "f2", "f3"]
ROUNDS = 6
RC = {"current_host": "algo-1", "hosts": ["algo-1", "algo-2"], "current_instance_type": "ml.m5.xlarge"}


TUNING_EXPERIMENT = "parallel-trials"
"""This module's tuning experiment (test_tracking_jobs has its own "tuning" on the same server)."""


@pytest.fixture(scope="module")
def server(shared_tracking: MlflowServer) -> MlflowServer:
    return shared_tracking


@pytest.fixture(scope="module", autouse=True)
def _isolated_mlflow() -> Iterator[None]:
    """Bounded HTTP retries set explicitly, and the process-wide tracking URI restored afterwards."""
    import mlflow.tracking._tracking_service.utils as service_utils

    with pytest.MonkeyPatch.context() as mp:
        for name, value in mlflow_client.HTTP_DEFAULTS.items():
            mp.setenv(name, value)
        mp.setattr(service_utils, "_tracking_uri", service_utils._tracking_uri)
        yield


def lineage(rows: int) -> SnowflakeLineage:
    return SnowflakeLineage(
        account="xy12345.us-east-1", database="ANALYTICS", schema="PUBLIC", table="HOUSING",
        query_template='SELECT "F0", ... FROM "ANALYTICS"."PUBLIC"."HOUSING" WHERE MOD(ABS(HASH(...)), :n) = :rank',
        query_ids=["01b2-0001", "01b2-0002"], read_at="2025-01-02T03:04:05+00:00", rows=rows,
        columns=[*FEATURES, "target"], schema_digest=numeric_plan(FEATURES).schema_digest(),
        column_types=["double"] * (len(FEATURES) + 1))


def train_tracked(env: dict[str, str], params: dict[str, Any], hyperparameters_raw: dict[str, Any] | None = None,
                  seed: int = 0) -> tuple[MlflowRecorder, Any, np.ndarray]:
    """What the training loop does on rank 0, on 300 random rows: returns the recorder, booster and data."""
    import xgboost as xgb

    recorder = recorder_from_environment(env, RC, hyperparameters_raw)
    assert isinstance(recorder, MlflowRecorder)
    recorder.check_reachable()
    recorder.start(params)
    rng = np.random.default_rng(seed)
    x = rng.random((300, len(FEATURES)), dtype=np.float32)
    y = x @ np.array([1.0, -2.0, 0.5, 3.0], dtype=np.float32) + rng.normal(0, 0.1, 300).astype(np.float32)
    train = xgb.DMatrix(x[:240], y[:240], feature_names=FEATURES)
    valid = xgb.DMatrix(x[240:], y[240:], feature_names=FEATURES)
    booster = xgb.train({"eta": params["eta"], "max_depth": 3, "seed": seed}, train, ROUNDS,
                        evals=[(train, "train"), (valid, "validation")], callbacks=[recorder.callback()],
                        verbose_eval=False)
    recorder.log_dataset(lineage(300))
    recorder.log_rows([160, 140])
    recorder.log_durations({"fetch_seconds": 1.5, "build_seconds": 0.25, "train_seconds": 2.0})
    final = {"train-rmse": _rmse(booster, train, y[:240]), "validation-rmse": _rmse(booster, valid, y[240:])}
    recorder.finish(booster, final, numeric_plan(FEATURES), pa.table({f: x[:5, i] for i, f in enumerate(FEATURES)}))
    return recorder, booster, x


def _rmse(booster: Any, data: Any, y: np.ndarray) -> float:
    return float(np.sqrt(np.mean((booster.predict(data) - y) ** 2)))


@dataclass
class FinishedRun:
    recorder: MlflowRecorder
    booster: Any
    x: np.ndarray
    records: list[logging.LogRecord]


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def finished_run(server: MlflowServer) -> FinishedRun:
    """One job's run, trained with a secret-like value in the process environment."""
    handler = _Collect()
    logging.getLogger().addHandler(handler)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("SNOWFLAKE_PASSWORD", SECRET)
            mp.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
            env = {**os.environ, contract.TRACKING_URI_ENV: server.uri, contract.EXPERIMENT_ENV: "one-run",
                   contract.JOB_NAME_ENV: f"job-{uuid.uuid4().hex[:8]}", contract.IMAGE_ENV: "acct.dkr.ecr/xgb:1"}
            params = {"eta": 0.3, "num_round": ROUNDS, "max_depth": 3, "table": "HOUSING", "target": "target"}
            recorder, booster, x = train_tracked(env, params)
    finally:
        logging.getLogger().removeHandler(handler)
    return FinishedRun(recorder, booster, x, handler.records)


def client_for(server: MlflowServer) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=server.uri, registry_uri=server.uri)


# --- one run ------------------------------------------------------------------------------------------


def test_one_run_records_every_round_params_tags_and_summaries(finished_run: FinishedRun,
                                                               server: MlflowServer) -> None:
    client = client_for(server)
    run = client.get_run(finished_run.recorder.run_id)
    assert run.info.status == "FINISHED"
    for name in ("train-rmse", "validation-rmse"):
        history = client.get_metric_history(run.info.run_id, name)
        steps = sorted(m.step for m in history)
        assert steps[:ROUNDS] == list(range(ROUNDS))  # every round, step = round (plus the final value)
    assert run.data.params == {"eta": "0.3", "num_round": str(ROUNDS), "max_depth": "3", "table": "HOUSING",
                               "target": "target"}
    metrics = run.data.metrics
    assert {k: metrics[k] for k in ("rows_host_0", "rows_host_1", "rows_total")} == \
        {"rows_host_0": 160.0, "rows_host_1": 140.0, "rows_total": 300.0}
    assert metrics["fetch_seconds"] == 1.5 and metrics["train_seconds"] == 2.0
    tags = run.data.tags
    assert tags["sagemaker.job_name"] == tags["mlflow.runName"] == finished_run.recorder.job.job_name
    assert (tags["sagemaker.instance_type"], tags["sagemaker.instance_count"]) == ("ml.m5.xlarge", "2")
    assert tags["sagemaker.image"] == "acct.dkr.ecr/xgb:1" and tags["version.xgboost"] == "3.0.5"
    assert tags["version.training"] and tags["version.snowflake-connector-python"]


def test_the_logged_model_predicts_like_the_booster(finished_run: FinishedRun) -> None:
    import mlflow.pyfunc
    import xgboost as xgb

    model = mlflow.pyfunc.load_model(finished_run.recorder.model_uri)
    data = xgb.DMatrix(finished_run.x, feature_names=FEATURES)
    rows = pd.DataFrame(finished_run.x.astype(np.float64), columns=FEATURES)
    np.testing.assert_array_equal(model.predict(rows)["prediction"], finished_run.booster.predict(data))
    info = mlflow.models.get_model_info(finished_run.recorder.model_uri)
    assert [c["name"] for c in info.signature.inputs.to_dict()] == FEATURES
    assert info.saved_input_example_info is not None


def test_the_dataset_input_records_the_snowflake_read(finished_run: FinishedRun, server: MlflowServer) -> None:
    import json

    run = client_for(server).get_run(finished_run.recorder.run_id)
    [dataset_input] = run.inputs.dataset_inputs
    dataset = dataset_input.dataset
    assert (dataset.name, dataset.source_type) == ("ANALYTICS.PUBLIC.HOUSING", "snowflake")
    source = json.loads(dataset.source)
    assert source == {"account": "xy12345.us-east-1", "database": "ANALYTICS", "schema": "PUBLIC",
                      "table": "HOUSING", "query_template": lineage(300).query_template,
                      "query_ids": ["01b2-0001", "01b2-0002"], "read_at": "2025-01-02T03:04:05+00:00",
                      "rows": 300, "schema_digest": lineage(300).schema_digest, "read_mode": "hash",
                      "snapshot_at": ""}
    assert json.loads(dataset.profile) == {"num_rows": 300}
    assert {t.key: t.value for t in dataset_input.tags}["mlflow.data.context"] == "training"


def test_no_spurious_header_warning_on_http(finished_run: FinishedRun) -> None:
    spurious = [r for r in finished_run.records if mlflow_client._SPURIOUS_HEADER_WARNING in r.getMessage()]
    assert spurious == []
    assert not [r for r in finished_run.records if r.levelno >= logging.WARNING and r.name.startswith("training")]


def test_a_secret_in_the_environment_reaches_no_param_tag_metric_or_artifact(
        finished_run: FinishedRun, server: MlflowServer) -> None:
    client = client_for(server)
    run = client.get_run(finished_run.recorder.run_id)
    assert SECRET not in repr(run.data.params) and SECRET not in repr(run.data.tags)
    assert SECRET not in repr(list(run.data.metrics)) and SECRET not in repr(run.inputs)
    stored = [p for p in (server.root / "artifacts").rglob("*") if p.is_file()]
    assert list((server.root / "artifacts" / run.info.experiment_id).rglob("MLmodel"))  # this run's model
    assert not [p for p in stored if SECRET.encode() in p.read_bytes()]
    assert not [r for r in finished_run.records if SECRET in r.getMessage()]


def test_a_restarted_job_resumes_its_unfinished_run(server: MlflowServer) -> None:
    env = {contract.TRACKING_URI_ENV: server.uri, contract.EXPERIMENT_ENV: "restarts",
           contract.JOB_NAME_ENV: f"spot-{uuid.uuid4().hex[:8]}"}
    first = recorder_from_environment(env, RC)
    assert isinstance(first, MlflowRecorder)
    first.check_reachable()
    first.start({"eta": 0.3})
    again = recorder_from_environment(env, RC)
    assert isinstance(again, MlflowRecorder)
    again.start({"eta": 0.3})
    assert again.run_id == first.run_id
    again.fail("Interrupted: spot capacity reclaimed")
    run = client_for(server).get_run(first.run_id)
    assert run.info.status == "FAILED" and run.data.tags["failure_reason"] == "Interrupted: spot capacity reclaimed"


# --- tuning: three trials in parallel --------------------------------------------------------------------


def _trial(uri: str, experiment: str, tuning_job: str, number: int, barrier: Any) -> None:
    """One trial process: what the container does on rank 0, its ``start`` released with the others'."""
    import xgboost  # noqa: F401  (imported before the barrier so that the three starts really race)

    name = f"{tuning_job}-{number:03d}-{uuid.uuid4().hex[:8]}"
    env = {contract.TRACKING_URI_ENV: uri, contract.EXPERIMENT_ENV: experiment, contract.JOB_NAME_ENV: name}
    for key, value in mlflow_client.HTTP_DEFAULTS.items():
        os.environ[key] = value
    recorder = recorder_from_environment(env, RC, {"_tuning_objective_metric": "validation:rmse"})
    assert recorder.job.tuning_job_name == tuning_job
    assert isinstance(recorder, MlflowRecorder)
    recorder.check_reachable()
    barrier.wait(timeout=120)
    _train_trial(recorder, eta=(0.05, 0.3, 0.9)[number - 1], seed=number)


def _train_trial(recorder: MlflowRecorder, eta: float, seed: int) -> None:
    import xgboost as xgb

    recorder.start({"eta": eta, "num_round": ROUNDS})
    rng = np.random.default_rng(0)
    x = rng.random((200, len(FEATURES)), dtype=np.float32)
    y = x @ np.array([1.0, -2.0, 0.5, 3.0], dtype=np.float32)
    train = xgb.DMatrix(x[:150], y[:150], feature_names=FEATURES)
    valid = xgb.DMatrix(x[150:], y[150:], feature_names=FEATURES)
    booster = xgb.train({"eta": eta, "max_depth": 3, "seed": seed}, train, ROUNDS,
                        evals=[(train, "train"), (valid, "validation")], callbacks=[recorder.callback()],
                        verbose_eval=False)
    recorder.finish(booster, {"validation-rmse": _rmse(booster, valid, y[150:])}, numeric_plan(FEATURES),
                   pa.table({f: x[:3, i] for i, f in enumerate(FEATURES)}))


@dataclass
class Tuning:
    name: str
    experiment: str
    experiment_id: str


@pytest.fixture(scope="module")
def tuning(server: MlflowServer) -> Tuning:
    """Three trials of one tuning job, released together by a barrier, no parent created beforehand."""
    name, experiment = f"tune-{uuid.uuid4().hex[:6]}", TUNING_EXPERIMENT
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(3)
    trials = [ctx.Process(target=_trial, args=(server.uri, experiment, name, n, barrier)) for n in (1, 2, 3)]
    for trial in trials:
        trial.start()
    for trial in trials:
        trial.join(timeout=240)
    assert [t.exitcode for t in trials] == [0, 0, 0]
    found = client_for(server).get_experiment_by_name(experiment)
    return Tuning(name, experiment, found.experiment_id)


def test_parallel_trials_share_one_parent_that_names_the_best(tuning: Tuning, server: MlflowServer) -> None:
    client = client_for(server)
    parents = client.search_runs([tuning.experiment_id], f"tags.`sagemaker.tuning_parent` = '{tuning.name}'")
    assert len(parents) == 1
    parent = parents[0]
    assert parent.data.tags["mlflow.runName"] == tuning.name
    children = client.search_runs([tuning.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert len(children) == 3 and {c.info.status for c in children} == {"FINISHED"}
    assert {c.data.tags["sagemaker.tuning_job_name"] for c in children} == {tuning.name}
    best = min(children, key=lambda c: c.data.metrics["validation-rmse"])
    assert parent.data.tags["best_trial_run_id"] == best.info.run_id
    assert parent.data.tags["best_trial_job_name"] == best.data.tags["sagemaker.job_name"]
    assert parent.data.metrics["best-validation-rmse"] == best.data.metrics["validation-rmse"]


def test_metrics_named_with_an_argument_are_recorded_and_name_the_best_trial(server: MlflowServer) -> None:
    """XGBoost's ``ndcg@5`` and ``ndcg@3-``: MLflow refuses ``@`` in a metric name, so the run records them as
    ``ndcg_at_5``; the tuning parent's best is the highest (ndcg is maximized), as XGBoost's name says."""
    import xgboost as xgb

    tuning_job, rng = f"tune-at-{uuid.uuid4().hex[:6]}", np.random.default_rng(4)
    x = rng.random((400, len(FEATURES)), dtype=np.float32)
    relevance = np.clip(np.round(x[:, 0] * 3 + rng.normal(0, 0.7, 400)), 0, 3).astype(np.float32)
    qid = np.repeat(np.arange(40), 10)
    train = xgb.DMatrix(x[:300], relevance[:300], qid=qid[:300], feature_names=FEATURES)
    valid = xgb.DMatrix(x[300:], relevance[300:], qid=qid[300:], feature_names=FEATURES)
    recorders = []
    for number, eta in ((1, 0.02), (2, 0.9)):
        env = {contract.TRACKING_URI_ENV: server.uri, contract.EXPERIMENT_ENV: "metric-arguments",
               contract.JOB_NAME_ENV: f"{tuning_job}-{number:03d}-{uuid.uuid4().hex[:8]}"}
        recorder = recorder_from_environment(env, RC, {"_tuning_objective_metric": "validation:ndcg@5"})
        assert isinstance(recorder, MlflowRecorder)
        recorder.check_reachable()
        params = {"objective": "rank:ndcg", "eval_metric": ["ndcg@5", "ndcg@3-"], "eta": eta, "max_depth": 4,
                  "seed": number}
        recorder.start(params)
        booster = xgb.train(params, train, ROUNDS, evals=[(train, "train"), (valid, "validation")],
                            callbacks=[recorder.callback()], verbose_eval=False)
        text = booster.eval_set([(train, "train"), (valid, "validation")])
        final = {k: float(v) for k, v in (item.rsplit(":", 1) for item in text.split("\t")[1:])}
        recorder.finish(booster, final, numeric_plan(FEATURES), pa.table({f: x[:3, i] for i, f in enumerate(FEATURES)}))
        assert not recorder._guard.lost.is_set()
        recorders.append((recorder, final))
    client = client_for(server)
    runs = [client.get_run(r.run_id) for r, _ in recorders]
    for run, (_, final) in zip(runs, recorders, strict=True):
        assert run.info.status == "FINISHED"
        assert run.data.metrics["validation-ndcg_at_5"] == pytest.approx(final["validation-ndcg@5"])
        assert run.data.metrics["validation-ndcg_at_3-"] == pytest.approx(final["validation-ndcg@3-"])
        assert {m.step for m in client.get_metric_history(run.info.run_id, "train-ndcg_at_5")} == set(range(ROUNDS))
    values = [run.data.metrics["validation-ndcg_at_5"] for run in runs]
    assert values[0] != values[1]
    parent = client.get_run(runs[0].data.tags["mlflow.parentRunId"])
    assert parent.data.tags["objective_metric"] == "validation-ndcg_at_5"
    assert parent.data.metrics["best-validation-ndcg_at_5"] == max(values)


# --- registry -------------------------------------------------------------------------------------------


def test_register_a_run_and_point_champion_at_it(finished_run: FinishedRun, server: MlflowServer) -> None:
    import mlflow.pyfunc
    import xgboost as xgb

    from launch.registry import register

    done = register(server.uri, "housing-run", run_id=finished_run.recorder.run_id)
    assert done.alias == "champion" and done.version == "1"
    client = client_for(server)
    version = client.get_model_version_by_alias("housing-run", "champion")
    assert (version.version, version.run_id) == ("1", finished_run.recorder.run_id)
    model = mlflow.pyfunc.load_model("models:/housing-run@champion")
    data = xgb.DMatrix(finished_run.x, feature_names=FEATURES)
    rows = pd.DataFrame(finished_run.x.astype(np.float64), columns=FEATURES)
    np.testing.assert_array_equal(model.predict(rows)["prediction"], finished_run.booster.predict(data))


def test_register_the_best_trial_of_a_tuning_job_from_the_command_line(
        tuning: Tuning, server: MlflowServer, capsys: pytest.CaptureFixture[str]) -> None:
    from launch.cli import main

    argv = ["register", "--tracking-uri", server.uri, "--experiment", tuning.experiment, "--tuning-job", tuning.name,
            "--model-name", "housing-tuned", "--alias", "champion"]
    assert main(argv) == 0
    client = client_for(server)
    parent = client.search_runs([tuning.experiment_id], f"tags.`sagemaker.tuning_parent` = '{tuning.name}'")[0]
    version = client.get_model_version_by_alias("housing-tuned", "champion")
    assert version.run_id == parent.data.tags["best_trial_run_id"]
    assert "models:/housing-tuned@champion" in capsys.readouterr().out


def test_register_an_unknown_tuning_job_is_one_line(server: MlflowServer, capsys: pytest.CaptureFixture[str]) -> None:
    from launch.cli import main

    assert main(["register", "--tracking-uri", server.uri, "--experiment", TUNING_EXPERIMENT, "--tuning-job", "no-such-job",
                 "--model-name", "x"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no parent run for tuning job 'no-such-job'") and "\n" not in err


# --- SageMaker managed MLflow ARN -----------------------------------------------------------------------


class _RecordingEndpoint(http.server.ThreadingHTTPServer):
    """Stands in for the managed endpoint: records each request's headers, forwards it to the real server."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        super().__init__(("127.0.0.1", 0), _EndpointHandler)


class _EndpointHandler(http.server.BaseHTTPRequestHandler):
    server: _RecordingEndpoint

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.seen.append((self.command, self.path, dict(self.headers)))
        upstream = http.client.HTTPConnection("127.0.0.1", self.server.upstream_port, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        upstream.request(self.command, self.path, body=body, headers=headers)
        response = upstream.getresponse()
        payload = response.read()
        self.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        upstream.close()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def endpoint(server: MlflowServer) -> Iterator[_RecordingEndpoint]:
    rec = _RecordingEndpoint(server.port)
    thread = threading.Thread(target=rec.serve_forever, daemon=True)
    thread.start()
    yield rec
    rec.shutdown()
    rec.server_close()


@pytest.mark.parametrize(("resource", "service", "routing_header"), [
    ("mlflow-tracking-server/main", "sagemaker-mlflow", "x-mlflow-sm-tracking-server-arn"),
    ("mlflow-app/app-ABCDEF123456", "sagemaker", "x-sm-mlflow-app-arn"),
])
def test_an_arn_uri_sends_sigv4_signed_requests_with_the_routing_header(
        endpoint: _RecordingEndpoint, server: MlflowServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        resource: str, service: str, routing_header: str) -> None:
    arn = f"arn:aws:sagemaker:us-west-2:123456789012:{resource}"
    # sagemaker-mlflow's own override of the endpoint it derives from the ARN.
    monkeypatch.setenv("SAGEMAKER_MLFLOW_CUSTOM_ENDPOINT", f"http://127.0.0.1:{endpoint.server_address[1]}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDTESTTRACKING")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret-key")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    # A managed server keeps artifacts in S3; here the experiment's artifacts go to a local folder.
    experiment = f"arn-{uuid.uuid4().hex[:6]}"
    client_for(server).create_experiment(experiment, artifact_location=(tmp_path / "artifacts").as_uri())
    env = {contract.TRACKING_URI_ENV: arn, contract.EXPERIMENT_ENV: experiment,
           contract.JOB_NAME_ENV: f"arn-job-{uuid.uuid4().hex[:8]}"}
    recorder, _, _ = train_tracked(env, {"eta": 0.3})
    assert recorder.model_uri is not None
    run = client_for(server).get_run(recorder.run_id)
    assert run.info.status == "FINISHED" and len(client_for(server).get_metric_history(run.info.run_id,
                                                                                       "validation-rmse")) > ROUNDS
    api = [headers for _, path, headers in endpoint.seen if path.startswith("/api/")]
    assert len(api) > 5
    for headers in api:
        lowered = {k.lower(): v for k, v in headers.items()}
        assert lowered["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDTESTTRACKING/")
        assert f"/us-west-2/{service}/aws4_request" in lowered["authorization"]
        assert lowered[routing_header] == arn
