"""The MLflow Model Registry side of the launcher: register a run's model and point an alias at it.

:func:`register` takes one run's model, or the best trial of a tuning job (chosen by
:func:`training.tracking.tuning_parent.best_trial`, the rule the trials themselves use to mark the parent),
creates a model version from it and points an alias at it. A SageMaker managed MLflow ARN works
like any URI. Aliases (default ``champion``) replace the deprecated stages: serving code loads
``models:/<name>@champion``. ``python -m launch register`` (:mod:`launch.commands.register`) is its CLI.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError

from training import contract
from training.errors import ConfigError
from training.tracking import tuning_parent
from training.tracking.mlflow_client import configure_client, describe_error, safe_uri

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

logger = logging.getLogger(__name__)

NOT_FOUND = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")
"""MLflow's error codes for a name it does not hold: a missing model or version is the first, a missing
alias the second (``get_model_version_by_alias``: "Registered model alias champion not found.")."""
DEFAULT_ALIAS = "champion"
DEFAULT_METRIC = "validation-rmse"
"""The metric that picks a tuning job's best trial when its parent run does not name one."""


@dataclass(frozen=True)
class Registration:
    """What :func:`register` did: the model version the alias now points at, and where it came from."""

    model_name: str
    version: str
    alias: str
    run_id: str
    model_uri: str


def register(tracking_uri: str, model_name: str, *, run_id: str | None = None, tuning_job: str | None = None,
             experiment: str = contract.MLFLOW_EXPERIMENT, alias: str = DEFAULT_ALIAS) -> Registration:
    """Register the model of ``run_id`` (or of the best trial of ``tuning_job``) and set ``alias`` on it."""
    if (run_id is None) == (tuning_job is None):
        raise ConfigError("give exactly one of --run-id (a run's model) or --tuning-job (its best trial's model)")
    client = configure_client(tracking_uri)
    if tuning_job is not None:
        run_id = best_trial(client, experiment, tuning_job).info.run_id
    assert run_id is not None
    source = _model_uri(client, run_id)
    version = _create_version(client, model_name, source, run_id)
    client.set_registered_model_alias(model_name, alias, version)
    logger.info("registered %s version %s from run %s; alias %r points at it", model_name, version, run_id, alias)
    return Registration(model_name=model_name, version=version, alias=alias, run_id=run_id, model_uri=source)


def best_trial(client: MlflowClient, experiment: str, tuning_job: str) -> Run:
    """The finished child of the tuning job's parent run with the best objective metric.

    The parent is the one the trials elected, and "best" is :func:`training.tracking.tuning_parent.best_trial`,
    the same choice the trials write to the parent.
    """
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise ConfigError(f"MLflow experiment {experiment!r} not found: pass --experiment with the tuning job's one")
    parent = tuning_parent.find_parent(client, found.experiment_id, tuning_job)
    if parent is None:
        raise ConfigError(f"no parent run for tuning job {tuning_job!r} in experiment {experiment!r}: check the "
                          "name (the tuning job's, not a trial's) and --experiment")
    metric = parent.data.tags.get(tuning_parent.TAG_OBJECTIVE_METRIC, DEFAULT_METRIC)
    finished = tuning_parent.trials(client, found.experiment_id, parent.info.run_id, finished_only=True)
    best = tuning_parent.best_trial(finished, metric)
    if best is None:
        raise ConfigError(f"tuning job {tuning_job!r} has no finished trial with metric {metric!r} yet: wait for a "
                          "trial to finish, or register one run with --run-id")
    return best


def _model_uri(client: MlflowClient, run_id: str) -> str:
    """``models:/<id>`` of the MLflow 3 logged model the run logged as ``model``, else ``runs:/<run id>/model``.

    The logged model is preferred: the version then links to it in the MLflow UI. A run copied from
    another server (mlflow-export-import copies run artifacts, not logged models) has only the copy
    in its artifacts, which registers as well.
    """
    run = client.get_run(run_id)
    for output in run.outputs.model_outputs if run.outputs else []:
        if client.get_logged_model(output.model_id).name == contract.MLFLOW_MODEL_NAME:
            return f"models:/{output.model_id}"
    if any(f.path == f"{contract.MLFLOW_MODEL_NAME}/MLmodel" for f in client.list_artifacts(run_id, contract.MLFLOW_MODEL_NAME)):
        return f"runs:/{run_id}/{contract.MLFLOW_MODEL_NAME}"
    raise ConfigError(f"run {run_id} has no model named {contract.MLFLOW_MODEL_NAME!r}: the job may have lost "
                      "its tracking server before the end; pick another run")


