"""A batch scoring job on SageMaker: the training job's request, running the image's ``score`` command.

Why a training job, not a Processing job (docs/scoring.md): it gives every host ``resourceconfig.json``
(the hosts' collective), managed spot, the same IAM grants and the same ``--wait`` follower. The
request is the settings' own training request (:func:`launch.jobs.training_request`: role, image,
instances, VPC, KMS, spot, tags, the job's environment) with four changes:

- ``AlgorithmSpecification.ContainerArguments`` is ``["score"]``: SageMaker starts the image's
  ENTRYPOINT with it instead of ``train``. No metric definitions: a scoring job has no rounds.
- ``HyperParameters`` are the scoring settings (:mod:`training.scoring.options`).
- ``InputDataConfig`` has one channel, ``model``: the model's ``model.tar.gz`` in S3, which SageMaker
  copies to ``/opt/ml/input/data/model`` (the container unpacks it).
- No checkpoints: a stopped scoring job is run again (it replaces its target whole).

SDK v3's ``ModelTrainer`` sets ``ContainerArguments`` only for code it uploads itself, so the launcher
sends this request with boto3 (through the session every other request goes through).
"""

from __future__ import annotations

import secrets
from datetime import datetime, timezone
from typing import Any

from launch import aws, jobs, service_model
from launch.settings import Settings
from training.contract import SCORE_COMMAND

MODEL_CHANNEL = "model"
"""The channel SageMaker copies the model into (``/opt/ml/input/data/model``)."""
NAME_MAX = 63


def scoring_job_name(prefix: str, now: datetime | None = None) -> str:
    """``<prefix>-score-<random>-<yymmddHHMMSS>``, within SageMaker's 63 characters."""
    stamp = (now or datetime.now(timezone.utc)).strftime("%y%m%d%H%M%S")
    return f"{prefix}-score-{secrets.token_hex(3)}-{stamp}"[:NAME_MAX]


def scoring_request(settings: Settings, options: dict[str, str], model_url: str,
                    job_name: str | None = None) -> dict[str, Any]:
    """The CreateTrainingJob request of a scoring job (not sent): see the module's doc. The training request is
    captured through a session of its own: the SDK caches its clients per session, and one made earlier through
    ``session`` would carry no capture hook."""
    request = jobs.training_request(settings, aws.boto_session(settings.region))
    spec = request["AlgorithmSpecification"]
    request["AlgorithmSpecification"] = {"TrainingImage": spec["TrainingImage"],
                                         "TrainingInputMode": spec.get("TrainingInputMode", "File"),
                                         "ContainerArguments": [SCORE_COMMAND]}
    request["HyperParameters"] = {key: str(value) for key, value in options.items() if str(value) != ""}
    request["InputDataConfig"] = [{
        "ChannelName": MODEL_CHANNEL, "InputMode": "File",
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": model_url,
                                        "S3DataDistributionType": "FullyReplicated"}}}]
    request.pop("CheckpointConfig", None)
    request["TrainingJobName"] = job_name or scoring_job_name(settings.job_prefix)
    service_model.check_request("CreateTrainingJob", request)  # what SageMaker would refuse, refused here
    return request
