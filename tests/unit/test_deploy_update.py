"""``deploy`` to an endpoint that exists: it is updated (UpdateEndpoint to a new model and config), followed to
InService on the new config, invoked with the smoke rows, and only then are the config and models it ran before
deleted; an update that fails, rolls back or answers the smoke call with an error deletes nothing. moto has no
UpdateEndpoint, so botocore's Stubber plays SageMaker: each request must come in this order with these
parameters, each response is checked against the service model, and a call nobody queued (a delete that should
not happen) fails the test. The create path runs against moto: tests/integration/test_deploy_moto.py."""

from __future__ import annotations

import functools
import io
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from launch import endpoints
from launch.cli import main
from launch.commands.deploy import Source, deploy
from launch.endpoints import Variant
from launch.follower import StoppedFollowing
from launch.settings import settings_from_dict
from training.errors import ConfigError, UserError

REPO = Path(__file__).resolve().parents[2]
RAW: dict[str, Any] = {
    "region": "us-east-1", "role": "arn:aws:iam::123456789012:role/Training",
    "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/xgb:7", "job_prefix": "xgb-test",
    "data": {"table": "T", "target": "Y"}, "output": {"s3_path": "s3://bucket/out"}, "tags": {"team": "ml"},
}
SETTINGS = settings_from_dict(RAW, sign_in=False)
JOB = "xgb-test-job-1"
ENDPOINT = "xgb-test-job"  # <job_prefix>-<label>; a training job's label is "job"
OLD = "xgb-test-job-261101090000"  # the endpoint config (and model) of the last deploy
NOW = datetime(2026, 11, 30, 10, 0, 0, tzinfo=timezone.utc)
NEW = "xgb-test-job-261130100000"  # this deploy's model and endpoint config, stamped NOW
ARN = "arn:aws:sagemaker:us-east-1:123456789012"
WHEN = datetime(2026, 11, 1, tzinfo=timezone.utc)
SMOKE = b"x,city\n0.5,oslo\n"
ANSWER = b'{"predictions": [{"prediction": 0.7}]}'


class StubbedSession:
    """What ``deploy`` takes as its boto3 session: one client per service, each behind botocore's Stubber."""

    def __init__(self) -> None:
        self.clients = {name: boto3.client(name, region_name="us-east-1", aws_access_key_id="testing",
                                           aws_secret_access_key="testing") for name in ("sagemaker", "sagemaker-runtime")}
        self.stubs = {name: Stubber(client) for name, client in self.clients.items()}
        self.sagemaker, self.runtime = self.stubs["sagemaker"], self.stubs["sagemaker-runtime"]
        self.operations: list[str] = []
        for client in self.clients.values():
            client.meta.events.register("provide-client-params.*.*", self._record)
        for stub in self.stubs.values():
            stub.activate()

    def _record(self, model: Any, **_: Any) -> None:
        self.operations.append(f"{model.service_model.signing_name}:{model.name}")

    def client(self, name: str) -> Any:
        return self.clients[name]

    def assert_done(self) -> None:
        for stub in self.stubs.values():
            stub.assert_no_pending_responses()
        granted = json.loads((REPO / "iam" / "actions.json").read_text())["launcher-user-policy.json"]
        assert set(self.operations) <= set(granted), "every call must be granted to the launcher user"


@pytest.fixture(autouse=True)
def stamped_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """The new model and config are named for this second: NEW."""
    monkeypatch.setattr(endpoints, "names", functools.partial(endpoints.names, now=NOW))


def _endpoint(status: str, config: str, reason: str | None = None) -> dict[str, Any]:
    desc = {"EndpointName": ENDPOINT, "EndpointArn": f"{ARN}:endpoint/{ENDPOINT}", "EndpointConfigName": config,
            "EndpointStatus": status, "CreationTime": WHEN, "LastModifiedTime": WHEN}
    return {**desc, "FailureReason": reason} if reason else desc


def _stub_until_update(session: StubbedSession, endpoint_status: str = "InService", *, creates: bool = True) -> None:
    """The job's model, the endpoint as it is (on OLD), and the new model and config: what precedes UpdateEndpoint
    (``creates=False``: a dry run's reads only)."""
    stub = session.sagemaker
    stub.add_response("describe_training_job", {
        "TrainingJobName": JOB, "TrainingJobArn": f"{ARN}:training-job/{JOB}", "TrainingJobStatus": "Completed",
        "SecondaryStatus": "Completed", "CreationTime": WHEN,
        "ModelArtifacts": {"S3ModelArtifacts": f"s3://bucket/out/{JOB}/output/model.tar.gz"},
        "AlgorithmSpecification": {"TrainingInputMode": "File", "TrainingImage": RAW["image"]},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": 60}}, {"TrainingJobName": JOB})
    stub.add_response("describe_endpoint", _endpoint(endpoint_status, OLD), {"EndpointName": ENDPOINT})
    if endpoint_status not in ("InService", "UpdateRollbackFailed"):
        return
    stub.add_response("describe_endpoint_config", {
        "EndpointConfigName": OLD, "EndpointConfigArn": f"{ARN}:endpoint-config/{OLD}", "CreationTime": WHEN,
        "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": OLD, "InstanceType": "ml.m5.large",
                                "InitialInstanceCount": 1}]}, {"EndpointConfigName": OLD})
    if not creates:
        return
    stub.add_response("create_model", {"ModelArn": f"{ARN}:model/{NEW}"}, {
        "ModelName": NEW, "ExecutionRoleArn": RAW["role"], "PrimaryContainer": ANY, "Tags": ANY})
    stub.add_response("create_endpoint_config", {"EndpointConfigArn": f"{ARN}:endpoint-config/{NEW}"}, {
        "EndpointConfigName": NEW, "ProductionVariants": ANY, "Tags": ANY})


