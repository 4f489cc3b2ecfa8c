"""The user's own job on this machine: ``train --local --settings F`` and ``tune --local --settings F``.

The job is the settings' own: table, target, features and hyperparameters as the SageMaker job
receives them (:attr:`launch.settings.Settings.job_hyperparameters`). Only where the hosts read
differs (:func:`choose_snowflake`):

- ``--data FILE``: the embedded Snowflake, FILE loaded as the settings' table with its own column
  names and types, and the local Secrets Manager holding a secret for it;
- else the user's real Snowflake, when the settings name a secret (or a workload identity
  connection) and AWS credentials resolve (boto3's chain): the hosts get the settings' region,
  those credentials and the job's Snowflake environment (:func:`launch.jobs.environment`) and no
  endpoint of ours, so the secret is read from the real Secrets Manager, as in the cloud.

MLflow is the local store (or ``$MLFLOW_TRACKING_URI``) either way, as in the demo.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from launch import aws, datasets, jobs
from launch.local.hosts import run_local_job
from launch.local.runs import LOCAL_SECRET_ID, LocalRun, mlflow_env
from launch.local.services import DATABASE, SCHEMA, LocalStack
from launch.settings import Settings
from training import contract
from training.errors import ConfigError
from training.read import names
from training.read.snowflake import quote_column, table_parts

log = logging.getLogger(__name__)

EMBEDDED, REAL = "embedded", "real"
"""Which Snowflake a local run of the user's job reads."""
COLUMN_KEYS = tuple(key for key in names.IDENTIFIER_KEYS if key != "table")
"""Hyperparameters that name the table's columns: a ``--data`` file must have them."""


def choose_snowflake(settings: Settings, data: Path | None, credentials: Any) -> str:
    """:data:`EMBEDDED` with a ``--data`` file; else :data:`REAL` when the settings sign in to
    Snowflake and ``credentials`` (boto3's, or None) exist; else a :class:`ConfigError` naming the fix."""
    if data is not None:
        return EMBEDDED
    if not settings.data.snowflake_secret_id and not settings.data.snowflake_connection:
        raise ConfigError("the settings name no Snowflake sign-in (data.snowflake_secret_id or "
                          "[data.snowflake_connection]): pass --data FILE (.parquet or .csv) to train on a local "
                          "copy of the table, or name the secret to read your Snowflake")
    if credentials is None:
        raise ConfigError(f"the settings read your Snowflake through {_sign_in(settings)}, but no AWS credentials "
                          "were found (environment, ~/.aws, AWS_PROFILE, SSO): sign in to AWS, or pass --data FILE "
                          "(.parquet or .csv) to train on a local copy of the table")
    return REAL


def real_env(settings: Settings, credentials: Any) -> dict[str, str]:
    """The hosts' environment against the user's Snowflake: the job's own Snowflake settings, the
    settings' region and ``credentials`` (no endpoint override: Secrets Manager is AWS's)."""
    frozen = credentials.get_frozen_credentials()
    env = {k: v for k, v in jobs.environment(settings).items()
           if k not in (contract.TRACKING_URI_ENV, contract.EXPERIMENT_ENV,  # MLflow stays local
                        contract.IMAGE_ENV)}  # and this machine runs no image
    env.update({contract.REGION_ENV: settings.region, "AWS_DEFAULT_REGION": settings.region,
                "AWS_ACCESS_KEY_ID": frozen.access_key, "AWS_SECRET_ACCESS_KEY": frozen.secret_key})
    if frozen.token:
        env["AWS_SESSION_TOKEN"] = frozen.token
    return env


@contextmanager
def host_env(settings: Settings, data: Path | None, workdir: Path) -> Iterator[dict[str, str]]:
    """The hosts' environment for the chosen Snowflake; the embedded one runs until the block ends."""
    credentials = None if data is not None else aws.boto_session(settings.region).get_credentials()
    if choose_snowflake(settings, data, credentials) == REAL:
        log.info("Snowflake: yours, through %s (AWS credentials from %s, region %s)", _sign_in(settings),
                 credentials.method, settings.region)
        yield {**real_env(settings, credentials), **mlflow_env(workdir, settings.mlflow.experiment)}
        return
    parquet = _checked_file(settings, data, workdir)  # before anything starts
    tracking = mlflow_env(workdir, settings.mlflow.experiment)
    with LocalStack(workdir) as stack:
        count = load_data_file(stack, settings.data.table, parquet)
        log.info("Snowflake: embedded (port %d), table %s loaded from %s (%s rows); local Secrets Manager at %s",
                 stack.snowflake_port, settings.data.table, data, f"{count:,}", stack.aws_endpoint)
        stack.put_secret(LOCAL_SECRET_ID, stack.snowflake_secret())
        yield {**stack.aws_env(), contract.SECRET_ID_ENV: LOCAL_SECRET_ID, **tracking}


