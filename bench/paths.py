"""One benchmark path, measured in a fresh process: ``python -m bench.paths < config.json``.

The child reads the table one way, builds the XGBoost training matrix, trains the same boosting
rounds (unless the config says ``"train": false``: repetitions after the first measure ingest only), scores the model on the common evaluation rows and prints one JSON line: wall times of
ingest (query to matrix) and training, and the process's peak resident set size (``VmHWM``)
after the imports, after ingest and at the end.

Paths (``PATHS``):

- ``a``: the AWS sample's approach, ``pandas.read_sql`` over the connector connection, ``xgb.DMatrix``;
- ``b``: ``cursor.fetch_pandas_all()`` then ``xgb.QuantileDMatrix``;
- ``c``: ours in ``read_mode=scan`` on one host, through the training code's own functions as the job
  calls them (``plan_shard``, ``run_scan``, ``shares(..., 1)``, ``fetch_share``, ``build_matrices``);
- ``c-hash``: ours in ``read_mode=hash`` (``fetch_shard``); ``fetch_pages`` comes from the config, so
  the paged reference (c') is the same code with pages;
- ``d``: the lower bound, the same training rows from a local Parquet file (pyarrow batches into
  ``QuantileDMatrix``);
- ``e``: ours in ``scan`` mode with external memory (``memory_budget_mb=1`` forces XGBoost's
  ``ExtMemQuantileDMatrix``), where this build has it (:func:`extmem_available`).

Every path does the same work a training job needs: read the whole table, split it into training
and validation rows by the job's own split hash (the same column our query selects), and build
both matrices (validation with the training bins where the API allows). Every path trains on the
same rows and is scored on the same validation rows (``eval.parquet``, written by the ``setup``
step), so the validation RMSEs must agree up to row order.
"""

# ruff: noqa: E402  (the measured process keeps scikit-learn out before XGBoost is imported, below)
from __future__ import annotations

import json
import resource
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # a measured process, as the container's (container/__main__.py): XGBoost would
    sys.modules.setdefault("sklearn", None)  # import scikit-learn for estimators no path uses (2.5 s, tens of MiB)

# Every path imports the same libraries before measuring, so the baseline memory is comparable.
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import snowflake.connector
import xgboost as xgb

from training.hyperparameters import SPECS, Hyperparameters, parse_hyperparameters
from training.read.credentials import SnowflakeCredentials, parse_secret
from training.read.hash_fetch import fetch_shard
from training.read.plan import VALIDATION_COLUMN, ShardPlan, plan_shard, query_parameters
from training.read.scan import fetch_share, run_scan, shares
from training.read.snowflake import connect, describe_table, quote_column, quote_table
from training.read.vocabulary import merge_vocabularies
from training.train.dataset import build_matrices

EXTMEM_HYPERPARAMETER = "memory_budget_mb"
"""Path (e)'s switch: ``1`` forces external memory (0, the default, derives it from the host's memory)."""
PARQUET_BATCH_ROWS = 65_536
"""Rows per pyarrow batch in the lower-bound path (the same step as our reader's ``BATCH_ROWS``)."""


def peak_mib() -> float:
    """Peak resident set size of this process so far, MiB.

    Linux's ``VmHWM`` belongs to the process's own address space, whereas ``ru_maxrss`` survives
    ``exec`` and so starts at the parent's peak when the child is forked: a child of a 600 MiB
    parent would never report less than 600 MiB. ``ru_maxrss`` (KiB on Linux) is the fallback.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_s() -> float:
    """CPU seconds (user + system) this process has used so far, all its threads together."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def split_query(plan: ShardPlan, hps: Hyperparameters, validation: bool) -> tuple[str, dict[str, Any]]:
    """SQL and binds for the table's training (or validation) rows, by the job's own split hash."""
    cols = ", ".join(quote_column(c) for c in (*plan.features, plan.target))
    keep = "" if validation else "NOT "
    sql = f'SELECT {cols} FROM ({plan.query_template}) WHERE {keep}"{VALIDATION_COLUMN}"'  # noqa: S608
    return sql, query_parameters(hps.read_options(), 1, 0)  # the job's split binds, one host: every row of the table