def _create_version(client: MlflowClient, model_name: str, source: str, run_id: str) -> str:
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(model_name)
    except MlflowException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    model_id = source.removeprefix("models:/") if source.startswith("models:/") else None
    version = client.create_model_version(model_name, source, run_id=run_id, model_id=model_id)
    return str(version.version)


def model_version(tracking_uri: str, model_name: str, *, alias: str | None = None, version: str | None = None) -> str:
    """The version number ``alias`` points at (or ``version``, checked to exist).

    Each way it can fail is one line naming the fix: no such alias or version, no such registered
    model, no AWS credentials to sign the requests (an ARN tracking URI), a server that does not answer.
    """
    from mlflow.exceptions import MlflowException

    client = configure_client(tracking_uri)
    try:
        found = (client.get_model_version_by_alias(model_name, alias) if version is None
                 else client.get_model_version(model_name, version))
    except (MlflowException, BotoCoreError) as err:  # the signer's credential errors come unwrapped
        raise _version_error(client, tracking_uri, err, model_name, alias, version) from err
    return str(found.version)


def _version_error(client: MlflowClient, uri: str, err: Exception, model_name: str, alias: str | None,
                   version: str | None) -> ConfigError:
    if getattr(err, "error_code", "") not in NOT_FOUND:
        return mlflow_error(err, uri)
    if not _model_exists(client, model_name):
        return ConfigError(f"no registered model {model_name!r} in MLflow at {safe_uri(uri)}: check --model-name "
                           f"(and --tracking-uri), or register one (python -m launch register --model-name {model_name} ...)")
    which = f"alias {alias!r}" if version is None else f"version {version}"
    return ConfigError(f"registered model {model_name!r} has no {which}: register one (python -m launch register "
                       f"--model-name {model_name} ...) or pick another")


def _model_exists(client: MlflowClient, model_name: str) -> bool:
    """False only when MLflow says the registered model does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(model_name)
    except MlflowException as err:
        return err.error_code not in NOT_FOUND
    return True


def mlflow_error(err: BaseException, uri: str) -> ConfigError:
    """One line for an MLflow call that failed: no AWS credentials to sign the requests (sagemaker-mlflow
    signs each request to an ARN tracking URI), a server that does not answer, else MLflow's own reason.

    MLflow wraps what the signer or the HTTP client raised: the cause is found in the exception's chain.
    The message holds the URI without user or password (:func:`safe_uri`) and never a credential
    (botocore's messages name what is missing, not its value).
    """
    from botocore import exceptions as aws
    from requests import exceptions as http

    causes = _chain(err)
    credentials = (aws.NoCredentialsError, aws.PartialCredentialsError, aws.CredentialRetrievalError,
                   aws.TokenRetrievalError, aws.SSOError, aws.NoAuthTokenError, aws.ProfileNotFound)
    for cause in causes:
        if isinstance(cause, credentials):
            return ConfigError(f"no usable AWS credentials to sign requests to MLflow at {safe_uri(uri)} "
                               f"({type(cause).__name__}: {' '.join(str(cause).split())[:160]}): sign in (aws sso "
                               "login, AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) and run it again")
    if any(isinstance(cause, (http.ConnectionError, http.Timeout)) for cause in causes):
        return ConfigError(f"MLflow at {safe_uri(uri)} did not answer ({describe_error(causes[-1], uri)}): check "
                           "--tracking-uri (else MLFLOW_TRACKING_URI, else mlflow.tracking_uri) and that the server is up")
    return ConfigError(f"MLflow at {safe_uri(uri)}: {describe_error(err, uri)}")


def _chain(err: BaseException | None) -> list[BaseException]:
    """``err`` and the exceptions it was raised from (or while handling), outermost first."""
    chain: list[BaseException] = []
    while err is not None and err not in chain:
        chain.append(err)
        err = err.__cause__ or err.__context__
    return chain


def version_run_id(tracking_uri: str, model_name: str, version: str) -> str:
    """The MLflow run that logged the registered version's model ("" when the version names none)."""
    from mlflow.exceptions import MlflowException

    client = configure_client(tracking_uri)
    try:
        return str(client.get_model_version(model_name, version).run_id or "")
    except (MlflowException, BotoCoreError) as err:
        raise mlflow_error(err, tracking_uri) from err


def download_version(tracking_uri: str, model_name: str, version: str, destination: Path) -> Path:
    """The model version's files (``MLmodel``, ``artifacts/xgboost-model``, its code...) under ``destination``."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    configure_client(tracking_uri)
    try:
        path = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{model_name}/{version}",
                                                   dst_path=str(destination), tracking_uri=tracking_uri)
    except (MlflowException, BotoCoreError) as err:
        raise mlflow_error(err, tracking_uri) from err
    logger.info("downloaded %s version %s", model_name, version)
    return Path(path)
