"""Local tuning: Optuna over the same search space as the SageMaker tuning job, one local job per trial.

The stand-ins start once; every trial is a local job against them, and every trial's MLflow run
becomes a child of one parent named after the local tuning job, as on SageMaker.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from launch.local.demo import demo_hyperparameters, demo_table
from launch.local.hosts import LocalJobResult, run_local_job
from launch.local.runs import LOCAL_SECRET_ID, encoded, mlflow_env
from launch.local.services import DEFAULT_WORKDIR, LocalStack
from launch.local.user_job import host_env
from launch.settings import Settings
from launch.tuning_space import search_space
from training import contract
from training.errors import ConfigError
from training.hyperparameters import TuningRange

logger = logging.getLogger(__name__)

DEFAULT_ROWS = 20_000
"""Rows of the synthetic table local trials train on (small: a search runs many jobs)."""


@dataclass(frozen=True)
class LocalTrial:
    number: int
    hyperparameters: dict[str, str]
    value: float | None
    failure: str | None


def suggest(trial: Any, space: Mapping[str, TuningRange]) -> dict[str, str]:
    """Ask an Optuna trial for one value per range, as the strings a job receives."""
    values: dict[str, str] = {}
    for name, rng in space.items():
        log = rng.scaling == "Logarithmic"
        if rng.kind == "categorical":
            values[name] = str(trial.suggest_categorical(name, list(rng.values)))
        elif rng.kind == "integer":
            values[name] = str(trial.suggest_int(name, int(rng.low), int(rng.high), log=log))
        else:
            values[name] = repr(trial.suggest_float(name, float(rng.low), float(rng.high), log=log))
    return values


def objective_value(final_metrics: Mapping[str, float], objective: str) -> float | None:
    """The objective from a local job's final metrics (``validation:rmse`` is printed ``validation-rmse``)."""
    return final_metrics.get(objective, final_metrics.get(objective.replace(":", "-", 1)))


def tune_local(space: Mapping[str, TuningRange], fixed: Mapping[str, str], *, trials: int = 4, hosts: int = 1,
               objective: str = "validation:rmse", direction: str = "Minimize",
               run_job: Callable[..., LocalJobResult], seed: int = 0) -> list[LocalTrial]:
    """Optuna over ``space`` (minus what ``fixed`` pins); each trial is one local job via ``run_job``."""
    import optuna

    space = {name: rng for name, rng in space.items() if name not in fixed}
    if not space:
        raise ConfigError("every tuned hyperparameter is pinned: pin fewer (--set hyperparameters.NAME, "
                          "[hyperparameters]) or add ranges")
    results: list[LocalTrial] = []

    def _objective(trial: Any) -> float:
        hps = {**fixed, **suggest(trial, space)}
        result = run_job(hps, hosts=hosts)
        value = objective_value(result.final_metrics, objective) if result.exit_code == 0 else None
        results.append(LocalTrial(trial.number, hps, value, result.failure))
        logger.info("trial %d: %s = %s %s", trial.number, objective, value, result.failure or "")
        return value if value is not None else math.nan

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction=direction.lower(), sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(_objective, n_trials=trials)
    return sorted(results, key=lambda t: (t.value is None, _signed(t.value, direction)))


def run_local_tuning(space: Mapping[str, TuningRange], pinned: Mapping[str, str], *, trials: int = 4,
                     hosts: int = 1, objective: str = "validation:rmse", direction: str = "Minimize",
                     workdir: Path = DEFAULT_WORKDIR, rows: int = DEFAULT_ROWS) -> list[LocalTrial]:
    """Start the stand-ins once, seed the synthetic table, then search with one local job per trial.

    The demo's hyperparameters fill in what is neither searched nor ``pinned``; pins win over the search.
    """
    workdir = workdir.resolve()
    with LocalStack(workdir) as stack:
        table = demo_table("synthetic", rows)
        stack.ensure_table(table, data="synthetic", rows=rows)
        stack.put_secret(LOCAL_SECRET_ID, stack.snowflake_secret())
        env = {**stack.aws_env(), contract.SECRET_ID_ENV: LOCAL_SECRET_ID, **mlflow_env(workdir)}
        demo = {k: v for k, v in demo_hyperparameters("synthetic", table).items() if k not in space}
        return tune_local(space, {**demo, **encoded(pinned)}, trials=trials, hosts=hosts, objective=objective,
                          direction=direction, run_job=_job_runner(env, workdir))


def run_user_tuning(settings: Settings, data: Path | None, *, trials: int, hosts: int,
                    workdir: Path = DEFAULT_WORKDIR) -> list[LocalTrial]:
    """The settings' search (ranges, objective) over their job, on the Snowflake that
    :func:`launch.local.user_job.host_env` chooses; the settings' hyperparameters are pinned."""
    workdir = workdir.resolve()
    with host_env(settings, data, workdir) as env:
        return tune_local(search_space(settings), settings.job_hyperparameters, trials=trials, hosts=hosts,
                          objective=settings.tuning.objective, direction=settings.tuning.objective_type,
                          run_job=_job_runner(env, workdir))


def _job_runner(env: Mapping[str, str], workdir: Path) -> Callable[..., LocalJobResult]:
    """One local job per trial, all children of one local tuning job (its MLflow parent run)."""
    env = {**env, contract.TUNING_JOB_ENV: f"local-tune-{time.strftime('%Y%m%d-%H%M%S')}"}

    def run_job(hps: dict[str, str], hosts: int) -> LocalJobResult:
        return run_local_job(hps, hosts=hosts, workdir=workdir, env=env)

    return run_job


def _signed(value: float | None, direction: str) -> float:
    if value is None:
        return math.inf
    return value if direction == "Minimize" else -value


def local_trials_table(trials: list[LocalTrial], objective: str) -> str:
    lines = [f"{'trial':>5} {objective:>16}  hyperparameters"]
    for t in trials:
        shown = f"{t.value:.6g}" if t.value is not None else f"failed: {t.failure or '?'}"
        tuned = " ".join(f"{k}={v}" for k, v in sorted(t.hyperparameters.items()))
        lines.append(f"{t.number:>5} {shown:>16}  {tuned}")
    return "\n".join(lines)
