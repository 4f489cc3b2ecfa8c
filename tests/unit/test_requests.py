"""Offline: the exact requests the launcher builds pass botocore's own validation and carry
what the container needs; the pipeline definition is stable; the metric regexes match the
container's log lines. No AWS account, no network: requests are captured before sending."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator

from launch import jobs
from launch.settings import load_settings
from launch.tuning_space import default_space
from training import contract
from training.errors import ConfigError
from training.objectives.metrics import final_line

FULL = """
region = "us-west-2"
role = "arn:aws:iam::123456789012:role/Training"
image = "123456789012.dkr.ecr.us-west-2.amazonaws.com/xgb:1"
job_prefix = "xgb-test"
[data]
table = "DB.S.T"
target = "Y"
features = ["A", "B"]
snowflake_secret_id = "arn:aws:secretsmanager:us-west-2:123456789012:secret:sf-AbC"
[mlflow]
tracking_uri = "arn:aws:sagemaker:us-west-2:123456789012:mlflow-tracking-server/main"
experiment = "exp"
[compute]
instance_type = "ml.m5.2xlarge"
instance_count = 3
spot = true
max_runtime_seconds = 3600
max_wait_seconds = 7200
[output]
s3_path = "s3://bucket/out"
checkpoint_s3_uri = "s3://bucket/ckpt"
[network]
subnets = ["subnet-1"]
security_group_ids = ["sg-1"]
inter_container_encryption = true
network_isolation = true
[kms]
volume_key_id = "vol-key"
output_key_id = "out-key"
[tags]
team = "ml"
[hyperparameters]
num_round = 50
eval_metric = ["rmse", "mae"]
[tuning]
max_jobs = 6
max_parallel_jobs = 2
early_stopping = "Auto"
warm_start_from = ["xgb-earlier-1"]
"""


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Any:
    path = tmp_path_factory.mktemp("settings") / "settings.toml"
    path.write_text(FULL)
    return load_settings(path)


@pytest.fixture(autouse=True)
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Prove the dry run needs no AWS account: no credentials anywhere."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def validate(operation: str, params: dict[str, Any]) -> None:
    model = botocore.session.get_session().get_service_model("sagemaker")
    report = ParamValidator().validate(params, model.operation_model(operation).input_shape)
    assert not report.has_errors(), report.generate_report()


@pytest.fixture(scope="module")
def training(settings: Any) -> dict[str, Any]:
    return jobs.training_request(settings)


@pytest.fixture(scope="module")
def tuning(settings: Any) -> dict[str, Any]:
    return jobs.tuning_request(settings, "xgb-test-tune")


def test_training_request_is_valid_and_complete(training: dict[str, Any]) -> None:
    validate("CreateTrainingJob", training)
    assert training["AlgorithmSpecification"]["TrainingImage"].endswith("/xgb:1")
    assert "InputDataConfig" not in training  # code is baked in: no source upload, no channels
    assert "ContainerEntrypoint" not in training["AlgorithmSpecification"]
    assert training["ResourceConfig"] == {"InstanceType": "ml.m5.2xlarge", "InstanceCount": 3,
                                          "VolumeSizeInGB": 30, "VolumeKmsKeyId": "vol-key"}
    assert training["Environment"] == {
        contract.SECRET_ID_ENV: "arn:aws:secretsmanager:us-west-2:123456789012:secret:sf-AbC",
        contract.TRACKING_URI_ENV: "arn:aws:sagemaker:us-west-2:123456789012:mlflow-tracking-server/main",
        contract.EXPERIMENT_ENV: "exp", contract.IMAGE_ENV: "123456789012.dkr.ecr.us-west-2.amazonaws.com/xgb:1"}
    assert training["HyperParameters"] == {"num_round": "50", "eval_metric": "rmse,mae", "table": "DB.S.T",
                                           "target": "Y", "features": "A,B"}
    assert training["EnableManagedSpotTraining"] is True
    assert training["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}
    assert training["CheckpointConfig"] == {"S3Uri": "s3://bucket/ckpt", "LocalPath": "/opt/ml/checkpoints"}
    assert training["VpcConfig"] == {"SecurityGroupIds": ["sg-1"], "Subnets": ["subnet-1"]}
    assert training["EnableNetworkIsolation"] and training["EnableInterContainerTrafficEncryption"]
    assert training["OutputDataConfig"]["KmsKeyId"] == "out-key"
    assert training["Tags"] == [{"Key": "team", "Value": "ml"}]
    names = [m["Name"] for m in training["AlgorithmSpecification"]["MetricDefinitions"]]
    assert names == ["train:rmse", "validation:rmse", "train:mae", "validation:mae"]
    assert re.fullmatch(r"xgb-test-[0-9a-f]{6}-\d{14}", training["TrainingJobName"])


def test_tuning_request_is_valid_and_closes_the_sdk_gaps(tuning: dict[str, Any]) -> None:
    validate("CreateHyperParameterTuningJob", tuning)
    config, definition = tuning["HyperParameterTuningJobConfig"], tuning["TrainingJobDefinition"]
    assert config["HyperParameterTuningJobObjective"] == {"Type": "Minimize", "MetricName": "validation:rmse"}
    assert config["Strategy"] == "Bayesian" and config["TrainingJobEarlyStoppingType"] == "Auto"
    assert config["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 6, "MaxParallelTrainingJobs": 2}
    ranges = {r["Name"]: r for kind in config["ParameterRanges"].values() for r in kind}
    assert set(ranges) == set(default_space()) - {"num_round"}
    assert ranges["eta"]["ScalingType"] == "Logarithmic"
    assert definition["StaticHyperParameters"]["num_round"] == "50"  # set in [hyperparameters], so not tuned
    assert definition["StaticHyperParameters"]["table"] == "DB.S.T"
    assert [m["Name"] for m in definition["AlgorithmSpecification"]["MetricDefinitions"]][:2] == [
        "train:rmse", "validation:rmse"]
    # what SDK 3.27 drops, put back for every trial
    assert definition["EnableNetworkIsolation"] and definition["EnableInterContainerTrafficEncryption"]
    assert definition["ResourceConfig"]["VolumeKmsKeyId"] == "vol-key"
    assert definition["EnableManagedSpotTraining"] is True
    assert definition["StoppingCondition"]["MaxWaitTimeInSeconds"] == 7200
    assert definition["CheckpointConfig"]["S3Uri"] == "s3://bucket/ckpt"
    assert definition["VpcConfig"]["Subnets"] == ["subnet-1"]
    assert definition["Environment"][contract.SECRET_ID_ENV].endswith(":secret:sf-AbC")
    assert tuning["WarmStartConfig"] == {"ParentHyperParameterTuningJobs": [
        {"HyperParameterTuningJobName": "xgb-earlier-1"}], "WarmStartType": "IdenticalDataAndAlgorithm"}
    assert tuning["Tags"] == [{"Key": "team", "Value": "ml"}]


def test_workload_identity_sends_the_connection_and_the_region_and_no_secret_id(settings: Any) -> None:
    wif = load_settings(settings.source, ["data.snowflake_secret_id=''", "data.snowflake_connection={account='org-acct', "
                                          "warehouse='WH', database='DB', schema='S', role='R', user='svc'}"])
    request = jobs.training_request(wif)
    validate("CreateTrainingJob", request)
    env = request["Environment"]
    assert contract.SECRET_ID_ENV not in env and env[contract.REGION_ENV] == "us-west-2"
    assert json.loads(env[contract.CONNECTION_ENV]) == {"account": "org-acct", "warehouse": "WH", "database": "DB",
                                                        "schema": "S", "role": "R", "user": "svc",
                                                        "auth": "workload_identity"}


def test_hyperband_sends_its_resources_and_reverse_logarithmic_stays_within_0_1(settings: Any) -> None:
    hyperband = load_settings(settings.source, [
        "tuning.strategy=Hyperband", "tuning.early_stopping=Off", "tuning.hyperband_min_resource=10",
        "tuning.hyperband_max_resource=50", "tuning.ranges.subsample={low=0.5, high=0.99, scaling='ReverseLogarithmic'}"])
    request = jobs.tuning_request(hyperband, "xgb-test-hb")
    validate("CreateHyperParameterTuningJob", request)
    config = request["HyperParameterTuningJobConfig"]
    assert config["Strategy"] == "Hyperband"
    assert config["StrategyConfig"] == {"HyperbandStrategyConfig": {"MinResource": 10, "MaxResource": 50}}
    ranges = {r["Name"]: r for r in config["ParameterRanges"]["ContinuousParameterRanges"]}
    assert ranges["subsample"]["ScalingType"] == "ReverseLogarithmic"


def test_a_warm_pool_and_completion_criteria_reach_the_requests(settings: Any, tmp_path: Path) -> None:
    on_demand = tmp_path / "on-demand.toml"  # a warm pool is not offered with spot
    on_demand.write_text(FULL.replace("spot = true\n", "").replace("max_wait_seconds = 7200\n", ""))
    changed = load_settings(on_demand, [
        "compute.keep_alive_seconds=1800", "tuning.target_objective_value=0.25", "tuning.stop_after_not_improving=5",
        "tuning.complete_on_convergence=true"])
    training = jobs.training_request(changed)
    validate("CreateTrainingJob", training)
    assert training["ResourceConfig"]["KeepAlivePeriodInSeconds"] == 1800
    tuning = jobs.tuning_request(changed, "xgb-test-cc")
    validate("CreateHyperParameterTuningJob", tuning)
    assert tuning["TrainingJobDefinition"]["ResourceConfig"]["KeepAlivePeriodInSeconds"] == 1800
    assert tuning["HyperParameterTuningJobConfig"]["TuningJobCompletionCriteria"] == {
        "TargetObjectiveMetricValue": 0.25, "BestObjectiveNotImproving": {"MaxNumberOfTrainingJobsNotImproving": 5},
        "ConvergenceDetected": {"CompleteOnConvergence": "Enabled"}}
    assert "TuningJobCompletionCriteria" not in jobs.tuning_request(settings, "xgb-test-no")[
        "HyperParameterTuningJobConfig"]


@pytest.mark.parametrize(("change", "says"), [
    (lambda r: r["ResourceConfig"].update(InstanceType="ml.m5.3xlarge"),
     "CreateTrainingJob.ResourceConfig.InstanceType is 'ml.m5.3xlarge', not one of the values SageMaker lists"),
    (lambda r: r["AlgorithmSpecification"].update(MetricDefinitions=[{"Name": f"m{i}", "Regex": "x"} for i in range(41)]),
     "CreateTrainingJob.AlgorithmSpecification.MetricDefinitions has 41 entries and SageMaker accepts at most 40"),
    (lambda r: r["ResourceConfig"].update(KeepAlivePeriodInSeconds=99_999),
     "CreateTrainingJob.ResourceConfig.KeepAlivePeriodInSeconds is 99999 and SageMaker accepts at most 21600"),
])
def test_a_request_sagemaker_would_refuse_is_stopped_before_it_is_sent(training: dict[str, Any], change: Any,
                                                                       says: str) -> None:
    """The net under the settings: botocore validates types, not enums or upper bounds; every SageMaker request
    the launcher sends passes service_model.check_request first (a dry run included)."""
    import copy

    import boto3

    from launch import aws

    request = copy.deepcopy(training)
    change(request)
    validate("CreateTrainingJob", request)  # botocore's own validation lets it through
    client = aws.boto_session("us-west-2").client("sagemaker")
    with pytest.raises(ConfigError, match=re.escape(says)):
        client.create_training_job(**request)
    from botocore.stub import Stubber

    plain = boto3.Session(region_name="us-west-2", aws_access_key_id="x", aws_secret_access_key="y").client("sagemaker")
    with Stubber(plain) as stub:  # a session the launcher did not make is left as botocore has it
        stub.add_response("create_training_job", {"TrainingJobArn": "arn:aws:sagemaker:us-west-2:1:training-job/x"})
        plain.create_training_job(**request)


def _resolve(node: Any, defaults: dict[str, Any]) -> Any:
    """Replace pipeline parameter references with their defaults, as an execution would."""
    if isinstance(node, dict):
        if set(node) == {"Get"} and node["Get"].startswith("Parameters."):
            return defaults[node["Get"].removeprefix("Parameters.")]
        return {k: _resolve(v, defaults) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, defaults) for v in node]
    return node


def test_pipeline_definition_is_valid_and_stable(settings: Any) -> None:
    first, second = jobs.pipeline_definition(settings), jobs.pipeline_definition(settings)
    assert first == second
    validate("CreatePipeline", {"PipelineName": settings.pipeline_name, "RoleArn": settings.role,
                                "PipelineDefinition": json.dumps(first),
                                "ClientRequestToken": "t" * 32})  # botocore fills it in when sending
    defaults = {p["Name"]: p["DefaultValue"] for p in first["Parameters"]}
    assert defaults == {"InstanceType": "ml.m5.2xlarge", "InstanceCount": 3,
                        "TrainingImage": "123456789012.dkr.ecr.us-west-2.amazonaws.com/xgb:1"}
    (step,) = first["Steps"]
    assert step["Type"] == "Tuning"
    arguments = step["Arguments"]
    assert arguments["TrainingJobDefinition"]["ResourceConfig"]["InstanceCount"] == {"Get": "Parameters.InstanceCount"}
    validate("CreateHyperParameterTuningJob",
             {"HyperParameterTuningJobName": "pipeline-run", **_resolve(arguments, defaults)})
    assert arguments["TrainingJobDefinition"]["EnableNetworkIsolation"] is True
    # No SageMaker Experiments entities per execution (the pipeline role is not granted them; MLflow tracks
    # the runs): the SDK's default would put {"ExperimentName": {"Get": "Execution.PipelineName"}, ...} here.
    assert first["PipelineExperimentConfig"] is None


CONTAINER_LINES = (
    "2026-11-23 01:02:03,456 127.0.0.1 [12]\ttrain-rmse:0.5123\tvalidation-rmse:0.6234\ttrain-mae:0.4\t"
    "validation-mae:4.5e-01\n"
    "2026-11-23 01:02:09,001 127.0.0.1 " + final_line({"train-rmse": 0.5001, "validation-rmse": 0.6101,
                                                       "train-mae": 0.39, "validation-mae": 0.44}, 100) + "\n"
)


def test_metric_regexes_read_the_containers_lines() -> None:
    found = {d["Name"]: [float(v) for v in re.findall(d["Regex"], CONTAINER_LINES)]
             for d in jobs.metric_definitions(["rmse", "mae"])}
    # one value per round: the final line repeats none of them (SageMaker would plot and tune on a second copy)
    assert found == {"train:rmse": [0.5123], "validation:rmse": [0.6234], "train:mae": [0.4], "validation:mae": [0.45]}
    assert jobs.metric_definitions(["rmse"])[1] == {"Name": "validation:rmse",
                                                    "Regex": "validation-rmse:([-+0-9.eE]+)"}


def test_small_metrics_keep_their_significant_digits_through_the_regexes(caplog: pytest.LogCaptureFixture) -> None:
    """A tuner ranks trials by what the regex reads: 1.2e-05 and 3.4e-05 must not both read 0.000000."""
    from training.train.rounds import log_round

    values = {"train": {"rmse": [0.5, 1.234567e-5]}, "validation": {"rmse": [0.5, 3.456789e-5]}}
    with caplog.at_level(logging.INFO, logger="training.train.rounds"):
        log_round(1, values)
    found = {d["Name"]: [float(v) for v in re.findall(d["Regex"], caplog.text)]
             for d in jobs.metric_definitions(["rmse"])}
    assert found == {"train:rmse": [1.23457e-5], "validation:rmse": [3.45679e-5]}


def test_objective_without_a_metric_definition_is_refused(settings: Any) -> None:
    bad = settings.model_copy(update={"hyperparameters": {"eval_metric": "mae"}})
    with pytest.raises(ConfigError, match="'tuning.objective' is 'validation:rmse', which no metric definition"):
        jobs.check_objective(bad)


def test_tuning_job_names_are_unique_and_short() -> None:
    names = {jobs.tuning_job_name("a-rather-long-job-prefix") for _ in range(50)}
    assert len(names) == 50
    assert all(len(n) <= 32 and re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*", n) for n in names)


@pytest.mark.parametrize("name", ["xgb_tune", "-xgb", "xgb-", "x" * 33])
def test_a_tuning_job_name_sagemaker_would_refuse_is_refused_before_sending(settings: Any, name: str) -> None:
    from launch.commands.tune import tune

    with pytest.raises(ConfigError, match="is not a tuning job name: at most 32 letters, digits and dashes"):
        tune(settings, dry_run=True, job_name=name)


def test_collective_ledger_sends_the_ledger_folder_inside_the_synced_checkpoints(settings: Any) -> None:
    """Each host's ledger reaches S3 through the checkpoint sync, even from a job that hangs."""
    request = jobs.training_request(load_settings(settings.source, ["output.collective_ledger=true"]))
    validate("CreateTrainingJob", request)
    assert request["Environment"][contract.LEDGER_ENV] == "/opt/ml/checkpoints/ledger"
    assert request["CheckpointConfig"]["LocalPath"] == "/opt/ml/checkpoints"
    with pytest.raises(ConfigError, match=r"^settings key 'output.collective_ledger' needs output.checkpoint_s3_uri"):
        load_settings(settings.source, ["output.collective_ledger=true", "output.checkpoint_s3_uri=''"])



def test_the_sample_dry_run_in_the_docs_is_what_the_launcher_prints(monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/launcher.md's sample: the example settings' request, as `train --dry-run` prints it (but its name)."""
    from launch.settings import EXAMPLE

    doc = (Path(__file__).resolve().parents[2] / "docs" / "launcher.md").read_text()
    sample = doc.split("## Sample `--dry-run` output", 1)[1].split("```json\n", 1)[1].split("```", 1)[0]
    printed = json.loads(json.dumps(jobs.training_request(load_settings(EXAMPLE, ["compute.instance_count=2"])),
                                    default=str))
    shown = json.loads(sample)
    assert re.fullmatch(r"xgb-housing-[0-9a-f]{6}-\d{14}", shown.pop("TrainingJobName"))
    printed.pop("TrainingJobName")
    assert shown == printed