def _stub_update(session: StubbedSession, *ends: dict[str, Any]) -> None:
    """UpdateEndpoint to NEW, then what DescribeEndpoint says while --wait follows it."""
    session.sagemaker.add_response("update_endpoint", {"EndpointArn": f"{ARN}:endpoint/{ENDPOINT}"},
                                   {"EndpointName": ENDPOINT, "EndpointConfigName": NEW})
    for desc in ends:
        session.sagemaker.add_response("describe_endpoint", desc, {"EndpointName": ENDPOINT})


def _stub_smoke(session: StubbedSession) -> None:
    session.runtime.add_response(
        "invoke_endpoint", {"Body": StreamingBody(io.BytesIO(ANSWER), len(ANSWER)), "ContentType": "application/json"},
        {"EndpointName": ENDPOINT, "ContentType": "text/csv", "Accept": "application/json", "Body": SMOKE})


def _deploy(session: StubbedSession, tmp_path: Path, **kwargs: Any) -> Any:
    smoke = tmp_path / "smoke.csv"
    smoke.write_bytes(SMOKE)
    echoed: list[str] = []
    kwargs.setdefault("wait", True)
    kwargs.setdefault("sleep", lambda _: None)
    return deploy(SETTINGS, Source(training_job=JOB), Variant(), smoke_csv=smoke, session=session, poll_seconds=0,
                  echo=echoed.append, **kwargs), echoed


def test_an_existing_endpoint_is_updated_and_then_what_it_ran_before_is_deleted(tmp_path: Path) -> None:
    session = StubbedSession()
    _stub_until_update(session)
    _stub_update(session, _endpoint("Updating", OLD), _endpoint("InService", NEW))
    _stub_smoke(session)
    session.sagemaker.add_response("delete_endpoint_config", {}, {"EndpointConfigName": OLD})
    session.sagemaker.add_response("delete_model", {}, {"ModelName": OLD})
    done, echoed = _deploy(session, tmp_path)
    session.assert_done()  # every call above, in this order, and nothing else
    assert list(done.requests) == ["CreateModel", "CreateEndpointConfig", "UpdateEndpoint"]
    assert done.existing == endpoints.Existing("InService", OLD, (OLD,))
    assert done.in_service and done.smoke == ANSWER.decode() and done.retired
    assert "status: Updating" in echoed


def test_an_update_that_rolls_back_deletes_nothing_and_says_so_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    session = StubbedSession()
    _stub_until_update(session)
    # SageMaker could not start the new fleet and went back: in service, on the old config
    _stub_update(session, _endpoint("InService", OLD, "Ping health check failed on the new instances"))
    settings = tmp_path / "settings.toml"
    settings.write_text(_toml(RAW))
    smoke = tmp_path / "smoke.csv"
    smoke.write_bytes(SMOKE)
    code = main(["deploy", "--settings", str(settings), "--training-job", JOB, "--wait", "--smoke-csv", str(smoke)],
                session=session)
    session.assert_done()  # no smoke call, no delete
    captured = capsys.readouterr()
    assert code == 1 and captured.err.count("\n") == 1
    assert captured.err == (f"error: endpoint {ENDPOINT} did not move to endpoint config {NEW}: it is InService on "
                            f"{OLD} (Ping health check failed on the new instances); nothing was deleted, endpoint "
                            f"config {OLD}, model {OLD} are kept\n")
    assert f"endpoint: {ENDPOINT} (model {NEW}), updating from endpoint config {OLD}" in captured.out


@pytest.mark.parametrize("status", ["Failed", "UpdateRollbackFailed"])
def test_a_failed_update_deletes_nothing(tmp_path: Path, status: str) -> None:
    session = StubbedSession()
    _stub_until_update(session)
    _stub_update(session, _endpoint("Updating", OLD), _endpoint(status, NEW, "CannotStartContainerError"))
    done, _ = _deploy(session, tmp_path)
    session.assert_done()  # the follower stopped there: no more DescribeEndpoint, no smoke call, no delete
    assert not done.in_service and not done.retired and done.failure_reason == "CannotStartContainerError"


