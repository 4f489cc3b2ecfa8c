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
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from launch import aws, console, follower, scoring_jobs
from launch.registry import DEFAULT_ALIAS
from launch.settings import Settings, load_settings
from training import contract
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
          training_job: str | None = None, registered: Registered | None = None, dry_run: bool = False,
          wait: bool = False, session: Any = None, poll_seconds: float = 10.0, echo: follower.Echo = print,
          sleep: follower.Sleep = time.sleep) -> ScoreOutcome:
    """Submit the scoring job (``session``: a boto3 session); with ``wait``, follow it to its end. The model is a
    registered version (downloaded, tarred and uploaded beside the job's output), a training job's, or an S3 URL."""
    session = session or aws.boto_session(settings.region)
    job_name = scoring_jobs.scoring_job_name(settings.job_prefix)
    if training_job:
        model_url = aws.job_model_url(session.client("sagemaker"), training_job, "score with",
                                      "its model.tar.gz (--model-url)")
        options = {**options, "model_name": training_job}
    if registered is not None:
        model_url = f"{settings.output.s3_path.rstrip('/')}/{job_name}/model/{contract.MODEL_ARCHIVE}"
        options = {**options, **registered.lineage}
    assert model_url is not None
    request = scoring_jobs.scoring_request(settings, options, model_url, job_name)
    if dry_run:
        return ScoreOutcome(request["TrainingJobName"], request=request)
    if registered is not None:
        import tempfile

        from launch import registry

        with tempfile.TemporaryDirectory() as tmp:
            model_dir = registry.download_version(registered.tracking_uri, registered.name, registered.version,
                                                  Path(tmp) / "model")
            aws.upload_model(session, model_dir, model_url, settings.kms.output_key_id, Path(tmp) / contract.MODEL_ARCHIVE)
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
    which = p.add_argument_group("the model (one of)")
    which.add_argument("--model-name", help="a registered MLflow model: its --alias (default champion) or --version")
    which.add_argument("--training-job", help="a Completed training job: its model.tar.gz (SageMaker)")
    which.add_argument("--model-url", help="an s3:// model.tar.gz this project's training job wrote (SageMaker)")
    which.add_argument("--model", type=Path, help="--local: a job's model folder or xgboost-model file, or an MLflow "
                       "model folder")
    p.add_argument("--alias", help=f"with --model-name: the alias (default {DEFAULT_ALIAS})")
    p.add_argument("--version", help="with --model-name: the version instead of an alias")
    console.add_tracking_argument(p)
    p.add_argument("--source", required=True, help="the table to score: NAME, SCHEMA.NAME or DATABASE.SCHEMA.NAME")
    p.add_argument("--target", required=True, help="the table to (re)write with the predictions")
    p.add_argument("--keys", default="", help="comma-separated key columns to carry through (quote case-sensitive "
                   "names: '\"id\"')")
    p.add_argument("--explain", type=int, default=0, metavar="K", help="also write each row's K largest SHAP "
                   "contributions (SHAP_<i>_FEATURE, SHAP_<i>_VALUE; default 0: none)")
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
               **({"explain": str(args.explain)} if args.explain else {})}
    sources = [bool(args.model_name), bool(args.training_job), bool(args.model_url), args.model is not None]
    if sum(sources) != 1:
        raise ConfigError("give the model, once: --model-name NAME (registered; --alias or --version), --training-job "
                          "NAME (a Completed job), --model-url s3://.../model.tar.gz, or, with --local, --model PATH")
    if (args.alias or args.version) and not args.model_name:
        raise ConfigError("--alias and --version go with --model-name (a registered model)")
    ScoreOptions.parse(options)  # a bad name fails here, before anything starts
    if args.local:
        if args.training_job or args.model_url:
            raise ConfigError("--model-url and --training-job are for SageMaker jobs: with --local give --model PATH "
                              "or --model-name NAME")
        return _local(args, options)
    if args.model is not None:
        raise ConfigError("--model PATH is for --local: a SageMaker job reads --model-name, --training-job or "
                          "--model-url")
    if args.model_url and not args.model_url.startswith("s3://"):
        raise ConfigError(f"--model-url {args.model_url!r} is not an s3:// URL: give the model.tar.gz a training job "
                          "wrote (its ModelArtifacts.S3ModelArtifacts)")
    console.configure_logging(args.verbose)
    settings = load_settings(args.settings, args.set)
    outcome = score(settings, options, model_url=args.model_url, training_job=args.training_job,
                    registered=_registered(args, settings) if args.model_name else None,
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


@dataclass(frozen=True)
class Registered:
    """A registered model version: where the registry is, its name, version and run."""

    tracking_uri: str
    name: str
    version: str
    run_id: str

    @property
    def lineage(self) -> dict[str, str]:
        """The target's lineage columns' values."""
        return {"model_name": self.name, "model_version": self.version, "run_id": self.run_id}


def _registered(args: argparse.Namespace, settings: Settings | None = None) -> Registered:
    """The registered version ``--model-name`` with ``--alias`` or ``--version`` names, looked up in MLflow."""
    from launch import registry

    uri = (args.tracking_uri or os.environ.get(contract.TRACKING_URI_ENV, "")
           or (settings.mlflow.tracking_uri if settings else ""))
    if not uri:
        raise ConfigError("--model-name needs the MLflow tracking URI: pass --tracking-uri, or set MLFLOW_TRACKING_URI "
                          "or the settings' mlflow.tracking_uri")
    version = registry.model_version(uri, args.model_name, alias=None if args.version else (args.alias or DEFAULT_ALIAS),
                                     version=args.version)
    return Registered(uri, args.model_name, version, registry.version_run_id(uri, args.model_name, version))


def _local(args: argparse.Namespace, options: dict[str, str]) -> int:
    from launch.local import scoring, services

    console.configure_logging(args.verbose, prefix="local: ")
    workdir = args.workdir or services.DEFAULT_WORKDIR
    model = args.model
    if args.model_name:  # a registered version of the local (or given) MLflow: downloaded under the work directory
        from launch import registry
        from launch.local.runs import mlflow_env

        if not args.tracking_uri and not os.environ.get(contract.TRACKING_URI_ENV):
            args.tracking_uri = mlflow_env(workdir.resolve()).get(contract.TRACKING_URI_ENV, "")
        registered = _registered(args)
        model = registry.download_version(registered.tracking_uri, registered.name, registered.version,
                                          workdir.resolve() / "models" / f"{registered.name}-{registered.version}")
        options = {**options, **registered.lineage}
    console.check_local_flags(args, data_needs_settings=False)  # --source names the --data file's table
    done = scoring.run_local_scoring(model, options, hosts=args.hosts, workdir=workdir, data=args.data,
                                     output=args.output)
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
    if done.tracking_uri:
        print(console.tracking_line(done.tracking_uri))
    return 0