def _plan(creds: SnowflakeCredentials, hps: Hyperparameters) -> ShardPlan:
    conn = connect(creds, hps["query_tag"])
    try:
        table_sql = quote_table(hps["table"])
        return plan_shard(describe_table(conn, table_sql), hps.read_options(), table_sql)
    finally:
        conn.close()


def _sample_connection(creds: SnowflakeCredentials) -> Any:
    """A plain connector connection, as the sample notebooks open one."""
    return snowflake.connector.connect(**creds.connect_kwargs(), login_timeout=60, network_timeout=300)


def _table_query(plan: ShardPlan, hps: Hyperparameters) -> tuple[str, dict[str, Any]]:
    """The job's own query for the whole table (one host): features, target and the split flag."""
    return plan.query_template, query_parameters(hps.read_options(), 1, 0)


def _split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    validation = frame[VALIDATION_COLUMN].astype(bool).to_numpy()
    return frame.loc[~validation], frame.loc[validation]


def path_a(config: dict[str, Any], hps: Hyperparameters, creds: SnowflakeCredentials) -> tuple[Any, dict]:
    plan = _plan(creds, hps)
    sql, binds = _table_query(plan, hps)
    conn = _sample_connection(creds)
    with warnings.catch_warnings():  # pandas warns that the connection is not SQLAlchemy
        warnings.simplefilter("ignore", UserWarning)
        frame = pd.read_sql(sql, conn, params=binds)
    conn.close()
    train, valid = _split(frame)
    threads = hps["nthread"] or None
    dtrain = xgb.DMatrix(train[list(plan.features)], label=train[plan.target], nthread=threads)
    _dvalid = xgb.DMatrix(valid[list(plan.features)], label=valid[plan.target], nthread=threads)
    return dtrain, {"rows_fetched": len(frame)}


def path_b(config: dict[str, Any], hps: Hyperparameters, creds: SnowflakeCredentials) -> tuple[Any, dict]:
    plan = _plan(creds, hps)
    sql, binds = _table_query(plan, hps)
    conn = _sample_connection(creds)
    cursor = conn.cursor()
    cursor.execute(sql, binds)
    frame = cursor.fetch_pandas_all()
    conn.close()
    train, valid = _split(frame)
    threads = hps["nthread"] or None
    dtrain = xgb.QuantileDMatrix(train[list(plan.features)], label=train[plan.target], max_bin=hps["max_bin"],
                                 nthread=threads)
    _dvalid = xgb.QuantileDMatrix(valid[list(plan.features)], label=valid[plan.target], ref=dtrain,
                                  max_bin=hps["max_bin"], nthread=threads)
    return dtrain, {"rows_fetched": len(frame)}


def path_c(config: dict[str, Any], hps: Hyperparameters, creds: SnowflakeCredentials) -> tuple[Any, dict]:
    """Ours, ``read_mode=scan`` on one host: the job's one query, its batches downloaded and spilled.

    Where the build has external memory, the matrices are chosen as the job chooses them
    (``choose_matrices``): in memory under the default budget, external with ``memory_budget_mb=1`` (path (e)).
    """
    conn = connect(creds, hps["query_tag"])
    try:
        table_sql = quote_table(hps["table"])
        plan = plan_shard(describe_table(conn, table_sql), hps.read_options(), table_sql)
        result = run_scan(conn, plan, hps.read_options())
    finally:
        conn.close()
    spill_dir = Path(config["spill_dir"])
    shard = fetch_share(shares(result, 1)[0], plan, hps.read_options(), spill_dir, leader=True)
    columns = _columns(shard, plan, hps)
    cache_dir, extra = _extmem_cache(shard, columns, hps, spill_dir) if extmem_available() else (None, {})
    dtrain, _dvalid = build_matrices(shard.train_path, shard.validation_path, columns, hps["max_bin"],
                                     hps["nthread"], *([cache_dir] if cache_dir else []))
    return dtrain, {"rows_fetched": shard.rows, "batches": len(result.batches),
                    "fetch_s": round(shard.fetch_seconds, 3), **extra}


