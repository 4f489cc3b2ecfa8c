"""Small AWS functions: SDK sessions, capturing a request unsent, submitting, listing trials.

The builders in :mod:`launch.jobs` turn settings into SDK objects without touching AWS; the
functions here and the ``--wait`` follower (:mod:`launch.follower`) are the only ones that send
anything. Every SDK session is made from an explicit
``boto3.Session`` (tests hand in one whose botocore events record what is sent, against moto)
with the SDK's telemetry turned off, so a launch sends the requests we build and nothing else.

``--dry-run`` uses :func:`capture_request`: the real SDK call runs up to the moment botocore
would send it (after the SDK has built and botocore has validated the request), and is stopped
there. What is printed is exactly what would have been sent, with no credentials needed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3

from launch import service_model

if TYPE_CHECKING:  # the SDK is heavy to import: commands import it only when they need it
    from sagemaker.core.helper.session_helper import Session

logger = logging.getLogger(__name__)

SDK_CONFIG: dict[str, Any] = {
    "SchemaVersion": "1.0",
    "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}},
}
"""The SDK's defaults config: telemetry off (a dry run or a test must send nothing else), and no
defaults picked up from the user's SageMaker config files: the settings file is the one source."""

VALIDATE_ROLE_ENV = "SAGEMAKER_VALIDATE_ROLE"
"""SDK v3 calls iam:SimulatePrincipalPolicy on the role unless this is "false"; settings already
checked the role is an ARN, and many users may pass a role but not simulate policies."""


def boto_session(region: str) -> boto3.Session:
    """A boto3 session for the settings' region (credentials from the usual chain); every SageMaker
    request made through it is first checked against the service's limits (:mod:`launch.service_model`)."""
    session = boto3.Session(region_name=region)
    service_model.install(session)
    return session


def sdk_session(session: boto3.Session, *, pipeline: bool = False) -> Session:
    """A SageMaker SDK session over ``session`` (a ``PipelineSession`` to build pipeline steps); its
    requests are checked against the service's limits (:mod:`launch.service_model`) before they are sent."""
    service_model.install(session)
    if pipeline:
        from sagemaker.core.workflow.pipeline_context import PipelineSession

        return PipelineSession(boto_session=session, sagemaker_config=SDK_CONFIG)
    from sagemaker.core.helper.session_helper import Session

    return Session(boto_session=session, sagemaker_config=SDK_CONFIG)


@contextmanager
def role_validation_off() -> Iterator[None]:
    """Skip the SDK's IAM policy simulation for the duration (restores the variable after)."""
    before = os.environ.get(VALIDATE_ROLE_ENV)
    os.environ[VALIDATE_ROLE_ENV] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(VALIDATE_ROLE_ENV, None)
        else:
            os.environ[VALIDATE_ROLE_ENV] = before


class RequestCaptured(Exception):
    """Raised from botocore's ``before-call`` hook: the request was built and validated, not sent."""

    def __init__(self, operation: str, params: dict[str, Any]) -> None:
        super().__init__(operation)
        self.operation = operation
        self.params = params


@dataclass
class Capture:
    """What :func:`capture_request` saw: the API parameters of the first matching call."""

    operation: str
    params: dict[str, Any] = field(default_factory=dict)


@contextmanager
def capture_request(session: boto3.Session, operation: str) -> Iterator[Capture]:
    """Stop the first SageMaker ``operation`` call made through ``session`` just before sending.

    Register before any client is made from ``session`` (botocore copies handlers into each
    client). The SDK call inside the block raises :class:`RequestCaptured`, which is swallowed
    here; the captured parameters are in the yielded :class:`Capture`.
    """
    capture = Capture(operation)
    active = True  # clients made inside the block keep these hooks (the SDK caches clients): inert after it

    def _record(params: dict[str, Any], **_: Any) -> None:
        if active:
            capture.params = dict(params)

    def _stop(**_: Any) -> None:
        if active:
            raise RequestCaptured(operation, capture.params)

    session.events.register(f"provide-client-params.sagemaker.{operation}", _record)
    session.events.register(f"before-call.sagemaker.{operation}", _stop)
    try:
        yield capture
    except RequestCaptured:
        pass
    finally:  # the caller's session sends normally afterwards
        active = False
        session.events.unregister(f"provide-client-params.sagemaker.{operation}", _record)
        session.events.unregister(f"before-call.sagemaker.{operation}", _stop)
    if not capture.params:
        raise RuntimeError(f"the SDK made no {operation} call")


