"""``python -m launch train``: submit one SageMaker training job (or run it locally).

    python -m launch train --dry-run         # print the exact CreateTrainingJob request, send nothing
    python -m launch train --wait            # submit; show status changes, every host's log lines and
                                             # a progress line per batch of rounds; end with the status
    python -m launch train --local --hosts 2 # the same container program on this machine (the demo)
    python -m launch train --local --settings settings.toml --data orders.parquet
                                             # your job on this machine, on a local copy of its table

:func:`train` (AWS), :func:`launch.local.user_job.run_user_job` (your job, locally) and
:func:`launch.local.demo.run_local` (the demo) are the commands;
:func:`train_command` only loads settings, calls one of them and reports.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from launch import aws, console, follower, jobs
from launch.settings import Settings, load_settings, local_hyperparameters
from training.errors import UserError
from training.objectives.metrics import final_line

if TYPE_CHECKING:
    from launch.local.runs import LocalRun

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainOutcome:
    """What ``train`` did: the request (dry run) or the job's name, and its end when waited for."""

    job_name: str
    request: dict[str, Any] | None = None
    status: str | None = None
    failure_reason: str | None = None
    final_metrics: dict[str, float] | None = None


def train(settings: Settings, *, dry_run: bool = False, wait: bool = False, session: Any = None,
          poll_seconds: float = 10.0, echo: follower.Echo = print, sleep: follower.Sleep = time.sleep) -> TrainOutcome:
    """Submit the training job described by ``settings`` (``session``: a boto3 session); with ``wait``,
    follow it to its end through ``echo`` (:func:`launch.follower.follow_training`)."""
    session = session or aws.boto_session(settings.region)
    if dry_run:
        request = jobs.training_request(settings, session)
        return TrainOutcome(request["TrainingJobName"], request=request)
    name = aws.submit_training(jobs.build_trainer(settings, aws.sdk_session(session)))
    if not wait:
        return TrainOutcome(name)
    echo(f"following {name} until it ends (Ctrl-C stops following, not the job)")
    desc = follower.follow_training(session.client("sagemaker"), session.client("logs"), name, echo=echo,
                                    poll_seconds=poll_seconds, sleep=sleep)
    metrics = {m["MetricName"]: m["Value"] for m in desc.get("FinalMetricDataList", [])}
    return TrainOutcome(name, status=desc["TrainingJobStatus"], failure_reason=desc.get("FailureReason"),
                        final_metrics=metrics)


def command_parser(subparsers: Any) -> argparse.ArgumentParser:
    """``train``'s flags: a subparser of ``python -m launch``."""
    description = "Train XGBoost on a Snowflake table with SageMaker."
    p = subparsers.add_parser("train", help="submit a training job, or run it locally", description=description)
    console.add_settings_arguments(p)
    p.add_argument("--dry-run", action="store_true", help="print the CreateTrainingJob request; send nothing")
    p.add_argument("--wait", action="store_true", help="follow the job to its end: status changes, every host's log lines, "
                   "round progress (Ctrl-C stops following, not the job)")
    local = p.add_argument_group("local mode (no AWS)")
    local.add_argument("--local", action="store_true", help="run the job on this machine: with --settings, "
                       "your job (on --data FILE, else your Snowflake); without, the demo")
    local.add_argument("--hosts", type=int, default=2, help="simulated hosts (default 2)")
    local.add_argument("--workdir", type=Path, help="work directory (default ./work)")
    console.add_data_argument(local)
    local.add_argument("--demo-data", choices=("california", "synthetic", "mixed"), default="california")
    local.add_argument("--rows", type=int, help="rows of synthetic or mixed demo data")
    p.set_defaults(func=train_command)
    return p


def train_command(args: argparse.Namespace, session: Any = None) -> int:
    if args.local:
        return _local(args)
    console.configure_logging(args.verbose)
    settings = load_settings(args.settings, args.set)
    outcome = train(settings, dry_run=args.dry_run, wait=args.wait, session=session)
    if outcome.request is not None:
        print(json.dumps(outcome.request, indent=2, sort_keys=True, default=str))
        return 0
    print(f"training job: {outcome.job_name}")
    if outcome.status is None:
        return 0
    print(f"status: {outcome.status}")
    for name, value in (outcome.final_metrics or {}).items():
        print(f"  {name} = {value:g}")
    if outcome.status != "Completed":
        raise UserError(f"training job {outcome.job_name} {outcome.status}: "
                            f"{outcome.failure_reason or 'no reason given'}")
    return 0


def _local(args: argparse.Namespace) -> int:
    """With ``--settings``: the settings' job (:mod:`launch.local.user_job`); without: the demo job,
    ``--set hyperparameters.NAME=VALUE`` overriding the demo's."""
    from launch.local import demo, services, user_job

    console.configure_logging(args.verbose, prefix="local: ")
    console.check_local_flags(args)
    workdir = args.workdir or services.DEFAULT_WORKDIR
    if args.settings:
        settings = load_settings(args.settings, args.set, local=True)
        done = user_job.run_user_job(settings, args.data, hosts=args.hosts, workdir=workdir)
    else:
        done = demo.run_local(local_hyperparameters(args.set), hosts=args.hosts, workdir=workdir,
                              data=args.demo_data, rows=args.rows or demo.DEFAULT_ROWS)
    _report(done)
    result = done.result
    if result.exit_code != 0:
        raise UserError(f"local job {result.job_name} failed: {result.failure or f'exit code {result.exit_code}'}")
    return 0


def _report(done: LocalRun) -> None:
    result = done.result
    print()
    status = "succeeded" if result.exit_code == 0 else f"FAILED (exit code {result.exit_code})"
    print(f"local job {result.job_name} {status} in {done.seconds:.1f} s")
    if result.final_metrics:
        print(final_line(result.final_metrics, result.rounds or 0))
    if result.model_path:
        print(f"model: {result.model_path}")
    print("logs:  " + "  ".join(str(p) for p in result.logs))
    if done.tracking_uri:
        print(console.tracking_line(done.tracking_uri))
