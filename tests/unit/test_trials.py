"""``tune --wait`` shows the trials table as trials start and end; its closing table lists every
trial, failed ones with their reason (botocore's Stubber checks each request and response against
the SageMaker service model; moto has no tuning-job trial listing)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from launch.aws import list_trials
from launch.commands.tune import trials_table
from launch.follower import StoppedFollowing, follow_tuning

STARTED = datetime(2026, 11, 29, tzinfo=timezone.utc)
REASON = "AlgorithmError: table 'DB.S.T' has no column 'Y': check 'target'"


def _trial(name: str, status: str, value: float | None = None, reason: str | None = None) -> dict[str, Any]:
    trial: dict[str, Any] = {"TrainingJobName": name, "TrainingJobArn": f"arn:aws:sagemaker:us-west-2:1:training-job/{name}",
                             "CreationTime": STARTED, "TrainingJobStatus": status,
                             "TunedHyperParameters": {"eta": "0.1"}}
    if value is not None:
        trial["FinalHyperParameterTuningJobObjectiveMetric"] = {"MetricName": "validation:rmse", "Value": value}
    if reason is not None:
        trial["FailureReason"] = reason
    return trial


def _listed(pages: list[list[dict[str, Any]]], objective_type: str = "Minimize") -> list[dict[str, Any]]:
    client = boto3.client("sagemaker", region_name="us-west-2", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        for i, page in enumerate(pages):
            expected = {"HyperParameterTuningJobName": "xgb-tune-1", "SortBy": "CreationTime", "SortOrder": "Ascending"}
            if i:
                expected["NextToken"] = f"page-{i}"
            response: dict[str, Any] = {"TrainingJobSummaries": page}
            if i + 1 < len(pages):
                response["NextToken"] = f"page-{i + 1}"
            stub.add_response("list_training_jobs_for_hyper_parameter_tuning_job", response, expected)
        trials = list_trials(client, "xgb-tune-1", objective_type)
        stub.assert_no_pending_responses()
    return trials


@pytest.mark.parametrize(("objective_type", "order"), [("Minimize", ["b", "a", "c", "d"]),
                                                       ("Maximize", ["a", "b", "c", "d"])])
def test_trials_are_ranked_here_and_those_without_an_objective_are_kept(objective_type: str, order: list[str]) -> None:
    trials = _listed([[_trial("a", "Completed", 0.5), _trial("c", "Failed", reason=REASON)],
                      [_trial("b", "Completed", 0.3), _trial("d", "Stopped")]], objective_type)
    assert [t["TrainingJobName"] for t in trials] == order


def test_when_every_trial_failed_the_table_shows_each_and_its_reason() -> None:
    trials = _listed([[_trial("xgb-1", "Failed", reason=REASON), _trial("xgb-2", "Failed", reason=REASON)]])
    table = trials_table(trials, "validation:rmse").splitlines()
    assert len(table) == 5 and table[1].startswith("xgb-1") and "Failed" in table[1]
    assert table[2] == f"    failed: {REASON}" and table[4] == f"    failed: {REASON}"


def _tuning(status: str, completed: int, running: int) -> dict[str, Any]:
    return {"HyperParameterTuningJobName": "xgb-tune-1", "CreationTime": STARTED,
            "HyperParameterTuningJobArn": "arn:aws:sagemaker:us-west-2:1:hyper-parameter-tuning-job/xgb-tune-1",
            "HyperParameterTuningJobConfig": {"Strategy": "Bayesian", "ResourceLimits": {"MaxParallelTrainingJobs": 2}},
            "HyperParameterTuningJobStatus": status, "ObjectiveStatusCounters": {},
            "TrainingJobStatusCounters": {"Completed": completed, "InProgress": running}}


def test_tune_wait_shows_the_table_when_a_trial_starts_or_ends_and_ctrl_c_says_how_to_stop() -> None:
    client = boto3.client("sagemaker", region_name="us-west-2", aws_access_key_id="x", aws_secret_access_key="x")
    tables = iter(["table 1", "table 2"])
    interrupts = iter([None, None, KeyboardInterrupt])

    def sleep(seconds: float) -> None:
        raised = next(interrupts)
        if raised:
            raise raised

    shown: list[str] = []
    with Stubber(client) as stub:
        for state in (_tuning("InProgress", 0, 2), _tuning("InProgress", 0, 2), _tuning("InProgress", 1, 1)):
            stub.add_response("describe_hyper_parameter_tuning_job", state, {"HyperParameterTuningJobName": "xgb-tune-1"})
        with pytest.raises(StoppedFollowing) as stopped:
            follow_tuning(client, "xgb-tune-1", echo=shown.append, table=lambda: next(tables), sleep=sleep)
        stub.add_response("describe_hyper_parameter_tuning_job", _tuning("Completed", 2, 0))
        assert follow_tuning(client, "xgb-tune-1", echo=shown.append, table=lambda: "unused")[
            "HyperParameterTuningJobStatus"] == "Completed"
    assert shown == ["status: InProgress", "trials: Completed 0, InProgress 2", "table 1",
                     "trials: Completed 1, InProgress 1", "table 2"]  # the command shows the last one
    assert str(stopped.value) == ("stopped following; the job keeps running. To stop it: aws sagemaker "
                                  "stop-hyper-parameter-tuning-job --hyper-parameter-tuning-job-name xgb-tune-1 "
                                  "--region us-west-2")
