"""What every local run shares (the demo, a user's own table, local tuning): the local secret's id,
MLflow settings for the job, the launcher's encoding of hyperparameters, and what a run returns."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from launch.local.hosts import LocalJobResult
from training import contract
from training.read import names

LOCAL_SECRET_ID = "local/snowflake-demo"
"""The id under which a local run stores the embedded Snowflake's credentials in the local Secrets Manager."""
DEFAULT_EXPERIMENT = "snowflake-xgboost-demo"
"""The experiment of local runs when neither ``$MLFLOW_EXPERIMENT_NAME`` nor the caller names one."""


@dataclass(frozen=True)
class LocalRun:
    """What :func:`run_local` did: the job's result, its wall time, and where MLflow recorded it."""

    result: LocalJobResult
    seconds: float
    tracking_uri: str


def encoded(hyperparameters: Mapping[str, str]) -> dict[str, str]:
    """Hyperparameters as the launcher sends them (a lone quoted name JSON-encoded, one reading)."""
    return {key: names.encode(key, value) for key, value in hyperparameters.items()}


def mlflow_env(workdir: Path, experiment: str = "") -> dict[str, str]:
    """MLflow settings for the local job: the caller's, else a local SQLite store under ``workdir``;
    the experiment is ``$MLFLOW_EXPERIMENT_NAME``, else ``experiment``, else the demo's.

    ``MLFLOW_TRACKING_URI=`` (set but empty) turns tracking off.
    """
    uri = os.environ.get(contract.TRACKING_URI_ENV)
    experiment = os.environ.get(contract.EXPERIMENT_ENV) or experiment or DEFAULT_EXPERIMENT
    if uri == "":
        return {}
    if uri is None:
        store = workdir / "mlflow"
        store.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{store / 'mlflow.db'}"
        _create_experiment(uri, experiment, store / "artifacts")
    return {contract.TRACKING_URI_ENV: uri, contract.EXPERIMENT_ENV: experiment}


def _create_experiment(uri: str, name: str, artifacts: Path) -> None:
    """Create the demo experiment with its artifacts under the work directory (not ./mlruns)."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    if client.get_experiment_by_name(name) is None:
        client.create_experiment(name, artifact_location=artifacts.as_uri())
