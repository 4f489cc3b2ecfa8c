"""The launcher's one CLI: ``python -m launch {train,tune,pipeline,register}`` (console script ``snowflake-xgboost``).

Each subcommand lives in :mod:`launch.commands` as a ``*_command_parser`` (its flags) and a
``*_command`` (parse done; load settings, call one plain typed function, report), as in
huggingface/accelerate's ``commands/``. Flags mean the same in every subcommand and mode:
``--settings PATH``, ``--set KEY=VALUE`` (a settings key; hyperparameters are
``hyperparameters.NAME=VALUE``), ``--verbose``.

The error contract: a :class:`UserError` (bad settings, a rejected request) ends as
``error: <message>`` on stderr and exit code 1, without a traceback, and so does an AWS error
(access denied, a quota, no credentials); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from training.errors import UserError

PROG = "python -m launch"
QUIET_LOGGERS = ("botocore", "boto3", "urllib3", "snowflake")
SDK_LOGGERS = ("sagemaker", "sagemaker.config", "sagemaker.core", "sagemaker.train", "sagemaker.mlops")
"""The SDK logs its defaults at INFO and warns about things we set on purpose (no region on a
resource call that has the session's): errors only, unless --verbose."""


def parser() -> argparse.ArgumentParser:
    """The top-level parser with one subparser per command."""
    from launch.commands import pipeline, register, train, tune

    top = argparse.ArgumentParser(prog=PROG, description="Train XGBoost on a Snowflake table with SageMaker: "
                                  "training jobs, tuning jobs, tuning pipelines, and model registration.")
    subparsers = top.add_subparsers(dest="command", metavar="{train,tune,pipeline,register}", required=True)
    for module in (train, tune, pipeline, register):
        module.command_parser(subparsers)
    return top


def main(argv: list[str] | None = None, *, session: Any = None) -> int:
    """Parse ``argv``, run the chosen subcommand, return its exit code (``session``: a boto3 session)."""
    args = parser().parse_args(argv)
    return run(lambda: args.func(args, session))


def alias(command: str) -> None:
    """``python launch/<command>.py ...``: the same as ``python -m launch <command> ...``."""
    sys.exit(main([command, *sys.argv[1:]]))


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """``--settings PATH``, repeatable ``--set KEY=VALUE`` overrides and ``--verbose``."""
    parser.add_argument("--settings", metavar="PATH", help="settings file (default: $LAUNCH_SETTINGS, "
                        "./settings.toml, launch/settings.toml)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting, e.g. --set compute.instance_count=4 or "
                        "--set hyperparameters.num_round=300 (repeatable)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log the SDK's and botocore's messages too")


def configure_logging(verbose: bool = False, prefix: str = "") -> None:
    """Our lifecycle lines at INFO; the SDK's chatter only with ``--verbose``."""
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {prefix}%(message)s", datefmt="%H:%M:%S")
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.WARNING)
    for name in SDK_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.ERROR)


def run(command: Callable[[], int]) -> int:
    """Run ``command``; a user error becomes one line on stderr and exit code 1."""
    try:
        return command()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except (ClientError, BotoCoreError) as err:  # rejected by AWS, or no credentials / region
        print(f"error: AWS: {' '.join(str(err).split())}", file=sys.stderr)
        return 1
