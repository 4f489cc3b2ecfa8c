"""``python -m launch score``: score a Snowflake table with a trained model into another table, all or nothing.

    python -m launch score --training-job xgb-housing-ab12-2612060101 \\
        --source ANALYTICS.PUBLIC.HOUSES --target ANALYTICS.PUBLIC.HOUSE_SCORES --keys ID --wait
    python -m launch score --local --model work/jobs/<job>/127.0.0.1/model \\
        --source DEMO.PUBLIC.CALIFORNIA_HOUSING --target DEMO.PUBLIC.HOUSING_SCORES --keys ID --output scores.csv

The job is the container's ``score`` command on N hosts (:mod:`training.scoring.job`): the leader's one
query dealt to the hosts, rows coded by the model's column plan, every host appending to a staging
table that the leader makes the target once all have written. On SageMaker it is a training job
running that command (:mod:`launch.scoring_jobs`) on the settings' instances; locally, N hosts against
the embedded Snowflake (docs/scoring.md).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from launch import aws, console, follower, scoring_jobs
from launch.settings import Settings, load_settings
from training.errors import ConfigError, UserError
from training.scoring.options import ScoreOptions


@dataclass(frozen=True)
class ScoreOutcome:
    """A submitted (or, with ``request``, a dry-run) scoring job, and its end when waited for."""

    job_name: str
    request: dict[str, Any] | None = None
    status: str | None = None
    failure_reason: str | None = None


def score(settings: Settings, options: dict[str, str], *, model_url: str | None = None,
          training_job: str | None = None, dry_run: bool = False, wait: bool = False, session: Any = None,
          poll_seconds: float = 10.0, echo: follower.Echo = print, sleep: follower.Sleep = time.sleep) -> ScoreOutcome:
    """Submit the scoring job (``session``: a boto3 session); with ``wait``, follow it to its end."""
    session = session or aws.boto_session(settings.region)
    if training_job:
        model_url = aws.job_model_url(session.client("sagemaker"), training_job, "score with",
                                      "its model.tar.gz (--model-url)")
    assert model_url is not None
    request = scoring_jobs.scoring_request(settings, options, model_url)
    if dry_run:
        return ScoreOutcome(request["TrainingJobName"], request=request)
    sagemaker = session.client("sagemaker")
    sagemaker.create_training_job(**request)
    name = request["TrainingJobName"]
    if not wait:
        return ScoreOutcome(name)
    echo(f"following {name} until it ends (Ctrl-C stops following, not the job)")
    desc = follower.follow_training(sagemaker, session.client("logs"), name, echo=echo, poll_seconds=poll_seconds,
                                    sleep=sleep)
    return ScoreOutcome(name, status=desc["TrainingJobStatus"], failure_reason=desc.get("FailureReason"))


def command_parser(subparsers: Any) -> argparse.ArgumentParser:
    """``score``'s flags: a subparser of ``python -m launch``."""
    description = ("Score a Snowflake table with a trained model into another table: every key once, the prediction "
                   "(the class as the table has it) and each class's probability; all or nothing.")
    p = subparsers.add_parser("score", help="score a table into another with a trained model", description=description)
    which = p.add_argument_group("the model")
    which.add_argument("--training-job", help="a Completed training job: its model.tar.gz (SageMaker)")
    which.add_argument("--model-url", help="an s3:// model.tar.gz this project's training job wrote (SageMaker)")
    which.add_argument("--model", type=Path, help="--local: a job's model folder or xgboost-model file, or an MLflow "
                       "model folder (mlflow artifacts download -u models:/NAME@ALIAS)")
    p.add_argument("--source", required=True, help="the table to score: NAME, SCHEMA.NAME or DATABASE.SCHEMA.NAME")
    p.add_argument("--target", required=True, help="the table to (re)write with the predictions")
    p.add_argument("--keys", default="", help="comma-separated key columns to carry through (quote case-sensitive "
                   "names: '\"id\"')")
    p.add_argument("--model-name", default="", help="the MODEL_NAME column's value (e.g. the registered model)")
    p.add_argument("--model-version", default="", help="the MODEL_VERSION column's value")
    p.add_argument("--run-id", default="", help="the RUN_ID column's value (the MLflow run that trained it)")
    p.add_argument("--dry-run", action="store_true", help="print the CreateTrainingJob request; send nothing")
    p.add_argument("--wait", action="store_true", help="follow the job to its end (Ctrl-C stops following, not the job)")
    local = p.add_argument_group("local mode (no AWS)")
    local.add_argument("--local", action="store_true", help="run the job on this machine against the embedded "
                       "Snowflake")
    local.add_argument("--hosts", type=int, default=2, help="simulated hosts (default 2)")
    local.add_argument("--workdir", type=Path, help="work directory (default ./work)")
    local.add_argument("--output", type=Path, help="also write the target's rows to this file (.parquet, else CSV)")
    console.add_data_argument(local)
    console.add_settings_arguments(p)
    p.set_defaults(func=score_command)
    return p


