"""The tracking server dies mid-training: training goes on, nothing raises, the loss is logged once.

Its own ``mlflow server`` (this test stops it), with MLflow's HTTP retry settings left at what
the recorder sets for a job (bounded), so the elapsed time is what a real job would lose.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from tests.helpers import numeric_plan, recorder_from_environment
from tests.integration.mlflow_server import MlflowServer, mlflow_server
from training import contract
from training.tracking import mlflow_client
from training.tracking.mlflow_recorder import MlflowRecorder

pytestmark = pytest.mark.slow

ROUNDS, STOP_AT = 40, 5


@pytest.fixture
def doomed_server(tmp_path: Path) -> Iterator[MlflowServer]:
    with mlflow_server(tmp_path / "mlflow") as running:
        yield running


@pytest.fixture(autouse=True)
def _isolated_mlflow(monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow.tracking._tracking_service.utils as service_utils

    for name, value in mlflow_client.HTTP_DEFAULTS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(service_utils, "_tracking_uri", service_utils._tracking_uri)


def _stop_server_after(server: MlflowServer, epoch_to_stop: int) -> Any:
    import xgboost as xgb

    class StopServer(xgb.callback.TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            if epoch == epoch_to_stop:
                time.sleep(mlflow_client.METRIC_FLUSH_S + 0.5)  # let the first rounds reach the server
                server.stop()
            return False

    return StopServer()


def test_server_lost_mid_run_costs_nothing_but_one_log_line(
        doomed_server: MlflowServer, caplog: pytest.LogCaptureFixture) -> None:
    import xgboost as xgb

    caplog.set_level(logging.INFO)
    env = {contract.TRACKING_URI_ENV: doomed_server.uri, contract.EXPERIMENT_ENV: "faults",
           contract.JOB_NAME_ENV: f"doomed-{uuid.uuid4().hex[:8]}"}
    recorder = recorder_from_environment(env)
    assert isinstance(recorder, MlflowRecorder)
    recorder.check_reachable()
    recorder.start({"eta": 0.3, "num_round": ROUNDS})
    rng = np.random.default_rng(1)
    x = rng.random((400, 3), dtype=np.float32)
    data = xgb.DMatrix(x, x.sum(axis=1), feature_names=["a", "b", "c"])

    began = time.monotonic()
    booster = xgb.train({"eta": 0.3}, data, ROUNDS, evals=[(data, "train"), (data, "validation")],
                        callbacks=[recorder.callback(), _stop_server_after(doomed_server, STOP_AT)],
                        verbose_eval=False)
    trained = time.monotonic() - began
    recorder.log_rows([400])
    recorder.finish(booster, {"validation-rmse": 0.1}, numeric_plan(["a", "b", "c"]),
                   pa.table({f: x[:3, i] for i, f in enumerate("abc")}))
    recorder.fail("never reaches the server either")
    elapsed = time.monotonic() - began

    assert booster.num_boosted_rounds() == ROUNDS  # the model is whole; the loop writes it
    assert trained < 30  # metric writes happen off the training thread: rounds never wait on retries
    assert elapsed < 90  # bounded: MLflow's own retries are capped, and ours stop after the first loss
    lost = [r for r in caplog.records if "MLflow tracking lost" in r.getMessage()]
    assert len(lost) == 1 and lost[0].levelno == logging.WARNING
    assert "the job continues" in lost[0].getMessage() and "connection refused" in lost[0].getMessage()
    assert not [r for r in caplog.records if r.name == "urllib3.connectionpool" and "Retrying" in r.getMessage()]

    # What reached the server before it stopped is in its store: the first rounds, and a run never finished.
    from mlflow import MlflowClient

    store = MlflowClient(tracking_uri=doomed_server.backend_uri)
    run = store.get_run(recorder.run_id)
    assert run.info.status == "RUNNING"
    steps = [m.step for m in store.get_metric_history(run.info.run_id, "validation-rmse")]
    assert steps and set(range(STOP_AT)) <= set(steps) and max(steps) < ROUNDS - 1
