"""``python -m launch tune``: a SageMaker hyperparameter tuning job (or the same search locally).

    python -m launch tune --dry-run                 # print the CreateHyperParameterTuningJob request
    python -m launch tune --wait                    # submit, show the trials table as trials start and
                                                    # end, end with the table
    python -m launch tune --local --trials 4        # Optuna over the same space, local jobs, no AWS
    python -m launch tune --local --settings settings.toml --data orders.csv   # on your table, locally

The search space is the hyperparameter table's tuning ranges (``training/hyperparameters/table.py``)
with ``[tuning]`` overrides; the objective (default ``validation:rmse``, minimised) must be one of
the metric definitions derived from ``eval_metric``, checked before anything is sent.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from launch import aws, console, follower, jobs
from launch.settings import (
    Settings,
    check_under_prefix,
    find_settings_file,
    load_settings,
    local_hyperparameters,
)
from launch.tuning_space import default_space, pinned_note, search_space
from training.errors import ConfigError, UserError

logger = logging.getLogger(__name__)

TUNING_JOB_NAME = re.compile(rf"[a-zA-Z0-9](-*[a-zA-Z0-9]){{0,{jobs.TUNING_NAME_MAX - 1}}}")
"""CreateHyperParameterTuningJob's name pattern (at most 32 characters)."""


@dataclass(frozen=True)
class TuneOutcome:
    """What ``tune`` did: the request (dry run) or the job's name, and its trials when waited for."""

    job_name: str
    request: dict[str, Any] | None = None
    status: str | None = None
    trials: list[dict[str, Any]] = field(default_factory=list)


def tune(settings: Settings, *, dry_run: bool = False, wait: bool = False, session: Any = None,
         job_name: str | None = None, poll_seconds: float = 60.0, echo: follower.Echo = print,
         sleep: follower.Sleep = time.sleep) -> TuneOutcome:
    """Submit the tuning job described by ``settings`` (``session``: a boto3 session); with ``wait``,
    follow it through ``echo``: its status and trials table when they change, until it ends."""
    jobs.check_objective(settings)
    if job_name is not None and (len(job_name) > jobs.TUNING_NAME_MAX or not TUNING_JOB_NAME.fullmatch(job_name)):
        raise ConfigError(f"--job-name {job_name!r} is not a tuning job name: at most {jobs.TUNING_NAME_MAX} letters, "
                          "digits and dashes, starting and ending with a letter or digit")
    if job_name is not None:
        check_under_prefix("--job-name", job_name, settings.job_prefix)
    note = pinned_note(settings.tuning.ranges, settings.hyperparameters)
    if note:
        logger.warning(note)
    name = job_name or jobs.tuning_job_name(settings.job_prefix)
    session = session or aws.boto_session(settings.region)
    if dry_run:
        return TuneOutcome(name, request=jobs.tuning_request(settings, name, session))
    trainer = jobs.build_trainer(settings, aws.sdk_session(session))
    aws.submit_tuning(jobs.build_tuner(settings, trainer), name)
    if not wait:
        return TuneOutcome(name)
    client = session.client("sagemaker")
    echo(f"following {name} until it ends (Ctrl-C stops following, not the job)")
    desc = follower.follow_tuning(
        client, name, echo=echo, poll_seconds=poll_seconds, sleep=sleep,
        table=lambda: trials_table(aws.list_trials(client, name, settings.tuning.objective_type),
                                   settings.tuning.objective))
    trials = aws.list_trials(client, name, settings.tuning.objective_type)
    return TuneOutcome(name, status=desc["HyperParameterTuningJobStatus"], trials=trials)


def trials_table(trials: list[dict[str, Any]], objective: str) -> str:
    """Trials, best first (as listed): name, status, objective value, tuned hyperparameters; under a
    trial that failed, its failure reason (SageMaker's FailureReason: the container's one line)."""
    lines = [f"{'training job':<40} {'status':<10} {objective:>16}  hyperparameters"]
    for trial in trials:
        value = trial.get("FinalHyperParameterTuningJobObjectiveMetric", {}).get("Value")
        shown = f"{value:.6g}" if value is not None else "-"
        params = " ".join(f"{k}={v}" for k, v in sorted(trial.get("TunedHyperParameters", {}).items()))
        lines.append(f"{trial['TrainingJobName']:<40} {trial['TrainingJobStatus']:<10} {shown:>16}  {params}")
        if trial.get("FailureReason"):
            lines.append(f"    failed: {trial['FailureReason']}")
    if not trials:
        lines.append("(no training job was started)")
    return "\n".join(lines)


