"""``python -m launch deploy``: a registered model (or a finished training job's) to a SageMaker endpoint.

    python -m launch deploy --model-name housing --alias champion --dry-run   # print the 3 requests
    python -m launch deploy --model-name housing --alias champion --wait      # real-time, then a smoke call
    python -m launch deploy --training-job xgb-1a2b3c-2026-11-30-10-00-00 --serverless-memory-mb 2048 --wait

A registered version is downloaded from MLflow, tarred as ``model.tar.gz`` and uploaded under the
settings' ``output.s3_path`` (``<s3_path>/<model name>/model.tar.gz``); a training job's
``model.tar.gz`` is used where the job left it. Then CreateModel (our training image, which
SageMaker starts with ``serve``), CreateEndpointConfig and CreateEndpoint (:mod:`launch.endpoints`).
``--wait`` follows the endpoint until it is in service and then invokes it with the rows of the
model's input example (raw table rows, logged by the job) or ``--smoke-csv``. ``--dry-run``
resolves the source (reads MLflow or DescribeTrainingJob), uploads and creates nothing, and
prints the three requests, validated by botocore.
"""

from __future__ import annotations

import argparse
import json
import logging
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from launch import aws, console, endpoints, follower
from launch.registry import DEFAULT_ALIAS
from launch.settings import Settings, load_settings
from training.errors import ConfigError, UserError

logger = logging.getLogger(__name__)

ARCHIVE = "model.tar.gz"
"""What SageMaker unpacks into ``/opt/ml/model`` before it starts the container."""


@dataclass(frozen=True)
class Source:
    """What to deploy: a registered model version, or a training job's model."""

    model_name: str | None = None
    alias: str | None = None
    version: str | None = None
    training_job: str | None = None
    tracking_uri: str = ""

    @property
    def label(self) -> str:
        return self.model_name or "job"


@dataclass(frozen=True)
class DeployOutcome:
    """What ``deploy`` did: the requests (and names), the endpoint's end when waited for, the smoke answer."""

    names: endpoints.Names
    requests: dict[str, dict[str, Any]]
    status: str | None = None
    failure_reason: str | None = None
    smoke: str | None = None


def deploy(settings: Settings, source: Source, variant: endpoints.Variant, *, endpoint_name: str | None = None,
           dry_run: bool = False, wait: bool = False, smoke_csv: Path | None = None, session: Any = None,
           poll_seconds: float = 30.0, echo: follower.Echo = print, sleep: follower.Sleep = time.sleep) -> DeployOutcome:
    """Deploy ``source`` to an endpoint; with ``wait``, follow it to InService and invoke it once."""
    session = session or aws.boto_session(settings.region)
    names = endpoints.names(settings, endpoint_name, source.label)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir, url = _artifact(settings, source, names, session, Path(tmp), upload=not dry_run)
        requests = endpoints.deploy_requests(settings, names, url, variant)
        if dry_run:
            return DeployOutcome(names, requests)
        sagemaker = session.client("sagemaker")
        _refuse_existing(sagemaker, names.endpoint)  # before anything is created: a failed deploy leaves nothing
        sagemaker.create_model(**requests["CreateModel"])
        sagemaker.create_endpoint_config(**requests["CreateEndpointConfig"])
        sagemaker.create_endpoint(**requests["CreateEndpoint"])
        logger.info("creating endpoint %s (model %s)", names.endpoint, names.model)
        if not wait:
            return DeployOutcome(names, requests)
        echo(f"following endpoint {names.endpoint} until it is in service (Ctrl-C stops following, not the endpoint)")
        desc = follower.follow_endpoint(sagemaker, names.endpoint, echo=echo, poll_seconds=poll_seconds, sleep=sleep)
        status = desc["EndpointStatus"]
        smoke = None
        if status == "InService":
            body, content_type = _smoke_rows(model_dir, smoke_csv)
            smoke = _invoke(session, names.endpoint, body, content_type) if body else None
        return DeployOutcome(names, requests, status=status, failure_reason=desc.get("FailureReason"), smoke=smoke)


def _refuse_existing(sagemaker: Any, endpoint: str) -> None:
    """One line naming the fix when ``endpoint`` exists already (this command creates endpoints, never updates)."""
    try:
        status = sagemaker.describe_endpoint(EndpointName=endpoint)["EndpointStatus"]
    except sagemaker.exceptions.ClientError as err:
        if "Could not find" in str(err) or err.response.get("Error", {}).get("Code") == "ValidationException":
            return
        raise
    raise ConfigError(f"endpoint {endpoint} exists already ({status}): pass --endpoint-name with a new name, or "
                      f"delete it first (aws sagemaker delete-endpoint --endpoint-name {endpoint})")


def _artifact(settings: Settings, source: Source, names: endpoints.Names, session: Any, tmp: Path,
              *, upload: bool) -> tuple[Path | None, str]:
    """The model directory (registry source: for its input example) and the ``model.tar.gz`` URL."""
    if source.training_job:
        return None, _job_artifact(session.client("sagemaker"), source.training_job)
    from launch import registry

    assert source.model_name is not None
    version = registry.model_version(source.tracking_uri, source.model_name, alias=source.alias, version=source.version)
    url = f"{settings.output.s3_path.rstrip('/')}/{names.model}/{ARCHIVE}"
    echo_source = f"{source.model_name} version {version}" + (f" (@{source.alias})" if source.version is None else "")
    logger.info("deploying registered model %s from %s", echo_source, url)
    if not upload:
        return None, url
    model_dir = registry.download_version(source.tracking_uri, source.model_name, version, tmp / "model")
    _upload(session, _archive(model_dir, tmp / ARCHIVE), url, settings.kms.output_key_id)
    return model_dir, url


