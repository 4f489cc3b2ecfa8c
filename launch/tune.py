"""``python launch/tune.py``: a SageMaker hyperparameter tuning job (or the same search locally).

    python launch/tune.py --dry-run                 # print the CreateHyperParameterTuningJob request
    python launch/tune.py --wait                    # submit, follow, end with a table of trials
    python launch/tune.py --local --trials 4        # Optuna over the same space, local jobs, no AWS

The search space is the hyperparameter table's tuning ranges (``training/hyperparameters.py``)
with ``[tuning]`` overrides; the objective (default ``validation:rmse``, minimised) must be one of
the metric definitions derived from ``eval_metric``, checked before anything is sent.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: import from the repo root, not from launch/
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from launch import aws, cli, jobs
from launch.settings import Settings, find_settings_file, load_settings
from launch.tuning_space import search_space
from training import contract
from training.errors import ConfigError, UserError
from training.hyperparameters import TuningRange, tunable

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TuneOutcome:
    """What ``tune`` did: the request (dry run) or the job's name, and its trials when waited for."""

    job_name: str
    request: dict[str, Any] | None = None
    status: str | None = None
    trials: list[dict[str, Any]] = field(default_factory=list)


def tune(settings: Settings, *, dry_run: bool = False, wait: bool = False, session: Any = None,
         job_name: str | None = None, poll_seconds: float = 60.0) -> TuneOutcome:
    """Submit the tuning job described by ``settings`` (``session``: a boto3 session)."""
    jobs.check_objective(settings)
    name = job_name or jobs.tuning_job_name(settings.job_prefix)
    if dry_run:
        return TuneOutcome(name, request=jobs.tuning_request(settings, name))
    session = session or aws.boto_session(settings.region)
    trainer = jobs.build_trainer(settings, aws.sdk_session(session))
    aws.submit_tuning(jobs.build_tuner(settings, trainer), name)
    if not wait:
        return TuneOutcome(name)
    client = session.client("sagemaker")
    desc = aws.wait_for_tuning(client, name, poll_seconds)
    trials = aws.list_trials(client, name, settings.tuning.objective_type)
    return TuneOutcome(name, status=desc["HyperParameterTuningJobStatus"], trials=trials)


def trials_table(trials: list[dict[str, Any]], objective: str) -> str:
    """Trials, best first (as listed): name, status, objective value, tuned hyperparameters."""
    lines = [f"{'training job':<40} {'status':<10} {objective:>16}  hyperparameters"]
    for trial in trials:
        value = trial.get("FinalHyperParameterTuningJobObjectiveMetric", {}).get("Value")
        shown = f"{value:.6g}" if value is not None else "-"
        params = " ".join(f"{k}={v}" for k, v in sorted(trial.get("TunedHyperParameters", {}).items()))
        lines.append(f"{trial['TrainingJobName']:<40} {trial['TrainingJobStatus']:<10} {shown:>16}  {params}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Local: the same search space, Optuna, jobs run by launch.local


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
               objective: str = "validation:rmse", direction: str = "Minimize", run_job: Any = None,
               seed: int = 0) -> list[LocalTrial]:
    """Optuna over ``space`` (minus what ``fixed`` pins); each trial is one local job via ``run_job``."""
    import optuna

    space = {name: rng for name, rng in space.items() if name not in fixed}
    if not space:
        raise ConfigError("every tuned hyperparameter is pinned: pin fewer (--hp, [hyperparameters]) or add ranges")
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


def _local_settings(args: argparse.Namespace) -> Settings | None:
    """Local tuning uses the settings file if there is one (its ranges and hyperparameters)."""
    try:
        find_settings_file(args.settings)
    except ConfigError:
        if args.settings:
            raise
        return None
    return load_settings(args.settings, args.set)