def path_c_hash(config: dict[str, Any], hps: Hyperparameters, creds: SnowflakeCredentials) -> tuple[Any, dict]:
    """Ours, ``read_mode=hash`` on one host (``fetch_pages`` from the config: (c') is this with pages)."""
    plan = _plan(creds, hps)
    shard = fetch_shard(lambda: connect(creds, hps["query_tag"]), plan, 0, 1, hps.read_options(), Path(config["spill_dir"]))
    return _matrices(shard, plan, hps), {"rows_fetched": shard.rows, "batches": shard.batches,
                                         "fetch_s": round(shard.fetch_seconds, 3)}


def extmem_available() -> bool:
    """Whether this build has external memory: ``memory_budget_mb``, ``choose_matrices``, ``build_matrices(cache_dir=)``."""
    import importlib.util
    import inspect

    return (EXTMEM_HYPERPARAMETER in SPECS and importlib.util.find_spec("training.train.memory") is not None
            and "cache_dir" in inspect.signature(build_matrices).parameters)


def _extmem_cache(shard: Any, columns: Any, hps: Hyperparameters, spill_dir: Path) -> tuple[Path | None, dict]:
    """The job's choice of matrices on one host (``choose_matrices``) and, if external, its cache folder."""
    import importlib

    from training.collective.cluster import Cluster
    from training.train import dataset

    memory = importlib.import_module("training.train.memory")  # by name: builds before external memory lack it
    outputs = len(columns.classes or []) if hps.multiclass else 1
    choice = memory.choose_matrices(shard.rows, len(columns.features), outputs, Cluster(("bench",), "bench"),
                                   max_bin=hps["max_bin"], budget_mb=hps["memory_budget_mb"], linear=hps.linear)
    return (spill_dir / dataset.CACHE_DIR if choice.external else None), {"matrices": choice.kind}


def _columns(shard: Any, plan: ShardPlan, hps: Hyperparameters) -> Any:
    """The column plan with the vocabularies, as the job agrees them (one host: its own values are the job's)."""
    vocabularies, _ = merge_vocabularies(plan.columns, [shard.vocabulary.partial()], hps["max_categories"])
    return plan.columns.with_vocabularies(vocabularies)


def _matrices(shard: Any, plan: ShardPlan, hps: Hyperparameters) -> Any:
    """``build_matrices`` as the job calls it, on one host, in memory."""
    dtrain, _dvalid = build_matrices(shard.train_path, shard.validation_path, _columns(shard, plan, hps),
                                     hps["max_bin"], hps["nthread"])
    return dtrain


class ParquetBatches(xgb.DataIter):
    """Replays a local Parquet file in pyarrow batches (features, label) for ``QuantileDMatrix``."""

    def __init__(self, path: Path, features: list[str], target: str) -> None:
        self._path, self._features, self._target = path, features, target
        self._batches: Iterator[pa.RecordBatch] | None = None
        super().__init__(release_data=True)

    def next(self, input_data: Callable[..., Any]) -> bool:
        if self._batches is None:
            parquet = pq.ParquetFile(self._path, pre_buffer=False)
            self._batches = parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=[*self._features, self._target])
        batch = next(self._batches, None)
        if batch is None:
            return False
        features = np.column_stack([batch.column(name).to_numpy() for name in self._features])
        input_data(data=features, label=batch.column(self._target).to_numpy(), feature_names=self._features)
        return True

    def reset(self) -> None:
        self._batches = None


def path_d(config: dict[str, Any], hps: Hyperparameters, creds: SnowflakeCredentials) -> tuple[Any, dict]:
    features, target, threads = config["features"], hps["target"], hps["nthread"] or None
    batches = ParquetBatches(Path(config["train_parquet"]), features, target)
    dtrain = xgb.QuantileDMatrix(batches, max_bin=hps["max_bin"], nthread=threads)
    dvalid = xgb.QuantileDMatrix(ParquetBatches(Path(config["eval_parquet"]), features, target), ref=dtrain,
                                 max_bin=hps["max_bin"], nthread=threads)
    return dtrain, {"rows_fetched": dtrain.num_row() + dvalid.num_row()}


