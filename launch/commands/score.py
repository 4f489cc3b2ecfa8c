"""``python -m launch score``: score a Snowflake table with a trained model into another table, all or nothing.

    python -m launch score --local --model work/jobs/<job>/127.0.0.1/model \\
        --source DEMO.PUBLIC.CALIFORNIA_HOUSING --target DEMO.PUBLIC.HOUSING_SCORES --keys ID --output scores.csv
    python -m launch score --local --model model/ --data customers.csv --source CUSTOMERS --target SCORES --keys ID

The job is the container's ``score`` command on N hosts (:mod:`training.scoring.job`): the leader's one
query dealt to the hosts, rows coded by the model's column plan, every host appending to a staging
table that the leader swaps in once all have written. Local mode runs it against the embedded
Snowflake (docs/scoring.md); scoring on SageMaker is not built yet.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from launch import console
from training.errors import ConfigError, UserError


def command_parser(subparsers: Any) -> argparse.ArgumentParser:
    """``score``'s flags: a subparser of ``python -m launch``."""
    description = ("Score a Snowflake table with a trained model into another table: every key once, the prediction "
                   "(the class as the table has it) and each class's probability; all or nothing.")
    p = subparsers.add_parser("score", help="score a table into another with a trained model (--local)",
                              description=description)
    p.add_argument("--model", type=Path, required=True, help="a job's model folder or xgboost-model file, or an "
                   "MLflow model folder (mlflow artifacts download models:/NAME@ALIAS)")
    p.add_argument("--source", required=True, help="the table to score: NAME, SCHEMA.NAME or DATABASE.SCHEMA.NAME")
    p.add_argument("--target", required=True, help="the table to (re)write with the predictions")
    p.add_argument("--keys", default="", help="comma-separated key columns to carry through (quote case-sensitive "
                   "names: '\"id\"')")
    p.add_argument("--model-name", default="", help="the MODEL_NAME column's value (e.g. the registered model)")
    p.add_argument("--model-version", default="", help="the MODEL_VERSION column's value")
    p.add_argument("--run-id", default="", help="the RUN_ID column's value (the MLflow run that trained it)")
    local = p.add_argument_group("local mode (no AWS)")
    local.add_argument("--local", action="store_true", help="run the job on this machine against the embedded "
                       "Snowflake (required for now)")
    local.add_argument("--hosts", type=int, default=2, help="simulated hosts (default 2)")
    local.add_argument("--workdir", type=Path, help="work directory (default ./work)")
    local.add_argument("--output", type=Path, help="also write the target's rows to this file (.parquet, else CSV)")
    console.add_data_argument(local)
    console.add_settings_arguments(p)
    p.set_defaults(func=score_command, dry_run=False, wait=False)
    return p


def score_command(args: argparse.Namespace, session: Any = None) -> int:
    from launch.local import scoring, services

    if not args.local:
        raise ConfigError("scoring runs locally for now: add --local (SageMaker scoring jobs are not built yet)")
    console.configure_logging(args.verbose, prefix="local: ")
    if args.hosts is not None and not 1 <= args.hosts <= console.LOCAL_HOSTS_MAX:
        raise ConfigError(f"--hosts must be between 1 and {console.LOCAL_HOSTS_MAX} in local mode, got {args.hosts}")
    options = {"source_table": args.source, "target_table": args.target, "key_columns": args.keys,
               "model_name": args.model_name, "model_version": args.model_version, "run_id": args.run_id}
    from training.scoring.options import ScoreOptions

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