def main_local(args: argparse.Namespace) -> int:
    """``tune.py --local``: start the local stand-ins once, then run the trials against them."""
    from launch import local

    settings = _local_settings(args)
    space = search_space(settings) if settings else {s.name: s.tuning for s in tunable() if s.tuning}
    objective = settings.tuning.objective if settings else "validation:rmse"
    direction = settings.tuning.objective_type if settings else "Minimize"
    trials = args.trials or (settings.tuning.local_trials if settings else 4)
    hosts = args.hosts or (settings.tuning.local_hosts if settings else 1)
    workdir = Path(args.workdir or local.DEFAULT_WORKDIR).resolve()
    with local.LocalStack(workdir) as stack:
        table = local.DEMO_TABLES["synthetic"][0] + f"_{args.rows}"
        stack.ensure_table(table, data="synthetic", rows=args.rows)
        stack.put_secret(local.DEMO_SECRET_ID, stack.snowflake_secret())
        # Every trial's MLflow run becomes a child of one parent named after this local tuning job.
        tuning_job = f"local-tune-{time.strftime('%Y%m%d-%H%M%S')}"
        env = {**stack.aws_env(), contract.SECRET_ID_ENV: local.DEMO_SECRET_ID, **local.mlflow_env(workdir),
               contract.TUNING_JOB_ENV: tuning_job}
        # The demo's defaults fill in what is not searched; the user's pins win over the search.
        demo = {k: v for k, v in local.demo_hyperparameters("synthetic", table).items() if k not in space}
        fixed = {**demo, **_fixed(settings, args)}

        def run_job(hps: dict[str, str], hosts: int) -> Any:
            return local.run_local_job(hps, hosts=hosts, workdir=workdir, env=env)

        results = tune_local(space, fixed, trials=trials, hosts=hosts, objective=objective,
                             direction=direction, run_job=run_job)
    print(local_trials_table(results, objective))
    return 0 if any(t.value is not None for t in results) else 1


def _fixed(settings: Settings | None, args: argparse.Namespace) -> dict[str, str]:
    fixed = dict(settings.hyperparameters) if settings else {}
    for item in args.hp:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--hp expects NAME=VALUE, got {item!r}: write e.g. --hp num_round=20")
        fixed[key.strip()] = value.strip()
    return fixed


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Tune XGBoost hyperparameters with a SageMaker tuning job.")
    cli.add_settings_arguments(p)
    p.add_argument("--dry-run", action="store_true", help="print the tuning request; send nothing")
    p.add_argument("--wait", action="store_true", help="follow the job; end with a table of trials")
    p.add_argument("--job-name", help="tuning job name (default: <job_prefix>-<time>-<random>)")
    local = p.add_argument_group("local mode (no AWS)")
    local.add_argument("--local", action="store_true", help="run the search locally with Optuna")
    local.add_argument("--trials", type=int, help="local trials (default: tuning.local_trials)")
    local.add_argument("--hosts", type=int, help="hosts per local trial (default: tuning.local_hosts)")
    local.add_argument("--workdir", type=Path, help="work directory (default ./work)")
    local.add_argument("--rows", type=int, default=20_000, help="rows of the synthetic demo table")
    local.add_argument("--hp", action="append", default=[], metavar="NAME=VALUE",
                       help="pin a hyperparameter in local trials, e.g. --hp num_round=20")
    return p


def main(argv: list[str] | None = None, *, session: Any = None) -> int:
    args = parser().parse_args(argv)
    cli.configure_logging(args.verbose)
    if args.local:
        return cli.run(lambda: main_local(args))
    return cli.run(lambda: _submit(args, session))


def _submit(args: argparse.Namespace, session: Any) -> int:
    settings = load_settings(args.settings, args.set)
    outcome = tune(settings, dry_run=args.dry_run, wait=args.wait, session=session, job_name=args.job_name)
    if outcome.request is not None:
        print(json.dumps(outcome.request, indent=2, sort_keys=True, default=str))
        return 0
    print(f"tuning job: {outcome.job_name}")
    if outcome.status is None:
        return 0
    print(f"status: {outcome.status}")
    print(trials_table(outcome.trials, settings.tuning.objective))
    if outcome.status != "Completed":
        raise UserError(f"tuning job {outcome.job_name} ended {outcome.status}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
