"""The job-environment variables a user sets, read once: the container at start, the launcher at launch.

SageMaker and the launcher set the other variables (:mod:`training.contract` names them all). These
four are the user's (the launcher's ``[environment]`` settings): the launcher checks them with the
very functions the container reads them with, so a value that would fail the job fails the launch.
A message names the variable and what it expects, never the value: a credential pasted into the
wrong variable must not reach a log.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from training.contract import (
    DEFAULT_BASE_DIR,
    LOGIN_TIMEOUT_ENV,
    NETWORK_TIMEOUT_ENV,
    REQUIRE_TRACKING_ENV,
    SPILL_DIR_ENV,
    default_spill_dir,
)
from training.errors import ConfigError
from training.read.snowflake import SnowflakeTimeouts

USER_VARIABLES = (REQUIRE_TRACKING_ENV, LOGIN_TIMEOUT_ENV, NETWORK_TIMEOUT_ENV, SPILL_DIR_ENV)
"""The job-environment variables a user sets; SageMaker and the launcher set the others."""
FIX = "set it in the settings' [environment] (the job's environment), or leave it unset for the default"


def check_user_environment(environ: Mapping[str, str]) -> None:
    """Read each of :data:`USER_VARIABLES` as the job does at start: a ConfigError names the first bad one."""
    tracking_required(environ)
    snowflake_timeouts(environ)
    spill_dir(environ, Path(DEFAULT_BASE_DIR))


def snowflake_timeouts(environ: Mapping[str, str]) -> SnowflakeTimeouts:
    """``SNOWFLAKE_LOGIN_TIMEOUT`` and ``SNOWFLAKE_NETWORK_TIMEOUT``: whole seconds >= 1; unset or empty: the default."""
    return SnowflakeTimeouts(login=_seconds(environ, LOGIN_TIMEOUT_ENV, SnowflakeTimeouts.login),
                             network=_seconds(environ, NETWORK_TIMEOUT_ENV, SnowflakeTimeouts.network))


def tracking_required(environ: Mapping[str, str]) -> bool:
    """``MLFLOW_REQUIRED``: whether an MLflow server unreachable at start fails the job (default true)."""
    raw = environ.get(REQUIRE_TRACKING_ENV, "true").strip().lower()
    if raw in ("true", "1", "yes"):
        return True
    if raw in ("false", "0", "no"):
        return False
    raise ConfigError(f"{REQUIRE_TRACKING_ENV} is not a boolean: set it to true (fail if MLflow is unreachable at "
                      "start, the default) or false (train without tracking)")


def spill_dir(environ: Mapping[str, str], base_dir: Path) -> Path:
    """``SPILL_DIR``: where a host spills its shard, an absolute path; unset: under ``base_dir``."""
    text = environ.get(SPILL_DIR_ENV, "").strip()
    if not text:
        return default_spill_dir(base_dir)
    if not text.startswith("/"):
        raise ConfigError(f"{SPILL_DIR_ENV} is not an absolute path: expected a folder in the container (default "
                          f"{default_spill_dir(Path(DEFAULT_BASE_DIR))}, on the job's ML storage volume); {FIX}")
    return Path(text)


def _seconds(environ: Mapping[str, str], name: str, default: int) -> int:
    text = environ.get(name, "").strip()
    if not text:
        return default
    try:
        value: int | None = int(text)
    except ValueError:
        value = None
    if value is None or value < 1:
        raise ConfigError(f"{name} is not a whole number of seconds, at least 1 (default {default}): {FIX}")
    return value
