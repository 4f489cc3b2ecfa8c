"""The names the container, the launcher and the tests share: environment variables and ``/opt/ml``.

Each name is defined here once and imported wherever it is used (``container/env.py``,
``training/``, ``launch/``, ``bench/``), so a rename cannot ship on one side only.
The layout is SageMaker's:
https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-algo-running-container.html
"""

from __future__ import annotations

from pathlib import Path

# --- the job's environment ------------------------------------------------------------------------

SECRET_ID_ENV = "SNOWFLAKE_SECRET_ID"
"""Id or ARN of the Secrets Manager secret with the Snowflake credentials (never the secret itself)."""
CONNECTION_ENV = "SNOWFLAKE_CONNECTION"
"""Instead of a secret: JSON naming where to sign in with workload identity (no secret value in it)."""
REGION_ENV = "AWS_REGION"
"""The job's region: boto3's, and the one the connector signs workload identity's STS request for."""
LOGIN_TIMEOUT_ENV = "SNOWFLAKE_LOGIN_TIMEOUT"
"""Seconds to wait for Snowflake sign-in (default 60): a wrong account fails in bounded time."""
NETWORK_TIMEOUT_ENV = "SNOWFLAKE_NETWORK_TIMEOUT"
"""Seconds the connector keeps retrying one request (default 300)."""
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
"""Where to log: http(s) server, sqlite:/file store, or a SageMaker MLflow ARN. Unset: tracking off."""
EXPERIMENT_ENV = "MLFLOW_EXPERIMENT_NAME"
"""MLflow experiment of the job's run (created if missing)."""
REQUIRE_TRACKING_ENV = "MLFLOW_REQUIRED"
"""``false``: if the server cannot be reached at start, train without tracking instead of failing."""
TUNING_JOB_ENV = "TUNING_JOB_NAME"
"""Set by the local tuning mode (SageMaker trials are recognised by their job name instead)."""
JOB_NAME_ENV = "TRAINING_JOB_NAME"
"""Set by SageMaker in every training container."""
IMAGE_ENV = "IMAGE_URI"
"""The image the job runs, if the launcher passed it in the job's environment."""
BASE_DIR_ENV = "SAGEMAKER_BASE_DIR"
"""Overrides the base directory (default ``/opt/ml``); same name as sagemaker-training's."""
SPILL_DIR_ENV = "SPILL_DIR"
"""Where a host spills its shard (default ``<base>/spill``, on the job's ML storage volume)."""
LEDGER_ENV = "COLLECTIVE_LEDGER"
"""A directory: each host writes every collective call it makes to ``<dir>/<host>.ledger`` (docs/reliability.md)."""

JOB_SETTINGS = (SECRET_ID_ENV, CONNECTION_ENV, TRACKING_URI_ENV, EXPERIMENT_ENV, REQUIRE_TRACKING_ENV, TUNING_JOB_ENV,
                JOB_NAME_ENV, BASE_DIR_ENV, SPILL_DIR_ENV, LEDGER_ENV)
"""Variables a host sees only when the job passes them (in SageMaker the job's Environment is all
there is): the local mode never lets a host inherit them from the launching process."""

# --- the /opt/ml layout ---------------------------------------------------------------------------

DEFAULT_BASE_DIR = Path("/opt/ml")
RESOURCE_CONFIG = "resourceconfig.json"
"""``input/config/resourceconfig.json``: ``hosts``, ``current_host``, instance type."""
HYPERPARAMETERS = "hyperparameters.json"
"""``input/config/hyperparameters.json``: every value a string."""
CHECKPOINT_CONFIG = "checkpointconfig.json"
"""``input/config/checkpointconfig.json``: ``LocalPath`` of the checkpoint directory."""
MODEL_FILE = "xgboost-model"
"""The model file in ``model/`` (what SageMaker's XGBoost hosting loads), UBJ format."""
MODEL_ARCHIVE = "model.tar.gz"
"""``model/`` as SageMaker tars it to S3 after a training job, and unpacks it into an endpoint's ``/opt/ml/model``
(a scoring job's ``model`` channel receives it as it is)."""


def config_dir(base_dir: Path) -> Path:
    """``input/config``: the files SageMaker writes before it starts the image."""
    return base_dir / "input" / "config"


def model_dir(base_dir: Path) -> Path:
    """``model/``: tarred to S3 when the job ends; holds exactly :data:`MODEL_FILE`."""
    return base_dir / "model"


def model_channel_dir(base_dir: Path) -> Path:
    """``input/data/model``: a scoring job's ``model`` channel, where SageMaker unpacks the model before it starts."""
    return base_dir / "input" / "data" / "model"


def failure_file(base_dir: Path) -> Path:
    """``output/failure``: its first 1,024 characters become the job's FailureReason."""
    return base_dir / "output" / "failure"


def default_checkpoint_dir(base_dir: Path) -> Path:
    """``checkpoints/``: where SageMaker syncs checkpoints with S3 (the request's ``CheckpointConfig.LocalPath``)."""
    return base_dir / "checkpoints"


def default_spill_dir(base_dir: Path) -> Path:
    """Where a host spills its shard unless :data:`SPILL_DIR_ENV` says otherwise."""
    return base_dir / "spill"

# --- hosting: the same image serves the model (SageMaker starts it with ``serve``) ---------------
# https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-inference-code.html

TRAIN_COMMAND = "train"
"""The argument SageMaker starts a training job's container with."""
SERVE_COMMAND = "serve"
"""The argument SageMaker starts an endpoint's container with."""
SCORE_COMMAND = "score"
"""The argument a batch scoring job starts the container with (a training job's ``ContainerArguments``)."""
SCORING_MODEL_ENV = "SCORING_MODEL_DIR"
"""Where a scoring job finds its model (default :func:`model_channel_dir`): a job's ``xgboost-model`` or an MLflow model."""
SERVING_PORT = 8080
"""The port an endpoint's container answers ``GET /ping`` and ``POST /invocations`` on."""
SERVING_PORT_ENV = "SAGEMAKER_BIND_TO_PORT"
"""Overrides :data:`SERVING_PORT` (SageMaker sets it for a container of a multi-container endpoint)."""
SERVING_WORKERS_ENV = "SAGEMAKER_MODEL_SERVER_WORKERS"
"""Server processes, each with its own copy of the model (default: one per CPU); the toolkits' name."""
SERVING_TIMEOUT_ENV = "SAGEMAKER_MODEL_SERVER_TIMEOUT"
"""Seconds one invocation may take before its worker is restarted (default 60, SageMaker's own limit)."""
MLFLOW_EXPERIMENT = "snowflake-xgboost"
"""The MLflow experiment of a job's run when ``MLFLOW_EXPERIMENT_NAME`` names none (and where register looks)."""
MLFLOW_MODEL_NAME = "model"
"""Name of the logged model in each run, and the run artifact folder holding the same model
(``runs:/<run id>/model``): what the job logs and ``launch/registry.py`` registers."""
MLFLOW_ARTIFACT = "xgboost_model"
"""The model file's name among a logged MLflow model's artifacts (``MLmodel`` gives its path)."""
MLFLOW_MODEL_FILE = "MLmodel"
"""Present in ``model/`` when the endpoint serves a registered MLflow model rather than a job's model file."""
