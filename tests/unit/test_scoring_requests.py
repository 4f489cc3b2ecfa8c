"""Offline: a SageMaker scoring job's request is the settings' training request, running the image's score command."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator

from launch import cli, jobs, scoring_jobs
from launch.settings import load_settings
from tests.unit.test_requests import FULL, no_credentials  # noqa: F401  (autouse: the dry run needs no account)
from training import contract

MODEL = "s3://bucket/out/xgb-test-abc-2612060101/output/model.tar.gz"
OPTIONS = {"source_table": "DB.PUBLIC.CUSTOMERS", "target_table": "DB.PUBLIC.SCORES", "key_columns": "ID",
           "model_name": "churn", "model_version": ""}


@pytest.fixture
def settings_file(tmp_path: Path) -> Path:
    path = tmp_path / "settings.toml"
    path.write_text(FULL)
    return path


def _valid(request: dict[str, Any]) -> None:
    model = botocore.session.get_session().get_service_model("sagemaker")
    report = ParamValidator().validate(request, model.operation_model("CreateTrainingJob").input_shape)
    assert not report.has_errors(), report.generate_report()


def test_the_request_runs_the_score_command_on_the_settings_hosts_with_the_model_channel(settings_file: Path) -> None:
    request = scoring_jobs.scoring_request(load_settings(settings_file), OPTIONS, MODEL)
    _valid(request)
    assert request["AlgorithmSpecification"] == {"TrainingImage": "123456789012.dkr.ecr.us-west-2.amazonaws.com/xgb:1",
                                                 "TrainingInputMode": "File", "ContainerArguments": ["score"]}
    assert request["HyperParameters"] == {"source_table": "DB.PUBLIC.CUSTOMERS", "target_table": "DB.PUBLIC.SCORES",
                                          "key_columns": "ID", "model_name": "churn"}
    assert request["InputDataConfig"] == [{"ChannelName": "model", "InputMode": "File", "DataSource": {
        "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": MODEL, "S3DataDistributionType": "FullyReplicated"}}}]
    assert "CheckpointConfig" not in request
    # what the settings say of any job: hosts, the secret's id, the VPC, KMS, spot, tags
    assert request["ResourceConfig"]["InstanceCount"] == 3
    assert request["Environment"][contract.SECRET_ID_ENV].endswith(":secret:sf-AbC")
    assert request["VpcConfig"] == {"SecurityGroupIds": ["sg-1"], "Subnets": ["subnet-1"]}
    assert request["EnableManagedSpotTraining"] is True and request["Tags"] == [{"Key": "team", "Value": "ml"}]
    assert re.fullmatch(r"xgb-test-score-[0-9a-f]{6}-\d{12}", request["TrainingJobName"])


def test_the_job_logs_its_run_where_a_training_job_of_the_same_settings_logs(settings_file: Path) -> None:
    """The scoring job's MLflow run: the settings' tracking URI (here a managed MLflow ARN), experiment and
    MLFLOW_REQUIRED reach its environment exactly as they reach a training job's."""
    settings = load_settings(settings_file, ["environment.MLFLOW_REQUIRED=false"])
    environment = scoring_jobs.scoring_request(settings, OPTIONS, MODEL)["Environment"]
    assert environment == jobs.training_request(settings)["Environment"]
    assert (environment[contract.TRACKING_URI_ENV], environment[contract.EXPERIMENT_ENV],
            environment[contract.REQUIRE_TRACKING_ENV]) == (
        "arn:aws:sagemaker:us-west-2:123456789012:mlflow-tracking-server/main", "exp", "false")


def test_the_dry_run_prints_the_request_and_needs_no_account(settings_file: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["score", "--settings", str(settings_file), "--model-url", MODEL, "--source", "DB.PUBLIC.CUSTOMERS",
                     "--target", "DB.PUBLIC.SCORES", "--keys", "ID", "--explain", "3", "--dry-run"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["AlgorithmSpecification"]["ContainerArguments"] == ["score"]
    assert printed["HyperParameters"]["explain"] == "3"
    assert printed["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == MODEL


@pytest.mark.parametrize(("args", "says"), [
    (["--model-url", "bucket/model.tar.gz"], "--model-url 'bucket/model.tar.gz' is not an s3:// URL"),
    ([], "give the model, once: --model-name NAME (registered; --alias or --version), --training-job NAME"),
    (["--model-url", MODEL, "--training-job", "j"], "give the model, once"),
    (["--model-url", MODEL, "--local"], "--model-url and --training-job are for SageMaker jobs: with --local give "
                                        "--model PATH or --model-name NAME"),
    (["--model-url", MODEL, "--alias", "prod"], "--alias and --version go with --model-name"),
    (["--model-url", MODEL, "--explain", "-2"], "scoring setting 'explain' must be a whole number, at least 0"),
])
def test_a_bad_model_source_is_one_line(settings_file: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                        says: str) -> None:
    assert cli.main(["score", "--settings", str(settings_file), "--source", "S", "--target", "T", "--dry-run",
                     *args]) == 1
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1
