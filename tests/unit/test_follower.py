"""``--wait``'s pure parts (the progress line, status text) and the pipeline follower (botocore's
Stubber checks each request and response against the SageMaker service model; moto does not list
pipeline execution steps). The training and tuning followers: tests/integration/test_launcher_moto.py
and tests/unit/test_trials.py."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from launch.cli import main
from launch.follower import RoundProgress, StoppedFollowing, duration, follow_pipeline, host_of, total_rounds

STARTED = datetime(2026, 11, 29, tzinfo=timezone.utc)
EXECUTION = "arn:aws:sagemaker:us-west-2:1:pipeline/xgb-tuning/execution/abc123"
TUNING_JOB = "arn:aws:sagemaker:us-west-2:1:hyper-parameter-tuning-job/xgb-tune-1"


def test_a_maximised_metric_keeps_its_highest_value_and_the_eta_follows_the_pace() -> None:
    progress = RoundProgress(total=100)
    progress.observe("2026-11-29 10:00:00 [algo-1] INFO container.entry: reading", 0)
    for index, (auc, ms) in enumerate([(0.70, 60_000), (0.80, 70_000), (0.75, 80_000)]):
        assert progress.observe(f"ts [algo-1] INFO training.train.rounds: [{index}]\ttrain-auc:0.9\tvalidation-auc:{auc}"
                                "\tvalidation-logloss:0.3", ms)
    assert progress.line() == "round 3/100, best validation-auc 0.8 at [1], 1m20s elapsed, ETA 16m10s"


def test_the_progress_line_before_a_pace_is_known_and_with_a_resumed_job() -> None:
    progress = RoundProgress(total=200)
    progress.observe("[150]\ttrain-rmse:0.4\tvalidation-rmse:0.5", 5_000)  # resumed from a checkpoint
    assert progress.line() == "round 151/200, best validation-rmse 0.5 at [150], 0s elapsed"
    assert not progress.observe("final metrics: train-rmse 0.4, validation-rmse 0.5 after 151 rounds", 6_000)


@pytest.mark.parametrize(("seconds", "text"), [(42.4, "42s"), (252, "4m12s"), (3600 * 3 + 300, "3h05m")])
def test_durations(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_hosts_and_rounds_come_from_the_stream_and_the_job() -> None:
    assert host_of("xgb-1/algo-12-1764374400") == "algo-12"
    assert total_rounds({"HyperParameters": {"num_round": "300"}}) == 300
    assert total_rounds({"HyperParameters": {}}) == 100  # the container's default


def _execution(status: str) -> dict[str, Any]:
    return {"PipelineExecutionArn": EXECUTION, "PipelineExecutionStatus": status, "CreationTime": STARTED}


def _steps(status: str, reason: str | None = None) -> dict[str, Any]:
    step: dict[str, Any] = {"StepName": "TuneXGBoost", "StepStatus": status,
                            "Metadata": {"TuningJob": {"Arn": TUNING_JOB}}}
    if reason:
        step["FailureReason"] = reason
    return {"PipelineExecutionSteps": [step]}


def test_pipeline_wait_shows_status_and_steps_when_they_change_and_ctrl_c_says_how_to_stop() -> None:
    client = boto3.client("sagemaker", region_name="us-west-2", aws_access_key_id="x", aws_secret_access_key="x")
    wanted = {"PipelineExecutionArn": EXECUTION}
    shown: list[str] = []
    with Stubber(client) as stub:
        for status, step in [("Executing", "Starting"), ("Executing", "Executing"), ("Executing", "Executing"),
                             ("Failed", "Failed")]:
            stub.add_response("describe_pipeline_execution", _execution(status), wanted)
            stub.add_response("list_pipeline_execution_steps", _steps(step, "no trial completed" * (step == "Failed")),
                              {**wanted, "SortOrder": "Ascending"})
        desc = follow_pipeline(client, EXECUTION, echo=shown.append, sleep=lambda s: None)
        stub.assert_no_pending_responses()
        stub.add_response("describe_pipeline_execution", _execution("Executing"), wanted)
        stub.add_response("list_pipeline_execution_steps", _steps("Executing"), {**wanted, "SortOrder": "Ascending"})

        def interrupted(seconds: float) -> None:
            raise KeyboardInterrupt

        with pytest.raises(StoppedFollowing) as stopped:
            follow_pipeline(client, EXECUTION, echo=lambda line: None, sleep=interrupted)
    assert desc["PipelineExecutionStatus"] == "Failed"
    assert shown == ["status: Executing", "step TuneXGBoost: Starting (tuning job xgb-tune-1)",
                     "step TuneXGBoost: Executing (tuning job xgb-tune-1)",
                     "step TuneXGBoost: Failed (tuning job xgb-tune-1): no trial completed"]
    assert stopped.value.stop_command == ("aws sagemaker stop-pipeline-execution --pipeline-execution-arn "
                                          f"{EXECUTION} --region us-west-2")


def test_pipeline_wait_needs_start(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pipeline", "--settings", "launch/settings.example.toml", "--wait"]) == 1
    assert "add --start" in capsys.readouterr().err


def _training_job(status: str) -> dict[str, Any]:
    return {"TrainingJobName": "xgb-1", "TrainingJobArn": "arn:aws:sagemaker:us-west-2:1:training-job/xgb-1",
            "ModelArtifacts": {"S3ModelArtifacts": ""}, "TrainingJobStatus": status, "SecondaryStatus": "Training",
            "CreationTime": STARTED, "HyperParameters": {"num_round": "10"},
            "AlgorithmSpecification": {"TrainingInputMode": "File", "TrainingImage": "img"},
            "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600}}


def _clients() -> tuple[Any, Stubber, Any, Stubber]:
    sagemaker = boto3.client("sagemaker", region_name="us-west-2", aws_access_key_id="x", aws_secret_access_key="x")
    logs = boto3.client("logs", region_name="us-west-2", aws_access_key_id="x", aws_secret_access_key="x")
    return sagemaker, Stubber(sagemaker), logs, Stubber(logs)


def test_logs_the_credentials_cannot_read_leave_the_status_followed() -> None:
    """A launching user on an older policy: one line says what to grant; the job is still followed to its end."""
    from launch.follower import follow_training

    sagemaker, sm_stub, logs, logs_stub = _clients()
    sm_stub.add_response("describe_training_job", _training_job("InProgress"), {"TrainingJobName": "xgb-1"})
    sm_stub.add_response("describe_training_job", _training_job("Completed"), {"TrainingJobName": "xgb-1"})
    logs_stub.add_client_error("describe_log_streams", "AccessDeniedException", "not authorized")
    shown: list[str] = []
    with sm_stub, logs_stub:
        desc = follow_training(sagemaker, logs, "xgb-1", echo=shown.append, sleep=lambda s: None)
    assert desc["TrainingJobStatus"] == "Completed"
    assert shown == ["status: InProgress / Training",
                     "cannot read the job's logs (AccessDenied on CloudWatch Logs: grant logs:DescribeLogStreams and "
                     "logs:GetLogEvents, see iam/launcher-user-policy.json): following its status only"]


def test_lines_that_arrive_after_the_job_ended_are_still_shown() -> None:
    """CloudWatch can deliver the last lines (the final metrics, the error) seconds after the end."""
    from launch.follower import LOG_GROUP, follow_training

    sagemaker, sm_stub, logs, logs_stub = _clients()
    sm_stub.add_response("describe_training_job", _training_job("Failed"), {"TrainingJobName": "xgb-1"})
    stream = {"logStreamName": "xgb-1/algo-1-1764374400"}
    wanted = {"logGroupName": LOG_GROUP, "logStreamName": stream["logStreamName"], "startFromHead": True}
    logs_stub.add_response("describe_log_streams", {"logStreams": [stream]}, {"logGroupName": LOG_GROUP,
                                                                               "logStreamNamePrefix": "xgb-1/"})
    logs_stub.add_response("get_log_events", {"events": [], "nextForwardToken": "f/1"}, wanted)  # not yet
    logs_stub.add_response("describe_log_streams", {"logStreams": [stream]}, {"logGroupName": LOG_GROUP,
                                                                               "logStreamNamePrefix": "xgb-1/"})
    logs_stub.add_response("get_log_events", {"events": [{"timestamp": 1, "message": "training failed: no rows"}],
                                              "nextForwardToken": "f/2"}, {**wanted, "nextToken": "f/1"})
    logs_stub.add_response("get_log_events", {"events": [], "nextForwardToken": "f/2"}, {**wanted, "nextToken": "f/2"})
    logs_stub.add_response("describe_log_streams", {"logStreams": [stream]}, {"logGroupName": LOG_GROUP,
                                                                               "logStreamNamePrefix": "xgb-1/"})
    logs_stub.add_response("get_log_events", {"events": [], "nextForwardToken": "f/2"}, {**wanted, "nextToken": "f/2"})
    shown: list[str] = []
    with sm_stub, logs_stub:
        follow_training(sagemaker, logs, "xgb-1", echo=shown.append, sleep=lambda s: None)
    assert shown == ["algo-1 | training failed: no rows"]
