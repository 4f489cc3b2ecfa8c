"""One batch scoring job on one host, told as its stages: model → the leader's query → each host's
share scored and appended → the leader's swap.

Every host runs :func:`run_scoring` with the same settings; they differ only in rank. The read is
the training read's ``scan`` mode: one query for the whole job, its result batches dealt to the
hosts through the collective (:mod:`training.read.scan`), so one warehouse scan and one snapshot
whatever the number of hosts, and memory bounded by the batches in flight. Rows are coded by the
model's own column plan (:func:`training.model.booster.predict_rows`), as the endpoint and the
MLflow model code them. The write is all or nothing (:mod:`training.scoring.write`).

Collective calls, the same on every host in the same order: the leader's plan and deal (one
broadcast), every host's write outcome (one gather), the rows written (one all-reduce), the
leader's swap (one broadcast). The leader's MLflow run (:mod:`training.tracking.scoring_run`) talks
to MLflow only before the hosts join and after they leave.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from training.collective.cluster import (
    Cluster,
    agree,
    allreduce_sum,
    collective,
    collective_errors,
    from_leader,
)
from training.errors import ConfigError, DataError, Interrupted, SnowflakeError
from training.model.booster import load, objective
from training.model.explain import top_k
from training.read.columns import RowError
from training.read.credentials import SignIn
from training.read.scan import ScanShare, download, query_result, shares
from training.read.snowflake import (
    DEFAULT_TIMEOUTS,
    SnowflakeTimeouts,
    connect,
    describe_table,
    quote_column,
    table_parts,
)
from training.scoring.options import ScoreOptions
from training.scoring.output import OutputColumns, output_columns
from training.scoring.predictor import Predictor
from training.scoring.write import Tables
from training.tracking.lineage import scoring_lineage
from training.tracking.scoring_run import NO_SCORING_RECORDER, ScoringRecorder
from training.train.checkpoints import StopFlag

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoreSpec:
    """Everything a host needs to score its part (built by the container from /opt/ml)."""

    options: ScoreOptions
    cluster: Cluster
    model_path: Path
    sign_in: SignIn = field(default_factory=SignIn)
    job_name: str = ""
    timeouts: SnowflakeTimeouts = DEFAULT_TIMEOUTS
    ledger_dir: Path | None = None
    stop: StopFlag = field(default_factory=StopFlag)
    """Set by SIGTERM (SageMaker's stop): checked before each batch, so the hosts stop together, target unchanged."""


@dataclass(frozen=True)
class ScoreResult:
    """What a finished scoring job wrote."""

    rows: int
    rows_per_host: list[int]
    target: str
    outcome: str
    """``created`` (the target did not exist) or ``replaced``."""


def run_scoring(spec: ScoreSpec, recorder: ScoringRecorder = NO_SCORING_RECORDER) -> ScoreResult:
    """Score this host's share of the source table and, with the others, replace the target; a
    :class:`~training.errors.UserError` on bad input, with the target unchanged. ``recorder``: the
    leader's MLflow run (opened first: an unreachable server that tracking requires fails the job here)."""
    options, cluster = spec.options, spec.cluster
    job_started = time.monotonic()
    recorder.start(options, cluster.size)
    booster, plan = _model(spec.model_path)
    try:
        explain = top_k(options.explain, plan)
    except ValueError as err:
        raise ConfigError(f"scoring setting {err}") from None
    outputs = output_columns(plan, objective(booster), options.keys, explain)
    tables = Tables.for_job(options.target_sql, spec.job_name or "local")
    log.info("scoring %s into %s: %d feature(s), key(s) %s, host %s is rank %d of %d", options.source_sql,
             options.target_sql, len(plan.features), ", ".join(options.keys) or "none", cluster.current_host,
             cluster.rank, cluster.size)
    predictor = Predictor(spec.model_path, booster, plan, explain)  # its child starts now, before the collective
    try:
        creds = spec.sign_in.credentials()
        conn = connect(creds, options.query_tag, spec.timeouts)
    except BaseException:
        predictor.close()
        raise
    conn.autocommit(True)  # each host's COPY is committed as it lands, whatever the account's AUTOCOMMIT
    published = False
    try:
        with collective_errors(cluster), collective(cluster, options.tracker_port, options.collective_timeout,
                                                    spec.ledger_dir):
            started = time.monotonic()
            dealt, scored_at = from_leader(lambda: _query(conn, plan, options, outputs, tables, cluster.size),
                                           cluster, "score: deal")
            share: ScanShare = dealt[cluster.rank]
            recorder.queried(scoring_lineage(creds, options.source_sql, _select(options, plan), list(options.keys),
                                             plan, share))
            durations = {"query_seconds": time.monotonic() - started}
            started = time.monotonic()
            written = agree(lambda: _score_share(conn, predictor, options, outputs, tables, share, scored_at, spec.stop,
                                                 cluster.current_host),
                            cluster, "score: share written")
            per_host = [int(n) for n in allreduce_sum(_one_hot(written, cluster), cluster, "score: rows written")]
            log.info("wrote %s predictions to the staging table in %.1f s", f"{written:,}", time.monotonic() - started)
            if sum(per_host) != share.result_rows:  # every host knows both: the same verdict everywhere
                raise SnowflakeError(f"the hosts wrote {sum(per_host):,} predictions for the query's "
                                     f"{share.result_rows:,} rows: the target is unchanged; run the job again")
            durations["score_seconds"], started = time.monotonic() - started, time.monotonic()
            outcome = from_leader(lambda: tables.publish(conn, share.result_rows), cluster, "score: published")
            published = True
            durations["publish_seconds"] = time.monotonic() - started
    finally:
        predictor.close()
        if cluster.leader and not published:
            tables.discard(conn)
        conn.close()
    log.info("target %s %s: %s rows (rows per host: %s)", options.target_sql, outcome, f"{sum(per_host):,}",
             ", ".join(f"{n:,}" for n in per_host))
    recorder.finish(per_host, outcome, {**durations, "total_seconds": time.monotonic() - job_started})
    return ScoreResult(sum(per_host), per_host, options.target_sql, outcome)


def _model(path: Path) -> tuple[Any, Any]:
    try:
        return load(path)
    except ValueError as err:  # no column plan: not a model this project wrote
        raise ConfigError(f"{path} cannot score rows as the table has them: {err}; score with a model from this "
                          "project's training job (its xgboost-model, or the MLflow model it logged)") from None


def _query(conn: Any, plan: Any, options: ScoreOptions, outputs: OutputColumns, tables: Tables,
           hosts: int) -> list[ScanShare]:
    """The leader: check the source has every column and is not the target, create the staging table, run the one
    query, deal it; with the job's scoring time (one for every row)."""
    _check_not_source(conn, options)
    columns = describe_table(conn, options.source_sql)
    if columns is None:
        raise DataError(f"source table {options.source_sql} does not exist or the role cannot see it: check "
                        "source_table and the role")
    present = {c.name for c in columns}
    needed = [*options.keys, *plan.feature_names]
    missing = [name for name in needed if name not in present]
    if missing:
        raise DataError(f"source table {options.source_sql} has no column {', '.join(map(repr, missing))}, which the "
                        f"{'key columns name' if missing[0] in options.keys else 'model was trained on'}: score a "
                        "table (or a view) with every feature column of the model")
    tables.drop_stale(conn)
    tables.create_staging(conn, options.source_sql, list(options.keys), outputs.select_nulls())
    result = query_result(conn, lambda cursor: cursor.execute(_select(options, plan)))
    return shares(result, hosts), datetime.now(timezone.utc)


def _select(options: ScoreOptions, plan: Any) -> str:
    """The job's one query: the key columns and the model's features (each once), every row of the source."""
    columns = ", ".join(quote_column(name) for name in dict.fromkeys([*options.keys, *plan.feature_names]))
    return f"SELECT {columns} FROM {options.source_sql}"  # noqa: S608  (quoted identifiers)


def _check_not_source(conn: Any, options: ScoreOptions) -> None:
    """The target, qualified as the session reads it, must not be the source (``X`` and ``DB.PUBLIC.X`` are one)."""
    cursor = conn.cursor()
    try:
        cursor.execute("SELECT CURRENT_DATABASE(), CURRENT_SCHEMA()")
        database, schema = cursor.fetchone()
    finally:
        cursor.close()

    def qualified(sql: str) -> tuple[str, ...]:
        parts = table_parts(sql)
        return (*([database, schema][: 3 - len(parts)]), *parts)

    if qualified(options.source_sql) == qualified(options.target_sql):
        raise ConfigError(f"target_table {options.target_sql} is the source table {options.source_sql} (in the "
                          "session's database and schema): write the predictions to another table")


def _score_share(conn: Any, predictor: Predictor, options: ScoreOptions, outputs: OutputColumns, tables: Tables,
                 share: ScanShare, scored_at: datetime, stop: StopFlag, host: str) -> int:
    """Download this host's batches (``fetch_threads`` at a time), score each, and append the predictions to the
    staging table ``batch_rows`` at a time: one ``write_pandas`` (a PUT and a COPY) per ``batch_rows`` rows, not per
    result batch (Snowflake's first batches are small, and each write is a round trip of its own). A stop signal
    ends it before the next batch (every host then fails with it, through :func:`agree`)."""
    import pandas as pd

    def check_stop() -> None:
        if stop.is_set():
            raise Interrupted(f"stopped by SIGTERM (received by host {host}) while the hosts scored: the target is "
                              "unchanged; run the job again")

    lineage = (options.model_name, options.model_version, options.run_id)
    written, pending, pending_rows = 0, [], 0
    for batch in download(share, options.fetch_threads):
        check_stop()
        if not batch.num_rows:
            continue
        try:
            predictions = predictor.predict(batch)
        except RowError as err:
            raise DataError(f"a source row cannot be scored: {err}; fix it in the source, or score a view that "
                            "leaves it out") from None
        # integers stay integers with NULLs among them (a float64 would change a key above 2^53)
        keys = batch.select(list(options.keys)).to_pandas(
            types_mapper=lambda t: pd.Int64Dtype() if pa.types.is_integer(t) else None) if options.keys else None
        pending.append(outputs.frame(keys, predictions, lineage, scored_at))
        pending_rows += batch.num_rows
        if pending_rows >= options.batch_rows:
            written += tables.append(conn, _joined(pending), options.batch_rows)
            pending, pending_rows = [], 0
    check_stop()
    if pending:
        written += tables.append(conn, _joined(pending), options.batch_rows)
    return written


def _joined(frames: list[Any]) -> Any:
    import pandas as pd

    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def _one_hot(value: int, cluster: Cluster) -> np.ndarray:
    out = np.zeros(cluster.size, dtype=np.float64)
    out[cluster.rank] = value
    return out
