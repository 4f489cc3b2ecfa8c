"""The SageMaker training contract under a base directory (``/opt/ml`` in the image).

SageMaker writes ``input/config/*.json`` before starting the image and reads ``model/`` and
``output/failure`` after it stops. The base directory is overridable (``SAGEMAKER_BASE_DIR``) so
the local mode and tests give each simulated host its own tree.
https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-algo-running-container.html
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.contract import (
    BASE_DIR_ENV,
    CHECKPOINT_CONFIG,
    CONNECTION_ENV,
    DEFAULT_BASE_DIR,
    EXPERIMENT_ENV,
    HYPERPARAMETERS,
    IMAGE_ENV,
    JOB_NAME_ENV,
    LEDGER_ENV,
    RESOURCE_CONFIG,
    SECRET_ID_ENV,
    TRACKING_URI_ENV,
    TUNING_JOB_ENV,
    config_dir,
    failure_file,
    model_dir,
)
from training.environment import snowflake_timeouts, spill_dir, tracking_required
from training.errors import ConfigError
from training.read.credentials import SignIn
from training.read.snowflake import SnowflakeTimeouts
from training.tracking.mlflow_recorder import JobInfo, TrackingSettings


@dataclass(frozen=True)
class TrainingEnv:
    """The files SageMaker gives the container and every variable of the job's environment, read
    and validated once at start (a malformed value is a ConfigError before any work): the only
    reader of the environment; training/ gets typed values."""

    base_dir: Path
    hosts: list[str]
    current_host: str
    instance_type: str
    resource_config: dict[str, Any]
    hyperparameters: dict[str, Any]
    checkpoint_dir: Path | None
    spill_dir: Path
    snowflake_timeouts: SnowflakeTimeouts
    ledger_dir: Path | None = None
    sign_in: SignIn = SignIn()
    tracking: TrackingSettings = TrackingSettings()
    job_name: str = ""
    image: str = ""
    tuning_job_name: str = ""

    def job_info(self) -> JobInfo:
        """What the run's tags say about the job: its name, image, tuning job, instances and objective."""
        return JobInfo.of(self.job_name, self.image, self.tuning_job_name, self.resource_config, self.hyperparameters)

    @property
    def model_dir(self) -> Path:
        return model_dir(self.base_dir)

    @property
    def failure_file(self) -> Path:
        return failure_file(self.base_dir)

    @classmethod
    def from_dir(cls, base_dir: Path, environ: Mapping[str, str] | None = None) -> TrainingEnv:
        environ = os.environ if environ is None else environ
        config = config_dir(base_dir)
        resources = _read_json(config / RESOURCE_CONFIG, required=True)
        hosts, current = resources.get("hosts"), resources.get("current_host")
        if not isinstance(hosts, list) or not isinstance(current, str):
            raise ConfigError(f"{config / RESOURCE_CONFIG} lacks 'hosts' or 'current_host': SageMaker "
                              "writes both; in local mode, regenerate the host tree")
        checkpoint = _read_json(config / CHECKPOINT_CONFIG, required=False)
        return cls(
            base_dir=base_dir, hosts=[str(h) for h in hosts], current_host=current,
            instance_type=str(resources.get("current_instance_type", "local")),
            resource_config=resources,
            hyperparameters=_read_json(config / HYPERPARAMETERS, required=False),
            checkpoint_dir=Path(checkpoint["LocalPath"]) if checkpoint.get("LocalPath") else None,
            spill_dir=spill_dir(environ, base_dir),
            snowflake_timeouts=snowflake_timeouts(environ),
            ledger_dir=Path(environ[LEDGER_ENV]) if environ.get(LEDGER_ENV) else None,
            sign_in=SignIn(secret_id=environ.get(SECRET_ID_ENV, ""), connection=environ.get(CONNECTION_ENV, "")),
            tracking=TrackingSettings(uri=environ.get(TRACKING_URI_ENV, "").strip(),
                                      experiment=environ.get(EXPERIMENT_ENV, "").strip(),
                                      required=tracking_required(environ)),
            job_name=environ.get(JOB_NAME_ENV, ""), image=environ.get(IMAGE_ENV, ""),
            tuning_job_name=environ.get(TUNING_JOB_ENV, ""),
        )


def base_dir_from(environ: Mapping[str, str]) -> Path:
    return Path(environ.get(BASE_DIR_ENV) or DEFAULT_BASE_DIR)


def _read_json(path: Path, required: bool) -> dict[str, Any]:
    if not path.exists():
        if required:
            raise ConfigError(f"{path} is missing: SageMaker writes it; in local mode set {BASE_DIR_ENV} to a host tree")
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError as err:
        raise ConfigError(f"{path} is not valid JSON ({err}): fix the file") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object: fix the file")
    return data
