"""The launcher through the real SageMaker SDK against moto (in-process ``mock_aws``).

A botocore ``provide-client-params`` hook on the session records exactly what was sent; moto
enforces no service rules, so the rules are asserted here. The Snowflake secret lives in moto's
Secrets Manager with a distinctive value that must appear in no request."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.stub import Stubber
from moto import mock_aws

from launch.cli import main
from launch.commands.train import train
from launch.commands.tune import tune
from launch.console import run
from launch.follower import LOG_GROUP, follow_training
from launch.settings import load_settings
from training import contract

SECRET_VALUE = "Zq-distinctive-launcher-s3cret-4410"
SETTINGS = """
region = "us-east-1"
role = "arn:aws:iam::123456789012:role/Training"
image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/xgb:7"
job_prefix = "xgb-moto"
[data]
table = "DB.S.T"
target = "Y"
snowflake_secret_id = "SECRET_ARN"
[compute]
instance_count = 2
spot = true
max_runtime_seconds = 3600
max_wait_seconds = 7200
[output]
s3_path = "s3://bucket/out"
checkpoint_s3_uri = "s3://bucket/ckpt"
[network]
subnets = ["subnet-1"]
security_group_ids = ["sg-1"]
[tags]
team = "ml"
[hyperparameters]
num_round = 30
[tuning]
max_jobs = 4
"""


class Recorder:
    """Every API call made through a boto3 session, with its parameters, in order."""

    def __init__(self, session: boto3.Session) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.completed: list[str] = []
        session.events.register("provide-client-params.*.*", self._record)
        session.events.register("after-call.*.*", self._complete)

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls.append((model.name, json.loads(json.dumps(params, default=str))))

    def _complete(self, model: Any, **_: Any) -> None:
        """A call the service answered (a dry run stops every call before this)."""
        self.completed.append(model.name)

    def sent(self, operation: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == operation]


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield


@pytest.fixture
def settings_file(aws: None, tmp_path: Path) -> Path:
    arn = boto3.client("secretsmanager").create_secret(
        Name="snowflake/xgb", SecretString=json.dumps({"password": SECRET_VALUE}))["ARN"]
    path = tmp_path / "settings.toml"
    path.write_text(SETTINGS.replace("SECRET_ARN", arn))
    return path


@pytest.fixture
def session(aws: None) -> boto3.Session:
    return boto3.Session(region_name="us-east-1")


@pytest.fixture
def recorder(session: boto3.Session) -> Recorder:
    return Recorder(session)


def assert_job_definition(job: dict[str, Any], secret_arn: str) -> None:
    """What every training job (alone or as a trial) must carry."""
    image = job["AlgorithmSpecification"]["TrainingImage"]
    assert image == "123456789012.dkr.ecr.us-east-1.amazonaws.com/xgb:7" or image == {"Get": "Parameters.TrainingImage"}
    # the run records the image it ran: the pipeline's parameter where a pipeline runs it
    assert job["Environment"] == {contract.SECRET_ID_ENV: secret_arn, contract.IMAGE_ENV: image}
    names = {m["Name"] for m in job["AlgorithmSpecification"]["MetricDefinitions"]}
    assert names == {"train:rmse", "validation:rmse"}
    assert job["EnableManagedSpotTraining"] is True
    assert job["StoppingCondition"]["MaxWaitTimeInSeconds"] >= job["StoppingCondition"]["MaxRuntimeInSeconds"]
    assert job["VpcConfig"] == {"SecurityGroupIds": ["sg-1"], "Subnets": ["subnet-1"]}
    assert job["CheckpointConfig"]["S3Uri"] == "s3://bucket/ckpt"
    assert SECRET_VALUE not in json.dumps(job)


def test_train_sends_the_job_and_waits(settings_file: Path, session: boto3.Session, recorder: Recorder,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--settings", str(settings_file), "--wait"], session=session) == 0
    (sent,) = recorder.sent("CreateTrainingJob")
    secret_arn = load_settings(settings_file).data.snowflake_secret_id
    assert_job_definition(sent, secret_arn)
    assert sent["ResourceConfig"]["InstanceCount"] == 2
    assert sent["HyperParameters"] == {"num_round": "30", "table": "DB.S.T", "target": "Y"}
    assert sent["Tags"] == [{"Key": "team", "Value": "ml"}]
    assert "InputDataConfig" not in sent
    assert not recorder.sent("CreateBucket") and not recorder.sent("PutObject")  # nothing uploaded
    assert recorder.sent("DescribeTrainingJob")
    out = capsys.readouterr().out
    assert f"training job: {sent['TrainingJobName']}" in out and "status: Completed" in out
    assert SECRET_VALUE not in json.dumps(recorder.calls)


def test_dry_run_prints_what_train_sends(settings_file: Path, session: boto3.Session, recorder: Recorder,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--settings", str(settings_file), "--dry-run"], session=session) == 0
    printed = json.loads(capsys.readouterr().out)
    (built,) = recorder.sent("CreateTrainingJob")  # the dry run goes through the session it is given
    assert [name for name, _ in recorder.calls] == ["CreateTrainingJob"] and not recorder.completed
    assert printed == built
    train(load_settings(settings_file), session=session)
    sent = recorder.sent("CreateTrainingJob")[-1]
    assert recorder.completed[0] == "CreateTrainingJob"  # now sent and answered
    for request in (printed, sent):
        request.pop("TrainingJobName")
    assert printed == sent


def test_two_submissions_in_the_same_second_get_different_names(settings_file: Path, session: boto3.Session,
                                                                recorder: Recorder) -> None:
    settings = load_settings(settings_file)
    first = train(settings, session=session).job_name
    second = train(settings, session=session).job_name
    assert first != second
    assert first.rsplit("-", 1)[0] != second.rsplit("-", 1)[0]  # apart even with the same timestamp
    assert [p["TrainingJobName"] for p in recorder.sent("CreateTrainingJob")] == [first, second]
    a = tune(settings, session=session).job_name
    b = tune(settings, session=session).job_name
    assert a != b and len(a) <= 32


def test_tune_sends_ranges_metrics_and_the_trial_definition(settings_file: Path, session: boto3.Session,
                                                            recorder: Recorder) -> None:
    assert main(["tune", "--settings", str(settings_file), "--job-name", "xgb-moto-tune-1"], session=session) == 0
    (sent,) = recorder.sent("CreateHyperParameterTuningJob")
    assert sent["HyperParameterTuningJobName"] == "xgb-moto-tune-1"
    config = sent["HyperParameterTuningJobConfig"]
    objective = config["HyperParameterTuningJobObjective"]
    definition = sent["TrainingJobDefinition"]
    assert objective == {"Type": "Minimize", "MetricName": "validation:rmse"}
    assert objective["MetricName"] in {m["Name"] for m in definition["AlgorithmSpecification"]["MetricDefinitions"]}
    ranges = {r["Name"] for kind in config["ParameterRanges"].values() for r in kind}
    assert {"eta", "max_depth"} <= ranges and "num_round" not in ranges
    assert definition["StaticHyperParameters"]["num_round"] == "30"  # set in [hyperparameters]: every trial's
    assert definition["ResourceConfig"]["InstanceCount"] == 2
    assert_job_definition(definition, load_settings(settings_file).data.snowflake_secret_id)
    assert sent["Tags"] == [{"Key": "team", "Value": "ml"}]
    described = session.client("sagemaker").describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="xgb-moto-tune-1")
    assert described["HyperParameterTuningJobName"] == "xgb-moto-tune-1"


def test_pipeline_upsert_and_start(settings_file: Path, session: boto3.Session, recorder: Recorder,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--settings", str(settings_file), "--upsert", "--start"]
    assert main(["pipeline", *argv], session=session) == 0
    assert main(["pipeline", *argv], session=session) == 0  # the second upsert updates
    created = recorder.sent("CreatePipeline")[0]  # the second upsert tries to create, then updates
    assert recorder.sent("UpdatePipeline") and len(recorder.sent("StartPipelineExecution")) == 2
    assert created["PipelineName"] == "xgb-moto-tuning" and created["RoleArn"].endswith(":role/Training")
    assert created["Tags"] == [{"Key": "team", "Value": "ml"}]
    definition = json.loads(created["PipelineDefinition"])
    assert {p["Name"] for p in definition["Parameters"]} == {"InstanceType", "InstanceCount", "TrainingImage"}
    (step,) = definition["Steps"]
    trial = step["Arguments"]["TrainingJobDefinition"]
    assert trial["ResourceConfig"]["InstanceCount"] == {"Get": "Parameters.InstanceCount"}
    assert_job_definition(trial, load_settings(settings_file).data.snowflake_secret_id)
    assert "execution: arn:aws:sagemaker:" in capsys.readouterr().out


@pytest.mark.parametrize(("command", "overrides", "message"), [
    ("train", ["role=TrainingRole"], "'role' must be an IAM role ARN"),
    ("train", ["compute.max_wait_seconds=0"], "'compute.max_wait_seconds' must be an integer"),
    ("tune", ["network.security_group_ids=[]"], "'network.subnets' is set but 'network.security_group_ids'"),
    ("tune", ["hyperparameters.eval_metric=mae"], "'tuning.objective' is 'validation:rmse', which no metric"),
    ("pipeline", ["hyperparameters.eval_metric=mae"], "which no metric definition produces"),
])
def test_settings_errors_stop_before_any_aws_call(settings_file: Path, session: boto3.Session, recorder: Recorder,
                                                  capsys: pytest.CaptureFixture[str], command: str,
                                                  overrides: list[str], message: str) -> None:
    argv = [command, "--settings", str(settings_file), *[f"--set={o}" for o in overrides]]
    argv += ["--upsert", "--start"] if command == "pipeline" else []
    assert main(argv, session=session) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not recorder.calls


def test_spot_without_max_wait_stops_before_any_aws_call(settings_file: Path, session: boto3.Session,
                                                         recorder: Recorder, capsys: pytest.CaptureFixture[str]) -> None:
    settings_file.write_text(settings_file.read_text().replace("max_wait_seconds = 7200\n", ""))
    assert main(["train", "--settings", str(settings_file)], session=session) == 1
    assert "needs a max wait" in capsys.readouterr().err
    assert not recorder.calls


def test_missing_settings_file(session: boto3.Session, recorder: Recorder, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--settings", str(tmp_path / "absent.toml")], session=session) == 1
    assert "copy" in capsys.readouterr().err and not recorder.calls


IAM_ACTIONS = json.loads((Path(__file__).resolve().parents[2] / "iam" / "actions.json").read_text())
NOT_CALLED = "not called by launch/:"
FOLLOWED_WITH_A_STUB = {"sagemaker:DescribePipelineExecution", "sagemaker:ListPipelineExecutionSteps",
                        "sagemaker:DescribeEndpointConfig", "sagemaker:UpdateEndpoint", "sagemaker:DeleteEndpointConfig",
                        "sagemaker:DeleteModel"}
"""pipeline --start --wait calls the first two; moto has no ListPipelineExecutionSteps, so tests/unit/test_follower.py
drives them through botocore's Stubber instead of this run. deploy to an existing endpoint calls the others;
moto has no UpdateEndpoint, so tests/unit/test_deploy_update.py drives them through the Stubber."""
"""How iam/actions.json marks a grant the launcher keeps for people (stopping a job) though it never calls it."""


def _no_trials(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
    """moto has no ListTrainingJobsForHyperParameterTuningJob: answer it with no trials (still recorded)."""
    return AWSResponse("https://moto", 200, {}, None), {"TrainingJobSummaries": []}


def test_score_sends_a_job_running_the_score_command_on_the_training_jobs_model(
        settings_file: Path, session: boto3.Session, recorder: Recorder, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--settings", str(settings_file)], session=session) == 0
    (trained,) = recorder.sent("CreateTrainingJob")
    model = session.client("sagemaker").describe_training_job(
        TrainingJobName=trained["TrainingJobName"])["ModelArtifacts"]["S3ModelArtifacts"]
    assert main(["score", "--settings", str(settings_file), "--training-job", trained["TrainingJobName"],
                 "--source", "DB.S.T", "--target", "DB.S.SCORES", "--keys", "ID", "--wait"], session=session) == 0
    scoring = recorder.sent("CreateTrainingJob")[1]
    assert scoring["AlgorithmSpecification"]["ContainerArguments"] == ["score"]
    assert scoring["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == model
    assert scoring["HyperParameters"] == {"source_table": "DB.S.T", "target_table": "DB.S.SCORES", "key_columns": "ID",
                                          "model_name": trained["TrainingJobName"]}  # the target's MODEL_NAME
    assert scoring["Environment"][contract.SECRET_ID_ENV] == trained["Environment"][contract.SECRET_ID_ENV]
    out = capsys.readouterr().out
    assert f"scoring job: {scoring['TrainingJobName']}" in out and "status: Completed" in out


def test_every_sagemaker_call_of_the_launcher_is_granted_under_the_job_prefix(
        settings_file: Path, session: boto3.Session, recorder: Recorder) -> None:
    actions: set[str] = set()
    session.events.register("provide-client-params.*.*", lambda model, **_: actions.add(
        f"{model.service_model.signing_name}:{model.name}"))
    session.events.register("before-call.sagemaker.ListTrainingJobsForHyperParameterTuningJob", _no_trials)
    argv = ["--settings", str(settings_file)]
    assert main(["train", *argv, "--wait"], session=session) == 0
    assert main(["tune", *argv, "--wait"], session=session) == 0
    for _ in range(2):  # create, then update (and re-tag) the pipeline
        assert main(["pipeline", *argv, "--upsert", "--start"], session=session) == 0
    job = recorder.sent("CreateTrainingJob")[0]["TrainingJobName"]  # moto's jobs complete at once
    smoke = settings_file.with_name("smoke.csv")
    smoke.write_text("A,B\n1,2\n")
    assert main(["deploy", *argv, "--training-job", job, "--wait", "--smoke-csv", str(smoke)], session=session) == 0
    assert main(["score", *argv, "--training-job", job, "--source", "DB.S.T", "--target", "DB.S.SCORES", "--keys", "ID",
                 "--wait"], session=session) == 0

    granted = IAM_ACTIONS["launcher-user-policy.json"]
    called = {a for a in actions if a.startswith("sagemaker:")}
    assert called - set(granted) == set(), "add these to iam/actions.json and iam/launcher-user-policy.json"
    kept = {a for a in granted if a.startswith("sagemaker:") and a not in called
            and a != "sagemaker:CallMlflowAppApi" and a not in FOLLOWED_WITH_A_STUB}
    assert kept == {a for a, why in granted.items() if why.startswith(NOT_CALLED)}, \
        "a SageMaker grant the launcher never calls: remove it, or say why it is kept"
    # The launcher's grants name only resources under the job prefix: every name it sends starts with it.
    names = [params[key] for _, params in recorder.calls for key in
             ("TrainingJobName", "HyperParameterTuningJobName", "PipelineName", "ModelName", "EndpointConfigName",
              "EndpointName") if key in params]
    assert names and all(name.startswith("xgb-moto-") for name in names), names


# ---------------------------------------------------------------------------------------------
# --wait: the follower. moto's training jobs are Completed at once, so the job's states come from
# botocore's Stubber (each response checked against the service model); the logs are moto's.

JOB = "xgb-moto-follow-1"
JOB_ARN = f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{JOB}"


def _described(status: str, secondary: str, *transitions: tuple[str, str]) -> dict[str, Any]:
    started = datetime(2026, 11, 29, tzinfo=timezone.utc)
    return {"TrainingJobName": JOB, "TrainingJobArn": JOB_ARN, "ModelArtifacts": {"S3ModelArtifacts": ""},
            "TrainingJobStatus": status, "SecondaryStatus": secondary, "CreationTime": started,
            "HyperParameters": {"num_round": "30", "table": "DB.S.T", "target": "Y"},
            "Environment": {contract.SECRET_ID_ENV: "arn:aws:secretsmanager:us-east-1:1:secret:sf"},
            "AlgorithmSpecification": {"TrainingInputMode": "File", "TrainingImage": "img"},
            "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 2, "VolumeSizeInGB": 30},
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
            "SecondaryStatusTransitions": [{"Status": s, "StartTime": started, "StatusMessage": m}
                                           for s, m in transitions]}


def _stubbed_sagemaker(states: list[dict[str, Any]]) -> tuple[Any, Stubber]:
    client = boto3.client("sagemaker", region_name="us-east-1")
    stub = Stubber(client)
    for state in states:
        stub.add_response("describe_training_job", state, {"TrainingJobName": JOB})
    stub.activate()
    return client, stub


class Arrivals:
    """A ``sleep`` that puts the next batch of log events while the follower waits (none before)."""

    def __init__(self, logs: Any, batches: list[list[tuple[str, int, str]]]) -> None:
        self.logs, self.batches = logs, list(batches)
        logs.create_log_group(logGroupName=LOG_GROUP)

    def put(self) -> None:
        for host, ms, message in self.batches.pop(0) if self.batches else []:
            stream = f"{JOB}/{host}-1764374400"
            if not self.logs.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix=stream)["logStreams"]:
                self.logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
            self.logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=stream,
                                     logEvents=[{"timestamp": BASE_MS + ms, "message": message}])

    def __call__(self, seconds: float) -> None:
        self.put()


BASE_MS = int(time.time() * 1000) - 3_600_000  # CloudWatch refuses events older than 14 days
ROUND = "2026-11-29 10:00:00,000 [algo-1] INFO training.train.rounds: [{}]\ttrain-rmse:{}\tvalidation-rmse:{}"


def test_wait_shows_status_changes_every_hosts_lines_and_round_progress(aws: None) -> None:
    logs = boto3.client("logs", region_name="us-east-1")
    arrivals = Arrivals(logs, [
        [("algo-1", 0, "algo-1 starts"), ("algo-2", 500, "algo-2 starts")],
        [("algo-1", 60_000, ROUND.format(0, 0.9, 0.95)), ("algo-2", 61_000, "algo-2 shard read"),
         ("algo-1", 120_000, ROUND.format(1, 0.8, 0.70))],
        [("algo-1", 180_000, ROUND.format(2, 0.7, 0.75)), ("algo-1", 181_000, "final metrics: validation-rmse 0.75 after 3 rounds")],
    ])
    sagemaker, stub = _stubbed_sagemaker([
        _described("InProgress", "Starting", ("Starting", "Launching requested ML instances")),
        _described("InProgress", "Starting", ("Starting", "Launching requested ML instances")),
        _described("InProgress", "Training", ("Starting", "Launching"), ("Training", "Training in progress.")),
        _described("Completed", "Completed", ("Training", "Training in progress."), ("Completed", "Done")),
    ])
    shown: list[str] = []
    desc = follow_training(sagemaker, logs, JOB, echo=shown.append, sleep=arrivals)
    stub.assert_no_pending_responses()
    assert desc["TrainingJobStatus"] == "Completed"
    assert shown == [
        "status: InProgress / Starting - Launching requested ML instances",
        "algo-1 | algo-1 starts",  # Starting again: not shown twice
        "algo-2 | algo-2 starts",
        "status: InProgress / Training - Training in progress.",
        "algo-1 | " + ROUND.format(0, 0.9, 0.95),
        "algo-2 | algo-2 shard read",
        "algo-1 | " + ROUND.format(1, 0.8, 0.70),
        "round 2/30, best validation-rmse 0.7 at [1], 2m00s elapsed, ETA 28m00s",
        "algo-1 | " + ROUND.format(2, 0.7, 0.75),
        "algo-1 | final metrics: validation-rmse 0.75 after 3 rounds",
        "round 3/30, best validation-rmse 0.7 at [1], 3m00s elapsed, ETA 27m00s",
    ]
    assert not any("secretsmanager" in line for line in shown)  # the environment is never shown


def test_ctrl_c_stops_following_not_the_job_and_says_how_to_stop_it(aws: None,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    logs = boto3.client("logs", region_name="us-east-1")
    sagemaker, _ = _stubbed_sagemaker([_described("InProgress", "Training")])

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    shown: list[str] = []
    code = run(lambda: follow_training(sagemaker, logs, JOB, echo=shown.append, sleep=interrupted) and 0)
    assert code == 130 and shown == ["status: InProgress / Training"]
    assert capsys.readouterr().err == ("stopped following; the job keeps running. To stop it: aws sagemaker "
                                       f"stop-training-job --training-job-name {JOB} --region us-east-1\n")
