"""Tracking configuration: what a job's environment turns into, and the start-up checks.

No MLflow server here; the unreachable-server tests use the real client against a closed port.
"""

from __future__ import annotations

import inspect
import logging
import socket
import time

import pytest

from training.errors import ConfigError
from training.tracking import mlflow_client
from training.tracking.mlflow_recorder import JobInfo, MlflowRecorder, TrackingSettings
from training.tracking.recorder import NoRecorder, RunRecorder

SAGEMAKER_RC = {"current_host": "algo-1", "hosts": ["algo-1", "algo-2", "algo-3"],
                "current_instance_type": "ml.m5.2xlarge"}


def free_port() -> int:
    """A port nothing listens on (a unit test must not import the local stack for it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(autouse=True)
def _isolated_mlflow(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the process-wide MLflow settings a recorder sets from leaking into other tests."""
    for name, value in mlflow_client.HTTP_DEFAULTS.items():
        monkeypatch.setenv(name, value)
    import mlflow.tracking._tracking_service.utils as service_utils

    monkeypatch.setattr(service_utils, "_tracking_uri", service_utils._tracking_uri)


def test_a_sagemaker_trial_is_recognised_by_its_name() -> None:
    job = JobInfo.of("xgb-tune-0101-1200-007-1a2b3c4d", "123.dkr.ecr/xgb:1", "", SAGEMAKER_RC,
                     {"_tuning_objective_metric": "validation:rmse", "eta": "0.1"})
    assert job == JobInfo(job_name="xgb-tune-0101-1200-007-1a2b3c4d", instance_type="ml.m5.2xlarge",
                          instance_count=3, image="123.dkr.ecr/xgb:1", tuning_job_name="xgb-tune-0101-1200",
                          objective_metric="validation-rmse")


def test_a_plain_job_is_not_a_trial_and_local_tuning_names_itself() -> None:
    plain = JobInfo.of("nightly-housing", resource_config=SAGEMAKER_RC)
    assert plain.tuning_job_name is None and plain.objective_metric is None
    local = JobInfo.of(tuning_job_name="local-tune")
    assert local.tuning_job_name == "local-tune"
    assert local.job_name.startswith("local-") and local.instance_type == "local" and local.instance_count == 1


def test_uris_lose_credentials_and_arns_are_recognised() -> None:
    assert mlflow_client.safe_uri("https://user:hunter2@mlflow.example.com:8443/x?token=abc") == \
        "https://mlflow.example.com:8443/x"
    for local in ("sqlite:////abs/path.db", "sqlite:///relative.db", "file:///tmp/mlruns"):
        assert mlflow_client.safe_uri(local) == local  # every slash kept: the same file
    assert mlflow_client.safe_uri("sqlite:////abs/path.db?mode=ro") == "sqlite:////abs/path.db"
    assert mlflow_client.is_arn("arn:aws:sagemaker:us-west-2:123456789012:mlflow-tracking-server/main")
    assert mlflow_client.is_arn("arn:aws:sagemaker:eu-west-1:123456789012:mlflow-app/app-ABC123")
    assert not mlflow_client.is_arn("http://127.0.0.1:5000")


def test_no_tracking_uri_turns_tracking_off_with_one_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="training.tracking.mlflow_recorder")
    job = JobInfo.of()
    assert isinstance(MlflowRecorder.from_settings(TrackingSettings(), job), NoRecorder)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "MLflow tracking is off: set MLFLOW_TRACKING_URI" in lines[0]


def test_unreachable_at_start_fails_with_the_fix_and_no_credentials() -> None:
    uri = f"http://admin:hunter2@127.0.0.1:{free_port()}"
    recorder = MlflowRecorder.from_settings(TrackingSettings(uri), JobInfo.of())
    assert isinstance(recorder, MlflowRecorder)
    with pytest.raises(ConfigError) as info:
        recorder.check_reachable()
    message = str(info.value)
    assert "\n" not in message and "hunter2" not in message and "admin" not in message
    assert mlflow_client.safe_uri(uri) in message and "MLFLOW_REQUIRED=false" in message


def test_unreachable_at_start_with_required_false_trains_without_tracking(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="training.tracking.mlflow_recorder")
    recorder = MlflowRecorder.from_settings(TrackingSettings(f"http://127.0.0.1:{free_port()}", required=False),
                                            JobInfo.of())
    assert isinstance(recorder, MlflowRecorder)
    recorder.check_reachable()
    began = time.monotonic()
    recorder.start({"eta": 0.3})
    recorder.log_rows([1, 2])
    recorder.fail("whatever")
    assert not recorder.enabled and recorder.run_id is None
    assert time.monotonic() - began < 1  # off means off: no more requests
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "the job runs without tracking" in warnings[0].getMessage()


def test_the_spurious_sagemaker_mlflow_warning_is_dropped_on_http_only() -> None:
    import mlflow

    mlflow_client.install_warning_filter()
    mlflow_client.install_warning_filter()  # idempotent
    logger = logging.getLogger("mlflow.tracking.request_header.registry")
    record = logger.makeRecord(logger.name, logging.WARNING, __file__, 1,
                               "Encountered unexpected error during resolving request headers: %s",
                               (IndexError("list index out of range"),), None)
    assert len([f for f in logger.filters if isinstance(f, mlflow_client._SpuriousHeaderWarningFilter)]) == 1
    mlflow.set_tracking_uri("http://127.0.0.1:5000")
    assert not logger.filter(record)
    mlflow.set_tracking_uri("arn:aws:sagemaker:us-west-2:123456789012:mlflow-tracking-server/main")
    assert logger.filter(record)


@pytest.mark.parametrize("implementation", [MlflowRecorder, NoRecorder])
def test_every_recorder_takes_every_call_the_training_loop_makes(implementation: type) -> None:
    for name, declared in inspect.getmembers(RunRecorder, inspect.isfunction):
        if name.startswith("_"):
            continue
        wanted = list(inspect.signature(declared).parameters)
        given = list(inspect.signature(getattr(implementation, name)).parameters)
        assert given[:len(wanted)] == wanted, f"{implementation.__name__}.{name}{given} is not {wanted}"


def test_the_off_recorder_never_stops_training() -> None:
    callback = NoRecorder().callback(7)
    assert callback.after_iteration(None, 0, {"validation": {"rmse": [0.1]}}) is False
