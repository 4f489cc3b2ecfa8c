"""``python -m launch register``: register a run's model in the MLflow Model Registry and point an alias at it.

    python -m launch register --model-name housing --run-id 4c10bf9a...          # one job's run
    python -m launch register --model-name housing --tuning-job xgb-tune-0101     # the best trial

The tracking URI and experiment come from ``--tracking-uri``/``--experiment``, else from
``MLFLOW_TRACKING_URI``/``MLFLOW_EXPERIMENT_NAME``, else from the launcher settings' ``[mlflow]``
section. :func:`launch.registry.register` is the command.
"""

from __future__ import annotations

import argparse
from typing import Any

from botocore.exceptions import BotoCoreError

from launch import console
from launch.registry import DEFAULT_ALIAS, mlflow_error, register
from training import contract


def command_parser(subparsers: Any) -> argparse.ArgumentParser:
    """``register``'s flags: a subparser of ``python -m launch``."""
    description = ("Register a run's model (or a tuning job's best trial) in the MLflow Model Registry and "
                   "point an alias at it.")
    p = subparsers.add_parser("register", help="register a run's (or a tuning job's best) model in MLflow",
                              description=description)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--run-id", help="the MLflow run whose model to register")
    which.add_argument("--tuning-job", help="a tuning job's name: register its best trial")
    p.add_argument("--model-name", required=True, help="registered model name (created if missing)")
    p.add_argument("--alias", default=DEFAULT_ALIAS, help=f"alias to point at the new version (default {DEFAULT_ALIAS})")
    console.add_tracking_argument(p)
    p.add_argument("--experiment", help="experiment of the tuning job (default: $MLFLOW_EXPERIMENT_NAME, else the "
                   f"settings' mlflow.experiment, else {contract.MLFLOW_EXPERIMENT})")
    console.add_settings_arguments(p)
    p.set_defaults(func=register_command)
    return p


def register_command(args: argparse.Namespace, session: Any = None) -> int:
    from mlflow.exceptions import MlflowException

    console.configure_logging(args.verbose)
    uri, experiment = console.tracking_location(args)
    try:
        done = register(uri, args.model_name, run_id=args.run_id, tuning_job=args.tuning_job,
                        experiment=experiment, alias=args.alias)
    except (MlflowException, BotoCoreError) as err:  # unreachable server, no credentials, unknown run: one line
        raise mlflow_error(err, uri) from err
    print(f"registered {done.model_name} version {done.version} (run {done.run_id}); "
          f"models:/{done.model_name}@{done.alias} now loads it")
    return 0