def submit_training(trainer: Any) -> str:
    """Create the training job (no wait); returns its name."""
    trainer.train(wait=False, logs=False)
    name = trainer._latest_training_job.training_job_name
    logger.info("submitted training job %s", name)
    return name


def submit_tuning(tuner: Any, job_name: str) -> str:
    """Create the tuning job (no wait); returns its name."""
    tuner.tune(job_name=job_name, wait=False)
    logger.info("submitted tuning job %s", job_name)
    return job_name


def job_model_url(sagemaker: Any, job_name: str, use: str, alternative: str = "") -> str:
    """A Completed training job's ``model.tar.gz`` in S3 (``use``: what for, in the message: "deploy", "score with";
    ``alternative``: the other way to give a model)."""
    from training.errors import ConfigError

    desc = sagemaker.describe_training_job(TrainingJobName=job_name)
    status = desc["TrainingJobStatus"]
    url = desc.get("ModelArtifacts", {}).get("S3ModelArtifacts")
    if status != "Completed" or not url:
        raise ConfigError(f"training job {job_name} is {status}, with no model to {use}: give a Completed job"
                          + (f", or {alternative}" if alternative else ""))
    return url


def upload_model(session: Any, model_dir: Path, url: str, kms_key_id: str, archive: Path) -> None:
    """Tar ``model_dir`` (its files at the archive's root, as SageMaker unpacks a model) to ``archive`` and upload
    it to ``url`` (SSE-KMS with ``kms_key_id`` when given)."""
    import tarfile

    with tarfile.open(archive, "w:gz") as tar:
        for item in sorted(model_dir.iterdir()):
            tar.add(item, arcname=item.name)
    bucket, _, key = url.removeprefix("s3://").partition("/")
    extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id} if kms_key_id else {}
    session.client("s3").upload_file(str(archive), bucket, key, ExtraArgs=extra or None)
    logger.info("uploaded %s (%d bytes)", url, archive.stat().st_size)


def list_trials(client: Any, job_name: str, objective_type: str) -> list[dict[str, Any]]:
    """Every training job of the tuning job, best objective first, then those without one (failed,
    stopped, running) in the order they started.

    Listed by creation time and ranked here: sorted by ``FinalObjectiveMetricValue``, SageMaker
    leaves out every trial that has no objective, so a search whose trials all failed would list
    nothing, and no failure reason.
    """
    pages = client.get_paginator("list_training_jobs_for_hyper_parameter_tuning_job").paginate(
        HyperParameterTuningJobName=job_name, SortBy="CreationTime", SortOrder="Ascending")
    return rank_trials([summary for page in pages for summary in page["TrainingJobSummaries"]], objective_type)


def rank_trials(trials: list[dict[str, Any]], objective_type: str) -> list[dict[str, Any]]:
    """``trials`` best objective first (``Minimize``: lowest); those without an objective after, in order."""
    def value(trial: dict[str, Any]) -> float | None:
        return trial.get("FinalHyperParameterTuningJobObjectiveMetric", {}).get("Value")

    scored = sorted((t for t in trials if value(t) is not None), key=value,
                    reverse=objective_type == "Maximize")
    return scored + [t for t in trials if value(t) is None]


def upsert_pipeline(pipeline: Any, role_arn: str, tags: list[dict[str, str]]) -> str:
    """Create or update the pipeline; returns its ARN."""
    with role_validation_off():
        response = pipeline.upsert(role_arn=role_arn, tags=tags or None)
    logger.info("upserted pipeline %s", pipeline.name)
    return response["PipelineArn"]


def start_pipeline(pipeline: Any) -> str:
    """Start an execution with the pipeline's default parameters; returns the execution ARN."""
    execution = pipeline.start()
    logger.info("started pipeline execution %s", execution.arn)
    return execution.arn