def test_ctrl_c_while_an_update_is_followed_gives_the_way_back_not_a_delete(tmp_path: Path) -> None:
    session = StubbedSession()
    _stub_until_update(session)
    _stub_update(session, _endpoint("Updating", OLD))

    def interrupted(_: float) -> None:
        raise KeyboardInterrupt

    with pytest.raises(StoppedFollowing) as stopped:
        _deploy(session, tmp_path, sleep=interrupted)
    session.assert_done()
    assert stopped.value.stop_command == (f"aws sagemaker update-endpoint --endpoint-name {ENDPOINT} "
                                          f"--endpoint-config-name {OLD} --region us-east-1")


def test_a_refused_update_deletes_the_model_and_config_it_made_and_keeps_the_endpoints(tmp_path: Path) -> None:
    session = StubbedSession()
    _stub_until_update(session)
    session.sagemaker.add_client_error("update_endpoint", "ValidationException", "Cannot update in-progress endpoint",
                                       expected_params={"EndpointName": ENDPOINT, "EndpointConfigName": NEW})
    session.sagemaker.add_response("delete_endpoint_config", {}, {"EndpointConfigName": NEW})
    session.sagemaker.add_response("delete_model", {}, {"ModelName": NEW})
    with pytest.raises(ClientError, match="Cannot update in-progress endpoint"):
        _deploy(session, tmp_path)
    session.assert_done()


def test_a_failed_smoke_call_after_an_update_deletes_nothing_and_gives_the_way_back(tmp_path: Path) -> None:
    session = StubbedSession()
    _stub_until_update(session)
    _stub_update(session, _endpoint("InService", NEW))
    session.runtime.add_client_error("invoke_endpoint", "ModelError", "Received client error (400): bad row",
                                     http_status_code=424)
    with pytest.raises(UserError, match=rf"failed .*ModelError.*: the previous config {OLD} and its model are kept; "
                                        rf"to go back: aws sagemaker update-endpoint --endpoint-name {ENDPOINT} "
                                        rf"--endpoint-config-name {OLD} --region us-east-1$"):
        _deploy(session, tmp_path)
    session.assert_done()


def test_without_wait_the_update_is_sent_and_what_it_replaces_is_kept_with_the_commands_to_delete_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    session = StubbedSession()
    _stub_until_update(session)
    _stub_update(session)
    settings = tmp_path / "settings.toml"
    settings.write_text(_toml(RAW))
    assert main(["deploy", "--settings", str(settings), "--training-job", JOB], session=session) == 0
    session.assert_done()
    out = capsys.readouterr().out
    assert (f"endpoint config {OLD}, model {OLD} stay until the update is in service; then delete them: "
            f"aws sagemaker delete-endpoint-config --endpoint-config-name {OLD}; "
            f"aws sagemaker delete-model --model-name {OLD}") in out


@pytest.mark.parametrize(("status", "says"), [
    ("Updating", f"endpoint {ENDPOINT} is Updating: wait until it is InService"),
    ("Failed", f"endpoint {ENDPOINT} is Failed and cannot be updated: delete it first"),
])
def test_an_endpoint_that_cannot_be_updated_now_is_refused_before_anything_is_created(
        tmp_path: Path, status: str, says: str) -> None:
    session = StubbedSession()
    _stub_until_update(session, endpoint_status=status)
    with pytest.raises(ConfigError, match=f"^{says}"):
        _deploy(session, tmp_path)
    session.assert_done()


@pytest.mark.parametrize("status", ["InService", "UpdateRollbackFailed"])  # AWS's remedy for the latter: an update
def test_the_dry_run_of_an_update_prints_every_request_in_order_and_sends_only_the_reads(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], status: str) -> None:
    session = StubbedSession()
    _stub_until_update(session, status, creates=False)
    settings = tmp_path / "settings.toml"
    settings.write_text(_toml(RAW))
    assert main(["deploy", "--settings", str(settings), "--training-job", JOB, "--dry-run"], session=session) == 0
    session.assert_done()
    steps = json.loads(capsys.readouterr().out)
    assert [step["operation"] for step in steps] == ["CreateModel", "CreateEndpointConfig", "UpdateEndpoint",
                                                     "DeleteEndpointConfig", "DeleteModel"]
    assert steps[2]["request"] == {"EndpointName": ENDPOINT, "EndpointConfigName": NEW}
    assert steps[3]["request"] == {"EndpointConfigName": OLD} and steps[4]["request"] == {"ModelName": OLD}
    assert "when" not in steps[2] and steps[3]["when"].startswith("with --wait, once the endpoint is InService")


def _toml(values: dict[str, Any], section: str = "") -> str:
    plain = [f"{k} = {json.dumps(v)}" for k, v in values.items() if not isinstance(v, dict)]
    tables = [_toml(v, f"{section}{k}") for k, v in values.items() if isinstance(v, dict)]
    head = [f"[{section}]"] if section else []
    return "\n".join(head + plain + [""] + tables)