def score_command(args: argparse.Namespace, session: Any = None) -> int:
    options = {"source_table": args.source, "target_table": args.target, "key_columns": args.keys,
               "model_name": args.model_name, "model_version": args.model_version, "run_id": args.run_id}
    if args.local:
        if args.training_job or args.model_url:
            raise ConfigError("--model-url and --training-job are for SageMaker jobs: with --local give --model PATH "
                              "(mlflow artifacts download, or the job's model.tar.gz unpacked)")
        return _local(args, options)
    if args.model is not None:
        raise ConfigError("--model PATH is for --local: a SageMaker job reads --training-job NAME or --model-url s3://...")
    if bool(args.training_job) == bool(args.model_url):
        raise ConfigError("give the model: --training-job NAME (a Completed job) or --model-url s3://.../model.tar.gz"
                          + (", not both" if args.training_job else ""))
    if args.model_url and not args.model_url.startswith("s3://"):
        raise ConfigError(f"--model-url {args.model_url!r} is not an s3:// URL: give the model.tar.gz a training job "
                          "wrote (its ModelArtifacts.S3ModelArtifacts)")
    console.configure_logging(args.verbose)
    ScoreOptions.parse(options)  # a bad name fails here, before any AWS call
    settings = load_settings(args.settings, args.set)
    outcome = score(settings, options, model_url=args.model_url, training_job=args.training_job,
                    dry_run=args.dry_run, wait=args.wait, session=session)
    if outcome.request is not None:
        print(json.dumps(outcome.request, indent=2, sort_keys=True, default=str))
        return 0
    print(f"scoring job: {outcome.job_name}")
    if outcome.status is None:
        return 0
    print(f"status: {outcome.status}")
    if outcome.status != "Completed":
        raise UserError(f"scoring job {outcome.job_name} {outcome.status}: {outcome.failure_reason or 'no reason given'}"
                        f"; the target {args.target} is as it was")
    return 0


def _local(args: argparse.Namespace, options: dict[str, str]) -> int:
    from launch.local import scoring, services

    if args.model is None:
        raise ConfigError("--local needs --model PATH: a job's model folder or xgboost-model file, or an MLflow model "
                          "folder")
    console.configure_logging(args.verbose, prefix="local: ")
    if args.dry_run or args.wait:
        raise ConfigError("--local sends nothing to AWS: drop --dry-run/--wait")
    if not 1 <= args.hosts <= console.LOCAL_HOSTS_MAX:  # before any local service starts
        raise ConfigError(f"--hosts must be between 1 and {console.LOCAL_HOSTS_MAX} in local mode, got {args.hosts}")
    ScoreOptions.parse(options)  # a bad name fails here, before any local service starts
    done = scoring.run_local_scoring(args.model, options, hosts=args.hosts, workdir=args.workdir or
                                     services.DEFAULT_WORKDIR, data=args.data, output=args.output)
    result = done.result
    print()
    if result.exit_code != 0:
        raise UserError(f"local scoring job {result.job_name} failed: {result.failure or f'exit code {result.exit_code}'}"
                        f"; the target {args.target} is as it was")
    print(f"local scoring job {result.job_name} succeeded in {done.seconds:.1f} s: {done.target_rows:,} rows in "
          f"{args.target}")
    if done.output:
        print(f"rows: {done.output}")
    print("logs:  " + "  ".join(str(p) for p in result.logs))
    return 0
