"""``deploy`` end to end against moto (SageMaker, S3, sagemaker-runtime) and, for a registered model, a
real local ``mlflow server``: the model the project's code logged and registered is downloaded,
tarred with its files at the root (what /opt/ml/model must hold), uploaded under the output
path, and named by the requests; ``--wait`` follows the endpoint and invokes it with the
model's input example. Every call is recorded and must be granted to the launcher user."""

from __future__ import annotations

import ast
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pyarrow as pa
import pytest
import xgboost as xgb
from moto import mock_aws

from launch.cli import main
from launch.commands.deploy import Source, deploy
from launch.endpoints import Variant
from launch.local.services import free_port
from launch.registry import register
from launch.settings import settings_from_dict
from tests.integration.mlflow_server import MlflowServer
from tests.integration.test_launcher_moto import Recorder
from training import contract
from training.model.booster import embed_plan
from training.read.columns import FEATURE, LABEL, ColumnPlan, ColumnSpec

IAM = Path(__file__).resolve().parents[2] / "iam"
SETTINGS = {
    "region": "us-east-1", "role": "arn:aws:iam::123456789012:role/Training",
    "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/xgb:7", "job_prefix": "xgb-moto",
    "data": {"table": "T", "target": "Y", "snowflake_secret_id": "sf"},
    "output": {"s3_path": "s3://bucket/out"}, "tags": {"team": "ml"},
}
PLAN = ColumnPlan((ColumnSpec("x", "REAL", "numeric", FEATURE), ColumnSpec("city", "TEXT", "categorical", FEATURE),
                   ColumnSpec("y", "REAL", "numeric", LABEL)), {"city": ("lima", "oslo")})


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[boto3.Session, Recorder]]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        session.client("s3").create_bucket(Bucket="bucket")
        recorder = Recorder(session)
        recorder.services = []
        session.events.register("provide-client-params.*.*", lambda model, **_: recorder.services.append(
            (model.service_model.signing_name, model.name)))
        yield session, recorder


def _granted() -> dict[str, str]:
    return json.loads((IAM / "actions.json").read_text())["launcher-user-policy.json"]


def _assert_granted(recorder: Recorder) -> None:
    """Each call (a multipart upload's parts are s3:PutObject) is in the launcher user's grants."""
    granted = _granted()
    for service, operation in recorder.services:
        action = "s3:PutObject" if service == "s3" and "Upload" in operation else f"{service}:{operation}"
        assert action in granted, f"{action} is called but not granted in iam/actions.json"