PATHS: dict[str, Callable[[dict[str, Any], Hyperparameters, SnowflakeCredentials], tuple[Any, dict]]] = {
    "a": path_a, "b": path_b, "c": path_c, "c-hash": path_c_hash, "d": path_d, "e": path_c,
}
"""Path (e) is path (c) run with the external-memory hyperparameter set (see ``bench.run``)."""


def rmse_on(booster: xgb.Booster, eval_parquet: Path, features: list[str], target: str) -> float:
    """The model's RMSE on the common evaluation rows (float64 arithmetic)."""
    table = pq.read_table(eval_parquet, columns=[*features, target]).to_pandas()
    predictions = booster.inplace_predict(table[features]).astype(np.float64)
    return float(np.sqrt(np.mean((predictions - table[target].to_numpy(np.float64)) ** 2)))


def measure(config: dict[str, Any]) -> dict[str, Any]:
    """Ingest with one path, train, score: the numbers the driver aggregates."""
    hps = parse_hyperparameters(config["hyperparameters"])
    creds = parse_secret(json.dumps(config["secret"]))
    base, cpu0 = peak_mib(), cpu_s()
    started = time.perf_counter()
    dtrain, extra = PATHS[config["path"]](config, hps, creds)
    ingest_s, ingest_peak, cpu1 = time.perf_counter() - started, peak_mib(), cpu_s()
    result = {"path": config["label"], "rows_train": dtrain.num_row(), "ingest_s": round(ingest_s, 3),
              "base_mib": round(base, 1), "ingest_peak_mib": round(ingest_peak, 1),
              "ingest_cpu_s": round(cpu1 - cpu0, 3), "pages": hps["fetch_pages"] if config["path"] == "c-hash" else None,
              "train_s": None, "total_s": None, "train_cpu_s": None, "peak_mib": None, "rmse": None, **extra}
    if config.get("train", True):
        started = time.perf_counter()
        booster = xgb.train(hps.xgboost_params(), dtrain, num_boost_round=hps["num_round"])
        train_s, peak, cpu2 = time.perf_counter() - started, peak_mib(), cpu_s()
        result.update(train_s=round(train_s, 3), total_s=round(ingest_s + train_s, 3), peak_mib=round(peak, 1),
                      train_cpu_s=round(cpu2 - cpu1, 3),
                      rmse=rmse_on(booster, Path(config["eval_parquet"]), config["features"], hps["target"]))
    return result


def setup(config: dict[str, Any]) -> dict[str, Any]:
    """Write the lower bound's training rows and the common evaluation rows to local Parquet files."""
    hps = parse_hyperparameters(config["hyperparameters"])
    creds = parse_secret(json.dumps(config["secret"]))
    plan = _plan(creds, hps)
    counts = {}
    for name, validation in (("train_parquet", False), ("eval_parquet", True)):
        sql, binds = split_query(plan, hps, validation)
        conn = _sample_connection(creds)
        try:
            counts[name] = _write_parquet(conn.cursor(), sql, binds, Path(config[name]))
        finally:
            conn.close()
    return {"features": list(plan.features), "rows_train": counts["train_parquet"],
            "rows_eval": counts["eval_parquet"]}


def _write_parquet(cursor: Any, sql: str, binds: dict[str, Any], path: Path) -> int:
    cursor.execute(sql, binds)
    rows, writer = 0, None
    try:
        for table in cursor.fetch_arrow_batches():
            table = table.cast(pa.schema([pa.field(f.name, pa.float64()) for f in table.schema]))
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table, row_group_size=2 * PARQUET_BATCH_ROWS)
            rows += table.num_rows
    finally:
        if writer is not None:
            writer.close()
    return rows


def main(argv: list[str]) -> int:
    config = json.loads(argv[0] if argv else sys.stdin.read())
    result = setup(config) if config["path"] == "setup" else measure(config)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
