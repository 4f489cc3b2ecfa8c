"""A batch scoring job on this machine: the container's ``score`` command on N local hosts, against the
embedded Snowflake (the demo's tables, or a ``--data`` file loaded as the source table).

``python -m launch score --local`` calls :func:`run_local_scoring`. The target table is written in the
embedded Snowflake, all or nothing (:mod:`training.scoring.write`); ``--output FILE`` exports it. The job's
MLflow run goes where ``train --local`` logs (``$MLFLOW_TRACKING_URI``, else the work directory's store).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from launch import datasets
from launch.local.hosts import LocalJobResult, container_command, run_local_job
from launch.local.runs import LOCAL_SECRET_ID, mlflow_env
from launch.local.services import DEFAULT_WORKDIR, LocalStack
from launch.local.user_job import load_data_file
from training import contract
from training.errors import ConfigError
from training.model.scoring import model_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LocalScoring:
    """A finished local scoring job: the hosts' outcome, the target's rows, where they were exported and where
    MLflow recorded the job (empty: tracking off)."""

    result: LocalJobResult
    seconds: float
    target_rows: int | None
    output: Path | None
    tracking_uri: str = ""


def run_local_scoring(model: Path, options: dict[str, str], *, hosts: int = 2, workdir: Path = DEFAULT_WORKDIR,
                      data: Path | None = None, output: Path | None = None, echo: bool = True) -> LocalScoring:
    """Score ``options['source_table']`` into ``options['target_table']`` with ``model`` (a job's model
    folder or file, or an MLflow model folder) on ``hosts`` local hosts."""
    started = time.monotonic()
    workdir = workdir.resolve()
    model_dir = model.resolve() if model.is_dir() else model.resolve().parent
    try:
        model_file(model_dir)
    except ValueError as err:
        raise ConfigError(f"--model {model}: {err}") from None
    parquet = None
    if data is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        parquet = workdir / "score-data.parquet"
        datasets.write_data_file(data, parquet)
    with LocalStack(workdir) as stack:
        if parquet is not None:
            rows = load_data_file(stack, options["source_table"], parquet)
            log.info("loaded %s (%s rows) as %s", data, f"{rows:,}", options["source_table"])
        stack.put_secret(LOCAL_SECRET_ID, stack.snowflake_secret())
        tracking = mlflow_env(workdir)
        env = {**stack.aws_env(), contract.SECRET_ID_ENV: LOCAL_SECRET_ID, contract.SCORING_MODEL_ENV: str(model_dir),
               **tracking}
        result = run_local_job(options, hosts=hosts, workdir=workdir, env=env, echo=echo,
                               command=container_command(contract.SCORE_COMMAND))
        target_rows = None
        if result.exit_code == 0:
            target_rows = _export(stack, options["target_table"], output)
    return LocalScoring(result, time.monotonic() - started, target_rows, output if target_rows is not None else None,
                        tracking.get(contract.TRACKING_URI_ENV, ""))


def _export(stack: LocalStack, target: str, output: Path | None) -> int:
    """The target's row count; with ``output``, its rows written there (.parquet, else CSV)."""
    from training.read.snowflake import quote_table

    conn = stack.connect()
    try:
        cursor = conn.cursor()
        cursor.execute(f"SELECT * FROM {quote_table(target)}")  # noqa: S608  (validated, quoted)
        table = cursor.fetch_arrow_all()
    finally:
        conn.close()
    if output is not None and table is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        if output.suffix == ".parquet":
            import pyarrow.parquet as pq

            pq.write_table(table, output)
        else:
            table.to_pandas().to_csv(output, index=False)
    return 0 if table is None else table.num_rows
