"""One way of batch scoring a table, measured in a fresh process: ``python -m bench.score_paths < config.json``.

The child scores every row of the source table with the same model and prints one JSON line: wall
times of each stage, the rows scored and written, and the process's peak resident set size
(``VmHWM``, :func:`bench.paths.peak_mib`) after the imports, after reading and scoring, and at the end.

Paths (``PATHS``):

- ``base``: what a notebook does: ``cursor.fetch_pandas_all()`` of the key and feature columns, then
  ``Booster.predict`` on a ``DMatrix`` of the frame's features; then (timed apart) the key and the
  prediction written to a table created for them with ``write_pandas`` (one call, its defaults:
  one Parquet file);
- ``ours``: the batch scoring job on one host, in this process, as the container calls it
  (:func:`training.scoring.job.run_scoring`): the leader's one query, its result batches downloaded
  ``fetch_threads`` at a time, each scored with ``predict_rows`` and appended to the staging table
  with ``write_pandas``; then the leader's count and publication to the target. The time spent in
  the appends and in the publication is summed apart (the rest is query, download and scoring).
"""

# ruff: noqa: E402  (the measured process keeps scikit-learn out before XGBoost is imported, below)
from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # as bench.paths: XGBoost would import scikit-learn for estimators no path uses
    sys.modules.setdefault("sklearn", None)

# Both paths import the same libraries before measuring, so the memory after the imports is comparable.
import pandas as pd
import snowflake.connector
import xgboost as xgb
from snowflake.connector.pandas_tools import write_pandas

from bench.paths import cpu_s, peak_mib
from training.collective.cluster import Cluster
from training.read.credentials import SnowflakeCredentials, parse_secret
from training.read.snowflake import quote_column, quote_table
from training.scoring.job import ScoreSpec, run_scoring
from training.scoring.options import ScoreOptions
from training.scoring.write import Tables

BASE_PREDICTION = "PREDICTION"


@dataclass(frozen=True)
class GivenCredentials:
    """The job's sign-in (:class:`training.read.credentials.SignIn`) with the credentials in hand: the
    measured process reads no secret (the real job reads its secret through boto3 once; the local
    jobs of :mod:`bench.scoring` do)."""

    creds: SnowflakeCredentials

    def credentials(self) -> SnowflakeCredentials:
        return self.creds


def path_base(config: dict[str, Any], creds: SnowflakeCredentials, marks: dict[str, float]) -> dict[str, Any]:
    """``fetch_pandas_all`` + ``Booster.predict``, then ``write_pandas`` of the key and prediction.

    Read and score count from the model's loading, as the job's do (the model, the connection, the query)."""
    started = time.perf_counter()
    booster = xgb.Booster(model_file=config["model"])
    key, features = config["key"], config["features"]
    conn = snowflake.connector.connect(**creds.connect_kwargs(), login_timeout=60, network_timeout=300)
    try:
        cursor = conn.cursor()
        cursor.execute(f"SELECT {', '.join(quote_column(c) for c in (key, *features))} "  # noqa: S608  (quoted)
                       f"FROM {quote_table(config['source'])}")
        frame = cursor.fetch_pandas_all()
        read_s = time.perf_counter() - started
        predictions = booster.predict(xgb.DMatrix(frame[features]))
        marks["read_score"] = peak_mib()
        score_s = time.perf_counter() - started - read_s
        started = time.perf_counter()
        target = quote_table(config["target"])
        cursor.execute(f"CREATE OR REPLACE TABLE {target} ({quote_column(key)} NUMBER(38, 0), "
                       f"{BASE_PREDICTION} FLOAT)")
        out = pd.DataFrame({key: frame[key].to_numpy(), BASE_PREDICTION: predictions})
        ok, _, written, _ = write_pandas(conn, out, config["target"].rsplit(".", 1)[-1], quote_identifiers=True,
                                         auto_create_table=False, use_logical_type=True)
        if not ok:
            raise RuntimeError("write_pandas reported failure")
        write_s = time.perf_counter() - started
    finally:
        conn.close()
    return {"rows": len(frame), "rows_written": int(written), "read_s": read_s, "score_s": score_s,
            "read_score_s": read_s + score_s, "write_s": write_s, "publish_s": 0.0}


def path_ours(config: dict[str, Any], creds: SnowflakeCredentials, marks: dict[str, float]) -> dict[str, Any]:
    """The scoring job on one host, with the time inside ``Tables.append`` and ``Tables.publish`` summed apart."""
    options = ScoreOptions.parse({"source_table": config["source"], "target_table": config["target"],
                                  "key_columns": config["key"], "query_tag": "bench"})
    spec = ScoreSpec(options, Cluster.from_hosts(["bench"], "bench"), Path(config["model"]),
                     GivenCredentials(creds), job_name=config["job_name"])  # type: ignore[arg-type]
    spent: dict[str, float] = {"append": 0.0, "publish": 0.0}
    started = time.perf_counter()
    with _timed(Tables, "append", spent), _timed(Tables, "publish", spent):
        result = run_scoring(spec)
    total = time.perf_counter() - started
    return {"rows": result.rows, "rows_written": sum(result.rows_per_host), "read_s": None, "score_s": None,
            "read_score_s": total - spent["append"] - spent["publish"], "write_s": spent["append"],
            "publish_s": spent["publish"]}


@contextmanager
def _timed(owner: type, name: str, spent: dict[str, float]) -> Iterator[None]:
    """Sum the wall time spent in ``owner.name`` into ``spent[name]`` while the block runs."""
    original = getattr(owner, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[name] += time.perf_counter() - started

    setattr(owner, name, timed)
    try:
        yield
    finally:
        setattr(owner, name, original)


PATHS: dict[str, Callable[[dict[str, Any], SnowflakeCredentials, dict[str, float]], dict[str, Any]]] = {
    "base": path_base, "ours": path_ours,
}


def measure(config: dict[str, Any]) -> dict[str, Any]:
    """Score the table one way: the numbers the driver aggregates (seconds, MiB, rows)."""
    creds = parse_secret(json.dumps(config["secret"]))
    base, cpu0 = peak_mib(), cpu_s()
    marks: dict[str, float] = {}
    started = time.perf_counter()
    result = PATHS[config["path"]](config, creds, marks)
    total_s, peak, cpu1 = time.perf_counter() - started, peak_mib(), cpu_s()
    rounded = {k: (None if v is None else round(v, 3)) for k, v in result.items() if k.endswith("_s")}
    return {**result, **rounded, "path": config["path"], "total_s": round(total_s, 3), "cpu_s": round(cpu1 - cpu0, 3),
            "base_mib": round(base, 1), "read_score_peak_mib": round(marks["read_score"], 1) if marks else None,
            "peak_mib": round(peak, 1)}


def main(argv: list[str]) -> int:
    config = json.loads(argv[0] if argv else sys.stdin.read())
    print(json.dumps(measure(config)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
