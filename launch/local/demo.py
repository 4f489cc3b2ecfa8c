"""The demo job: the stand-ins, a seeded demo table and one local job on it, as plain functions.

``python -m launch train --local`` calls :func:`run_local`; local tuning and the tests use
:func:`demo_hyperparameters` to run the same job their way (what every local run shares is in
:mod:`launch.local.runs`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path

from launch import datasets
from launch.local.hosts import run_local_job
from launch.local.runs import LOCAL_SECRET_ID, LocalRun, encoded, mlflow_env
from launch.local.services import DATABASE, DEFAULT_WORKDIR, SCHEMA, LocalStack
from training import contract

log = logging.getLogger(__name__)

DEMO_TABLES = {"california": ("CALIFORNIA_HOUSING", datasets.CALIFORNIA_TARGET),
               "synthetic": ("SYNTHETIC", datasets.SYNTHETIC_TARGET),
               "mixed": ("MIXED", datasets.MIXED_TARGET)}
"""Demo data set -> (table name, target column)."""
DEFAULT_ROWS = 100_000


def demo_table(data: str, rows: int = DEFAULT_ROWS) -> str:
    """The table a demo data set is seeded into (generated data sets carry their row count)."""
    base = DEMO_TABLES[data][0]
    return base if data == "california" else f"{base}_{rows}"


def demo_hyperparameters(data: str, table: str) -> dict[str, str]:
    """Hyperparameters of the demo job on a seeded table."""
    target = DEMO_TABLES[data][1]
    hps = {"table": f"{DATABASE}.{SCHEMA}.{table}", "target": target, "shard_key": "ID",
           "num_round": "100", "eta": "0.1", "max_depth": "6", "validation_fraction": "0.2"}
    if data == "mixed":  # case-sensitive names, and no feature that is another label
        hps.update(shard_key='"id"', features=",".join(datasets.MIXED_FEATURES))
    return encoded(hps)


def run_local(hyperparameters: Mapping[str, str] | None = None, *, hosts: int = 2,
              workdir: Path = DEFAULT_WORKDIR, data: str = "california", rows: int = DEFAULT_ROWS,
              echo: bool = True) -> LocalRun:
    """Start the stand-ins, seed the demo table, run one job with ``hyperparameters`` over the demo's.

    ``echo`` streams the leader's log to stdout as the job runs.
    """
    started = time.monotonic()
    workdir = workdir.resolve()
    with LocalStack(workdir) as stack:
        table = demo_table(data, rows)
        count = stack.ensure_table(table, data=data, rows=rows)
        log.info("local Snowflake on port %d, table %s.%s.%s (%s rows); local Secrets Manager at %s",
                 stack.snowflake_port, DATABASE, SCHEMA, table, f"{count:,}", stack.aws_endpoint)
        stack.put_secret(LOCAL_SECRET_ID, stack.snowflake_secret())
        hps = {**demo_hyperparameters(data, table), **encoded(hyperparameters or {})}
        env = {**stack.aws_env(), contract.SECRET_ID_ENV: LOCAL_SECRET_ID, **mlflow_env(workdir)}
        log.info("starting %d hosts (the leader's log follows)", hosts)
        result = run_local_job(hps, hosts=hosts, workdir=workdir, env=env, echo=echo)
    return LocalRun(result, time.monotonic() - started, env.get(contract.TRACKING_URI_ENV, ""))
