"""The launcher's one CLI: ``python -m launch {train,tune,pipeline,register,deploy,score}`` (console script ``snowflake-xgboost``).

Each subcommand lives in :mod:`launch.commands` as a ``command_parser`` (its flags) and a
``*_command`` (parse done; load settings, call one plain typed function, report), as in
huggingface/accelerate's ``commands/``. Flags mean the same in every subcommand and mode
(:mod:`launch.console`): ``--settings PATH``, ``--set KEY=VALUE`` (a settings key; hyperparameters
are ``hyperparameters.NAME=VALUE``), ``--profile NAME`` (the AWS profile), ``--verbose``. ``python launch/train.py`` and its siblings
are aliases (:func:`alias`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from launch.commands import deploy, pipeline, register, score, train, tune
from launch.console import run, use_profile

PROG = "python -m launch"
COMMANDS = (train, tune, pipeline, register, deploy, score)


def parser() -> argparse.ArgumentParser:
    """The top-level parser with one subparser per command."""
    top = argparse.ArgumentParser(prog=PROG, description="Train XGBoost on a Snowflake table with SageMaker: "
                                  "training jobs, tuning jobs, tuning pipelines, model registration and endpoints.")
    subparsers = top.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        module.command_parser(subparsers)
    return top


def main(argv: list[str] | None = None, *, session: Any = None) -> int:
    """Parse ``argv``, run the chosen subcommand, return its exit code (``session``: a boto3 session)."""
    args = parser().parse_args(argv)

    def command() -> int:
        use_profile(args.profile)
        return args.func(args, session)

    return run(command)


def alias(command: str) -> None:
    """``python launch/<command>.py ...``: the same as ``python -m launch <command> ...``."""
    sys.exit(main([command, *sys.argv[1:]]))
