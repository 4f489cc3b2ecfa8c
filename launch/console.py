"""What the launcher's subcommands share: the settings, data and tracking flags, logging, and the error contract.

A :class:`UserError` (bad settings, a rejected request, a job that did not complete) ends as
``error: <message>`` on stderr and exit code 1, without a traceback, and so does an AWS error
(access denied, a quota, no credentials); anything else is a bug and keeps its traceback. Ctrl-C
while ``--wait`` follows a job prints how to stop the job, which keeps running, and exits 130
(:data:`STOPPED_FOLLOWING_EXIT`).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from launch.follower import StoppedFollowing
from training import contract
from training.errors import ConfigError, UserError

STOPPED_FOLLOWING_EXIT = 130
"""Ctrl-C while following: 128 + SIGINT, what a shell reports for a command Ctrl-C ended, so a
script's next step (``train --wait && register``) does not run on a job that has not finished."""

QUIET_LOGGERS = ("botocore", "boto3", "urllib3", "snowflake")
SDK_LOGGERS = ("sagemaker", "sagemaker.config", "sagemaker.core", "sagemaker.train", "sagemaker.mlops")
"""The SDK logs its defaults at INFO and warns about things we set on purpose (no region on a
resource call that has the session's): errors only, unless --verbose."""


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """``--settings PATH``, repeatable ``--set KEY=VALUE`` overrides and ``--verbose``."""
    parser.add_argument("--settings", metavar="PATH", help="settings file (default: $LAUNCH_SETTINGS, "
                        "./settings.toml, launch/settings.toml)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", type=_override,
                        help="override a setting, e.g. --set compute.instance_count=4 or "
                        "--set hyperparameters.num_round=300 (repeatable)")
    parser.add_argument("--profile", metavar="NAME", help="the AWS profile (~/.aws/config) every AWS call of this "
                        "command uses, the SDK's and MLflow's included (default: $AWS_PROFILE, else the usual chain)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log the SDK's and botocore's messages too")


def _override(text: str) -> str:
    """A ``--set`` value: ``KEY=VALUE`` in one argument (``--set KEY VALUE`` would leave VALUE unread)."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"{text!r} has no '=': write --set {text.strip()}=VALUE, one argument "
                                         "with no space around '='")
    return text


ACCESS_KEY_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
"""Credentials in the environment, which botocore's chain prefers to ``AWS_PROFILE``."""


def use_profile(profile: str | None) -> None:
    """``--profile NAME``: every boto3 session this process makes from now on uses it (``AWS_PROFILE``):
    ours, the SageMaker SDK's and sagemaker-mlflow's signing of MLflow requests."""
    if not profile:
        return
    import boto3
    import botocore.exceptions

    try:
        boto3.Session(profile_name=profile)
    except botocore.exceptions.ProfileNotFound:
        raise ConfigError(f"--profile {profile}: no such AWS profile in ~/.aws/config or ~/.aws/credentials; list "
                          "them with: aws configure list-profiles") from None
    os.environ["AWS_PROFILE"] = profile
    os.environ.pop("AWS_DEFAULT_PROFILE", None)
    keys = [name for name in ACCESS_KEY_VARIABLES if os.environ.pop(name, None) is not None]
    if keys:  # botocore would otherwise prefer them to the profile, without a word
        logging.getLogger(__name__).warning("--profile %s: %s in this shell's environment set aside for this command",
                                            profile, ", ".join(keys))


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
    except StoppedFollowing as err:
        print(err, file=sys.stderr)
        return STOPPED_FOLLOWING_EXIT
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except (ClientError, BotoCoreError) as err:  # rejected by AWS, or no credentials / region
        print(f"error: AWS: {' '.join(str(err).split())}", file=sys.stderr)
        return 1


def add_data_argument(group: Any) -> None:
    """``--data FILE``: the local run's table, for ``train --local`` and ``tune --local`` alike."""
    group.add_argument("--data", type=Path, metavar="FILE", help="with --settings: load FILE (.parquet or .csv) "
                       "into the embedded Snowflake as the settings' table, with its own column names and types")


LOCAL_HOSTS_MAX = 9
"""Local hosts are 127.0.0.1 .. 127.0.0.9."""


def check_local_flags(args: argparse.Namespace, data_needs_settings: bool = True) -> None:
    """What a local run refuses: sending anything, hosts it cannot run, and (``data_needs_settings``: training,
    tuning) ``--data`` without the job it is the table of."""
    if args.dry_run or args.wait:
        raise ConfigError("--local sends nothing to AWS: drop --dry-run/--wait")
    if args.hosts is not None and not 1 <= args.hosts <= LOCAL_HOSTS_MAX:  # before any local service starts
        raise ConfigError(f"--hosts must be between 1 and {LOCAL_HOSTS_MAX} in local mode, got {args.hosts}")
    if data_needs_settings and args.data is not None and not args.settings:
        raise ConfigError("--data needs --settings FILE: the settings name the table it stands for, its target "
                          "and features")


def add_tracking_argument(parser: argparse.ArgumentParser) -> None:
    """``--tracking-uri`` (``register`` and ``deploy``): where the Model Registry is."""
    parser.add_argument("--tracking-uri", help="MLflow tracking URI or SageMaker MLflow ARN "
                        "(default: $MLFLOW_TRACKING_URI, else the settings' mlflow.tracking_uri)")


def tracking_line(uri: str) -> str:
    """Where a local job's MLflow run is, as the launcher prints it (a local store: the command that opens its UI)."""
    if uri.startswith("sqlite:"):
        return f"MLflow: .venv/bin/mlflow ui --backend-store-uri {uri}   (then open http://127.0.0.1:5000)"
    return f"MLflow: {uri}"


def tracking_location(args: argparse.Namespace) -> tuple[str, str]:
    """Tracking URI and experiment: flags, then the environment, then the settings file (``deploy`` too)."""
    uri = args.tracking_uri or os.environ.get(contract.TRACKING_URI_ENV, "")
    experiment = getattr(args, "experiment", None) or os.environ.get(contract.EXPERIMENT_ENV, "")
    if not uri or not experiment:
        from launch.settings import load_settings

        try:
            settings = load_settings(args.settings, args.set, sign_in=False)  # register and deploy read no table
            uri, experiment = uri or settings.mlflow.tracking_uri, experiment or settings.mlflow.experiment
        except ConfigError:
            if not uri:
                raise
    if not uri:
        raise ConfigError("no MLflow tracking URI: pass --tracking-uri, set MLFLOW_TRACKING_URI, or set "
                          "mlflow.tracking_uri in the settings file")
    return uri, experiment or contract.MLFLOW_EXPERIMENT