def _job_artifact(sagemaker: Any, job_name: str) -> str:
    desc = sagemaker.describe_training_job(TrainingJobName=job_name)
    status = desc["TrainingJobStatus"]
    url = desc.get("ModelArtifacts", {}).get("S3ModelArtifacts")
    if status != "Completed" or not url:
        raise ConfigError(f"training job {job_name} is {status}, with no model to deploy: deploy a Completed job, or a "
                          "registered model (--model-name)")
    return url


def _archive(model_dir: Path, path: Path) -> Path:
    """``model.tar.gz`` with the model directory's files at its root (SageMaker unpacks it into /opt/ml/model)."""
    with tarfile.open(path, "w:gz") as tar:
        for item in sorted(model_dir.iterdir()):
            tar.add(item, arcname=item.name)
    return path


def _upload(session: Any, archive: Path, url: str, kms_key_id: str) -> None:
    bucket, _, key = url.removeprefix("s3://").partition("/")
    extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id} if kms_key_id else {}
    session.client("s3").upload_file(str(archive), bucket, key, ExtraArgs=extra or None)
    logger.info("uploaded %s (%d bytes)", url, archive.stat().st_size)


def _smoke_rows(model_dir: Path | None, smoke_csv: Path | None) -> tuple[bytes | None, str]:
    """The smoke call's body: ``--smoke-csv`` as it is, else the MLflow model's input example (raw rows)."""
    if smoke_csv is not None:
        return smoke_csv.read_bytes(), "text/csv"
    if model_dir is None:
        return None, ""
    from mlflow.models import Model

    example = Model.load(str(model_dir)).load_input_example(str(model_dir))
    if example is None:
        return None, ""
    split = json.loads(example.to_json(orient="split", index=False, date_format="iso"))
    return json.dumps({"dataframe_split": split}).encode(), "application/json"


def _invoke(session: Any, endpoint: str, body: bytes, content_type: str) -> str:
    response = session.client("sagemaker-runtime").invoke_endpoint(EndpointName=endpoint, ContentType=content_type,
                                                                   Accept="application/json", Body=body)
    return response["Body"].read().decode()


# ---------------------------------------------------------------------------------------------
# CLI


def command_parser(subparsers: Any) -> argparse.ArgumentParser:
    """``deploy``'s flags: a subparser of ``python -m launch``."""
    description = ("Deploy a registered MLflow model version (or a finished training job's model) to a SageMaker "
                   "real-time or serverless endpoint that scores raw table rows.")
    p = subparsers.add_parser("deploy", help="deploy a registered model (or a training job's) to an endpoint",
                              description=description)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model-name", help="registered model to deploy (with --alias or --version)")
    which.add_argument("--training-job", help="a Completed training job whose model to deploy")
    version = p.add_mutually_exclusive_group()
    version.add_argument("--alias", help=f"the alias's version (default {DEFAULT_ALIAS})")
    version.add_argument("--version", help="this version number")
    console.add_tracking_argument(p)
    p.add_argument("--endpoint-name", help="endpoint name, under job_prefix (default <job_prefix>-<model name>)")
    hosting = p.add_argument_group("where it runs (default: real-time, 1 x ml.m5.large)")
    hosting.add_argument("--instance-type", default=endpoints.Variant.instance_type, help="real-time instance type")
    hosting.add_argument("--instance-count", type=int, default=endpoints.Variant.instance_count)
    hosting.add_argument("--serverless-memory-mb", type=int, choices=endpoints.SERVERLESS_MEMORY_MB,
                         help="serverless instead of instances, with this much memory")
    hosting.add_argument("--max-concurrency", type=int, default=endpoints.Variant.max_concurrency,
                         help="serverless: invocations at once (default 5)")
    p.add_argument("--dry-run", action="store_true", help="print the CreateModel, CreateEndpointConfig and "
                   "CreateEndpoint requests; upload and create nothing")
    p.add_argument("--wait", action="store_true", help="follow the endpoint until it is in service, then invoke it "
                   "with the model's input example (or --smoke-csv)")
    p.add_argument("--smoke-csv", type=Path, help="CSV (a header row, then table rows) for the smoke call after --wait")
    console.add_settings_arguments(p)
    p.set_defaults(func=deploy_command)
    return p


def deploy_command(args: argparse.Namespace, session: Any = None) -> int:
    console.configure_logging(args.verbose)
    if args.training_job and (args.alias or args.version):
        raise ConfigError("--alias and --version pick a registered model's version: use them with --model-name, not "
                          "--training-job")
    settings = load_settings(args.settings, args.set, sign_in=False)  # an endpoint never reads the table
    source = Source(training_job=args.training_job) if args.training_job else Source(
        model_name=args.model_name, alias=None if args.version else (args.alias or DEFAULT_ALIAS),
        version=args.version, tracking_uri=console.tracking_location(args)[0])
    variant = endpoints.Variant(instance_type=args.instance_type, instance_count=args.instance_count,
                                serverless_memory_mb=args.serverless_memory_mb, max_concurrency=args.max_concurrency)
    done = deploy(settings, source, variant, endpoint_name=args.endpoint_name, dry_run=args.dry_run, wait=args.wait,
                  smoke_csv=args.smoke_csv, session=session)
    if args.dry_run:
        print(json.dumps(done.requests, indent=2, sort_keys=True))
        return 0
    print(f"endpoint: {done.names.endpoint} (model {done.names.model})")
    if done.status is None:
        return 0
    print(f"status: {done.status}")
    if done.status != "InService":
        raise UserError(f"endpoint {done.names.endpoint} {done.status}: {done.failure_reason or 'no reason given'}")
    if done.smoke is None:
        print("no smoke rows (a training job's model carries no input example): pass --smoke-csv FILE to invoke it")
    else:
        print(f"smoke invocation: {done.smoke}")
    return 0