def run_user_job(settings: Settings, data: Path | None, *, hosts: int, workdir: Path, echo: bool = True) -> LocalRun:
    """The settings' job on ``hosts`` local hosts (``echo``: stream the leader's log and progress)."""
    started = time.monotonic()
    workdir = workdir.resolve()
    with host_env(settings, data, workdir) as env:
        log.info("starting %d hosts (the leader's log follows)", hosts)
        result = run_local_job(settings.job_hyperparameters, hosts=hosts, workdir=workdir, env=env, echo=echo)
    return LocalRun(result, time.monotonic() - started, env.get(contract.TRACKING_URI_ENV, ""))


def _sign_in(settings: Settings) -> str:
    if settings.data.snowflake_secret_id:
        return f"secret {settings.data.snowflake_secret_id!r} from Secrets Manager"
    return f"workload identity (account {settings.data.snowflake_connection.get('account', '?')!r})"


# ---------------------------------------------------------------------------------------------
# The --data file


def _checked_file(settings: Settings, data: Path, workdir: Path) -> Path:
    """``data`` written as the Parquet file to load, once its columns hold the job's (before any server starts)."""
    workdir.mkdir(parents=True, exist_ok=True)
    parquet = workdir / "data-file.parquet"
    schema = datasets.write_data_file(data, parquet)
    missing = missing_columns(settings.job_hyperparameters, schema.names)
    if missing:
        parquet.unlink(missing_ok=True)
        raise ConfigError(f"--data {data} has no column for {'; '.join(missing)} (its columns: "
                          f"{', '.join(schema.names[:20])}): fix data.target/data.features or the file")
    return parquet


def missing_columns(hyperparameters: Mapping[str, str], columns: Sequence[str]) -> list[str]:
    """What the job's column hyperparameters name and ``columns`` lack, as ``target column 'x'`` each
    (with how to write it when a column differs only in case: unquoted names mean upper case)."""
    present, by_fold = set(columns), {c.casefold(): c for c in columns}
    missing = []
    for key in COLUMN_KEYS:
        if not hyperparameters.get(key):
            continue
        texts = names.readings(key, hyperparameters[key])
        if any(all(names.stored_name(n) in present for n in names.split_names(t)) for t in texts):
            continue
        for name in names.split_names(texts[0]):
            stored = names.stored_name(name)
            if stored not in present:
                near = by_fold.get(stored.casefold())
                hint = f" (the file has {near!r}: write it as {quote_column(near)!r})" if near else ""
                missing.append(f"{names.what(key)} {name!r}{hint}")
    return missing


def load_data_file(stack: LocalStack, table: str, parquet: Path) -> int:
    """Load ``parquet`` into the embedded Snowflake as ``table`` (a missing database or schema is the
    demo's, as the local secret's; created if need be); return its row count.

    A name the embedded Snowflake cannot take (fakesnow on DuckDB: e.g. a database name with a space)
    is a :class:`ConfigError` naming it, not the stand-in's traceback."""
    from snowflake.connector.errors import Error

    parts = [DATABASE, SCHEMA][: 3 - len(table_parts(table))] + table_parts(table)
    database, schema, name = map(quote_column, parts)
    conn = stack.connect()
    try:
        cursor = conn.cursor()
        cursor.execute(f"CREATE DATABASE IF NOT EXISTS {database}")
        cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {database}.{schema}")
        cursor.close()
        return datasets.load_parquet(conn, f"{database}.{schema}.{name}", parquet)
    except Error as err:
        reason = (err.msg or str(err)).splitlines()[0]
        raise ConfigError(f"the embedded Snowflake could not load the --data file as table {table!r} ({reason}): "
                          "for the local run, name another table with --set data.table=NAME (no space or dot "
                          "in its database part, no dot in its schema part)") from err
    finally:
        conn.close()
        parquet.unlink(missing_ok=True)