def _training_job(session: boto3.Session, name: str = "xgb-moto-job-1") -> str:
    """A training job in moto (Completed at once, with a model.tar.gz URL)."""
    session.client("sagemaker").create_training_job(
        TrainingJobName=name, RoleArn=SETTINGS["role"],
        AlgorithmSpecification={"TrainingImage": SETTINGS["image"], "TrainingInputMode": "File"},
        OutputDataConfig={"S3OutputPath": "s3://bucket/out"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
        StoppingCondition={"MaxRuntimeInSeconds": 60})
    return name


def test_a_training_jobs_model_deploys_serverless_and_waits(aws: Any, capsys: pytest.CaptureFixture[str]) -> None:
    session, recorder = aws
    sagemaker = session.client("sagemaker")
    _training_job(session)
    recorder.calls.clear()
    recorder.services.clear()
    settings = settings_from_dict(SETTINGS)
    done = deploy(settings, Source(training_job="xgb-moto-job-1"), Variant(serverless_memory_mb=2048),
                  wait=True, session=session, poll_seconds=0, sleep=lambda _: None)
    assert done.status == "InService" and done.smoke is None  # a job's model has no input example
    _assert_granted(recorder)  # before this test's own Describe* calls below
    model = sagemaker.describe_model(ModelName=done.names.model)
    url = model["PrimaryContainer"]["ModelDataUrl"]
    assert url == sagemaker.describe_training_job(TrainingJobName="xgb-moto-job-1")["ModelArtifacts"]["S3ModelArtifacts"]
    assert model["PrimaryContainer"]["Image"] == SETTINGS["image"]
    config = recorder.sent("CreateEndpointConfig")[0]
    assert config["ProductionVariants"][0]["ServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 5}
    assert [name for name, _ in recorder.calls][:5] == ["DescribeTrainingJob", "DescribeEndpoint", "CreateModel",
                                                       "CreateEndpointConfig", "CreateEndpoint"]
    assert done.names.endpoint == "xgb-moto-job"
    # the same endpoint again: an update; its dry run reads the endpoint as moto holds it and creates nothing
    # (the update itself: tests/unit/test_deploy_update.py, since moto has no UpdateEndpoint)
    models = len(sagemaker.list_models()["Models"])
    recorder.calls.clear()
    again = deploy(settings, Source(training_job="xgb-moto-job-1"), Variant(), dry_run=True, session=session)
    assert list(again.requests) == ["CreateModel", "CreateEndpointConfig", "UpdateEndpoint"]
    assert again.requests["UpdateEndpoint"] == {"EndpointName": "xgb-moto-job",
                                                "EndpointConfigName": again.names.config}
    assert again.retire == (("DeleteEndpointConfig", {"EndpointConfigName": done.names.config}),
                            ("DeleteModel", {"ModelName": done.names.model}))
    assert [name for name, _ in recorder.calls] == ["DescribeTrainingJob", "DescribeEndpoint",
                                                    "DescribeEndpointConfig"]
    assert len(sagemaker.list_models()["Models"]) == models


def _booster() -> xgb.Booster:
    rng = np.random.default_rng(1)
    x = np.c_[rng.normal(size=200), rng.integers(0, 2, 200)].astype(np.float32)
    data = xgb.DMatrix(x, x[:, 0] + x[:, 1], feature_names=PLAN.xgboost_feature_names,
                       feature_types=PLAN.feature_types, enable_categorical=True)
    booster = xgb.train({"max_depth": 2}, data, 5)
    embed_plan(booster, PLAN)  # as the job does before the first round
    return booster


@pytest.fixture(scope="module")
def registered(shared_tracking: MlflowServer) -> MlflowServer:
    """The session's real mlflow server, now holding ``housing`` version 1 (@champion), logged by training.tracking.pyfunc."""
    import mlflow

    from training.tracking import pyfunc
    from training.tracking.mlflow_client import configure_client

    client = configure_client(shared_tracking.uri)
    experiment = client.create_experiment("deploy")
    run = client.create_run(experiment)
    example = pa.table({"x": pa.array([0.5, None], pa.float64()), "city": ["oslo", None]})
    pyfunc.log_model(client, run.info.run_id, experiment, "model", _booster(), PLAN, example, {})
    client.set_terminated(run.info.run_id)
    register(shared_tracking.uri, "housing", run_id=run.info.run_id)
    mlflow.set_tracking_uri(shared_tracking.uri)
    return shared_tracking


@pytest.mark.slow
def test_a_registered_model_is_uploaded_deployed_and_invoked_with_its_input_example(
        aws: Any, registered: MlflowServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    session, recorder = aws
    settings = tmp_path / "settings.toml"
    settings.write_text(_toml(SETTINGS))
    code = main(["deploy", "--settings", str(settings), "--model-name", "housing", "--tracking-uri", registered.uri,
                 "--instance-type", "ml.c5.large", "--wait"], session=session)
    out = capsys.readouterr().out
    assert code == 0, out
    _assert_granted(recorder)
    assert "status: InService" in out and "smoke invocation:" in out
    (create,) = recorder.sent("CreateModel")
    url = create["PrimaryContainer"]["ModelDataUrl"]
    assert url == f"s3://bucket/out/{create['ModelName']}/model.tar.gz"
    archive = session.client("s3").get_object(Bucket="bucket", Key=url.removeprefix("s3://bucket/"))["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        members = tar.getnames()
    assert contract.MLFLOW_MODEL_FILE in members and f"artifacts/{contract.MODEL_FILE}" in members
    (invoke,) = recorder.sent("InvokeEndpoint")
    body = json.loads(ast.literal_eval(invoke["Body"]))  # the recorder keeps bytes as their repr
    assert body["dataframe_split"]["columns"] == ["x", "city"] and body["dataframe_split"]["data"][1] == [None, None]
    (config,) = recorder.sent("CreateEndpointConfig")
    assert config["ProductionVariants"][0]["InstanceType"] == "ml.c5.large"


@pytest.mark.slow
def test_a_registered_model_is_uploaded_and_scored_by_a_sagemaker_job_with_its_lineage(
        aws: Any, registered: MlflowServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """score --model-name: the version @champion, downloaded, tarred and uploaded beside the job's output, is the
    scoring job's model channel; its name, version and run fill the target's lineage columns."""
    from mlflow import MlflowClient

    session, recorder = aws
    settings = tmp_path / "settings.toml"
    settings.write_text(_toml(SETTINGS))
    code = main(["score", "--settings", str(settings), "--model-name", "housing", "--tracking-uri", registered.uri,
                 "--source", "DB.S.T", "--target", "DB.S.SCORES", "--keys", "ID"], session=session)
    assert code == 0, capsys.readouterr()
    _assert_granted(recorder)
    (job,) = recorder.sent("CreateTrainingJob")
    url = job["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"]
    assert url == f"s3://bucket/out/{job['TrainingJobName']}/model/model.tar.gz"
    archive = session.client("s3").get_object(Bucket="bucket", Key=url.removeprefix("s3://bucket/"))["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        assert f"artifacts/{contract.MODEL_FILE}" in tar.getnames()  # the container finds it after unpacking
    version = MlflowClient(registered.uri).get_model_version_by_alias("housing", "champion")
    assert job["HyperParameters"] == {"source_table": "DB.S.T", "target_table": "DB.S.SCORES", "key_columns": "ID",
                                      "model_name": "housing", "model_version": str(version.version),
                                      "run_id": version.run_id}
    assert job["AlgorithmSpecification"]["ContainerArguments"] == ["score"]


@pytest.mark.slow
def test_dry_run_resolves_the_alias_and_creates_nothing(aws: Any, registered: MlflowServer,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    session, recorder = aws
    done = deploy(settings_from_dict(SETTINGS), Source(model_name="housing", alias="champion",
                                                       tracking_uri=registered.uri),
                  Variant(), dry_run=True, session=session)
    assert set(done.requests) == {"CreateModel", "CreateEndpointConfig", "CreateEndpoint"} and not done.retire
    assert recorder.calls == [("DescribeEndpoint", {"EndpointName": "xgb-moto-housing"})]  # a read: none exists
    assert done.names.endpoint == "xgb-moto-housing"


NO_SIGN_IN = {**SETTINGS, "data": {"table": "T", "target": "Y"}}
"""Settings that name no way to sign in to Snowflake: enough for an endpoint, which never reads the table."""


def test_deploy_takes_settings_without_a_snowflake_sign_in(aws: Any, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    session, _ = aws
    settings = tmp_path / "settings.toml"
    settings.write_text(_toml(NO_SIGN_IN))
    job = _training_job(session)
    assert main(["deploy", "--settings", str(settings), "--training-job", job, "--dry-run"], session=session) == 0
    assert '"CreateEndpoint"' in capsys.readouterr().out
    # a job reads the table: train still needs a way to sign in
    assert main(["train", "--settings", str(settings), "--dry-run"], session=session) == 1
    assert "one way to sign in to Snowflake" in capsys.readouterr().err


@pytest.mark.slow
def test_deploy_reads_the_tracking_uri_from_settings_without_a_snowflake_sign_in(
        aws: Any, registered: MlflowServer, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    session, _ = aws
    monkeypatch.delenv(contract.TRACKING_URI_ENV, raising=False)
    monkeypatch.delenv(contract.EXPERIMENT_ENV, raising=False)
    settings = tmp_path / "settings.toml"
    settings.write_text(_toml({**NO_SIGN_IN, "mlflow": {"tracking_uri": registered.uri}}))
    code = main(["deploy", "--settings", str(settings), "--model-name", "housing", "--dry-run"], session=session)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert '"CreateModel"' in captured.out


def _deploy_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], *flags: str) -> str:
    """``deploy --dry-run`` with ``flags``: it must fail with exactly one ``error:`` line, returned."""
    settings = tmp_path / "settings.toml"
    settings.write_text(_toml(SETTINGS))
    assert main(["deploy", "--settings", str(settings), "--dry-run", *flags]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.slow
@pytest.mark.parametrize(("flags", "says"), [
    (["--alias", "retired"], "error: registered model 'housing' has no alias 'retired': register one"),
    (["--version", "99"], "error: registered model 'housing' has no version 99: register one"),
])
def test_a_missing_alias_or_version_is_named_as_such(registered: MlflowServer, tmp_path: Path, flags: list[str],
                                                     says: str, capsys: pytest.CaptureFixture[str]) -> None:
    err = _deploy_error(tmp_path, capsys, "--model-name", "housing", "--tracking-uri", registered.uri, *flags)
    assert err.startswith(says)


@pytest.mark.slow
@pytest.mark.parametrize("flags", [[], ["--version", "1"]])
def test_a_registered_model_that_does_not_exist_is_named_as_such(registered: MlflowServer, tmp_path: Path,
                                                                 flags: list[str],
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    err = _deploy_error(tmp_path, capsys, "--model-name", "hoursing", "--tracking-uri", registered.uri, *flags)
    assert err.startswith(f"error: no registered model 'hoursing' in MLflow at {registered.uri}: check --model-name")


MLFLOW_ARN = "arn:aws:sagemaker:us-east-1:123456789012:mlflow-tracking-server/main"


@pytest.mark.parametrize(("environment", "cause"), [
    ({}, "NoCredentialsError"),
    ({"AWS_ACCESS_KEY_ID": "AKIDDISTINCTIVE0042", "AWS_SESSION_TOKEN": "tok-distinctive-0042"},
     "PartialCredentialsError"),
])
def test_missing_aws_credentials_for_an_mlflow_arn_are_named_as_such(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        environment: dict[str, str], cause: str) -> None:
    """Today's first user saw "has no alias 'champion'" here: sagemaker-mlflow could not sign the request."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "SAGEMAKER_MLFLOW_ASSUME_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("SAGEMAKER_MLFLOW_CUSTOM_ENDPOINT", f"http://127.0.0.1:{free_port()}")  # nothing leaves here
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    err = _deploy_error(tmp_path, capsys, "--model-name", "housing", "--tracking-uri", MLFLOW_ARN)
    assert err.startswith(f"error: no usable AWS credentials to sign requests to MLflow at {MLFLOW_ARN} ({cause}:")
    assert "sign in (aws sso login" in err and "alias" not in err
    assert "DISTINCTIVE" not in err and "distinctive" not in err  # what is set is never echoed


def test_an_mlflow_server_that_does_not_answer_is_named_as_such(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    uri = f"http://user:pa55word@127.0.0.1:{free_port()}"
    err = _deploy_error(tmp_path, capsys, "--model-name", "housing", "--tracking-uri", uri)
    assert err.startswith(f"error: MLflow at {uri.replace('user:pa55word@', '')} did not answer (connection refused): "
                          "check --tracking-uri")
    assert "pa55word" not in err


def test_an_unfinished_training_job_is_refused_in_one_line(aws: Any, capsys: pytest.CaptureFixture[str],
                                                          tmp_path: Path) -> None:
    session, _ = aws
    settings = tmp_path / "settings.toml"
    settings.write_text(_toml(SETTINGS))
    code = main(["deploy", "--settings", str(settings), "--training-job", "xgb-moto-missing"], session=session)
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: AWS:") and err.count("\n") == 1


def _toml(values: dict[str, Any], section: str = "") -> str:
    plain = [f"{k} = {json.dumps(v)}" for k, v in values.items() if not isinstance(v, dict)]
    tables = [_toml(v, f"{section}{k}") for k, v in values.items() if isinstance(v, dict)]
    head = [f"[{section}]"] if section else []
    return "\n".join(head + plain + [""] + tables)