def command_parser(subparsers: Any) -> argparse.ArgumentParser:
    """``tune``'s flags: a subparser of ``python -m launch``."""
    description = "Tune XGBoost hyperparameters with a SageMaker tuning job."
    p = subparsers.add_parser("tune", help="submit a tuning job, or search locally", description=description)
    console.add_settings_arguments(p)
    p.add_argument("--dry-run", action="store_true", help="print the tuning request; send nothing")
    p.add_argument("--wait", action="store_true", help="follow the job: the trials table whenever a trial starts "
                   "or ends, then the final table (Ctrl-C stops following, not the job)")
    p.add_argument("--job-name", help="tuning job name (default: <job_prefix>-<time>-<random>)")
    local = p.add_argument_group("local mode (no AWS)", "pin a hyperparameter in every local trial with "
                                 "--set hyperparameters.NAME=VALUE")
    local.add_argument("--local", action="store_true", help="run the search locally with Optuna")
    local.add_argument("--trials", type=int, help="local trials (default: tuning.local_trials)")
    local.add_argument("--hosts", type=int, help="hosts per local trial (default: tuning.local_hosts)")
    local.add_argument("--workdir", type=Path, help="work directory (default ./work)")
    console.add_data_argument(local)
    local.add_argument("--rows", type=int, help="rows of the synthetic demo table (default 20,000)")
    p.set_defaults(func=tune_command)
    return p


def tune_command(args: argparse.Namespace, session: Any = None) -> int:
    console.configure_logging(args.verbose)
    if args.local:
        return _local(args)
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


def _local(args: argparse.Namespace) -> int:
    """Local tuning. With ``--settings``: the settings' job (its table, as ``train --local``
    reads it, :mod:`launch.local.user_job`), ranges and ``[tuning]``. Without: the synthetic demo
    table, with the ranges, ``[tuning]`` and pins of a settings file if one is found.

    ``--set hyperparameters.NAME=VALUE`` and ``data.*`` pin the trials' job as in ``train --local``;
    other keys override the settings file (and, with no file, are refused).
    """
    from launch.local import services, tuning

    console.check_local_flags(args)
    if args.settings:
        return _local_user_job(args)
    settings = _local_settings(args)
    space = search_space(settings) if settings else default_space()
    pinned = {**(settings.hyperparameters if settings else {}),
              **local_hyperparameters(args.set, settings_file=settings is not None)}
    note = pinned_note(settings.tuning.ranges if settings else {}, pinned)
    if note:
        logger.warning(note)
    objective = settings.tuning.objective if settings else "validation:rmse"
    results = tuning.run_local_tuning(
        space, pinned, trials=args.trials or (settings.tuning.local_trials if settings else 4),
        hosts=args.hosts or (settings.tuning.local_hosts if settings else 1), objective=objective,
        direction=settings.tuning.objective_type if settings else "Minimize",
        workdir=args.workdir or services.DEFAULT_WORKDIR, rows=args.rows or tuning.DEFAULT_ROWS)
    return _local_report(results, objective)


def _local_user_job(args: argparse.Namespace) -> int:
    from launch.local import services, tuning

    settings = load_settings(args.settings, args.set, local=True)
    note = pinned_note(settings.tuning.ranges, settings.hyperparameters)
    if note:
        logger.warning(note)
    objective = settings.tuning.objective
    results = tuning.run_user_tuning(
        settings, args.data, trials=args.trials or settings.tuning.local_trials,
        hosts=args.hosts or settings.tuning.local_hosts, workdir=args.workdir or services.DEFAULT_WORKDIR)
    return _local_report(results, objective)


def _local_report(results: list[Any], objective: str) -> int:
    from launch.local import tuning

    print(tuning.local_trials_table(results, objective))
    if not any(t.value is not None for t in results):
        raise UserError(f"no local trial finished with {objective}: each trial's failure is in the table above")
    return 0


def _local_settings(args: argparse.Namespace) -> Settings | None:
    try:
        find_settings_file(args.settings)
    except ConfigError:
        if args.settings:
            raise
        return None
    return load_settings(args.settings, args.set)
