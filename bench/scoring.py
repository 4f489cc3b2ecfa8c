"""The scoring benchmark: our batch scoring job against ``fetch_pandas_all`` + ``Booster.predict``.

One model (a 1-host local training job on the synthetic table, its column plan embedded, as every
job of ours writes it) scores the synthetic table of each size two ways, each in its own fresh
process (:mod:`bench.score_paths`), ``reps`` times, interleaved (base ours, base ours, ...): the
baseline reads the table with ``fetch_pandas_all``, predicts with ``Booster.predict`` and then writes
the key and prediction back with ``write_pandas`` (timed apart, so read + score and the write are
compared separately); ours is the batch scoring job on one host (query, download, ``predict_rows``,
``write_pandas`` into the staging table per result batch, publication to the target). The stand-in
keeps every result in memory, so it is restarted before each repetition.

Then the real scoring job (the container's ``score`` command per host, :mod:`launch.local.hosts`)
scores the largest table on 1, 2, 3 local hosts: rows, seconds and peak memory per host
(:func:`bench.scaling.run_scaling`), and the data queries counted at the stand-in.
"""

from __future__ import annotations

import logging
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.child import run_child
from bench.scaling import run_counted_job
from launch.local.hosts import container_command
from launch.local.services import LocalStack
from training import contract

log = logging.getLogger("bench")

PATHS = ("base", "ours")
KEY = "ID"
"""The key column both paths carry into their predictions (the synthetic table's ``ID``)."""
MODEL_ROUNDS = 20
TIMES = ("total_s", "read_score_s", "write_s", "publish_s", "cpu_s", "process_s")
MEMORY = ("base_mib", "read_score_peak_mib", "peak_mib")


@dataclass(frozen=True)
class ScoringOptions:
    """What the scoring benchmark measures (``bench.run --score-*``)."""

    sizes: tuple[int, ...]
    reps: int
    hosts: tuple[int, ...]
    scaling_rows: int
    model_rows: int
    workdir: Path

    def config(self) -> dict[str, Any]:
        return {"sizes": list(self.sizes), "reps": self.reps, "hosts": list(self.hosts),
                "scaling_rows": self.scaling_rows, "model_rows": self.model_rows, "model_rounds": MODEL_ROUNDS,
                "key": KEY}


def train_model(stack: LocalStack, hyperparameters: dict[str, str], workdir: Path) -> Path:
    """The model both paths score with: a 1-host local training job's ``xgboost-model`` (column plan inside)."""
    job = run_counted_job(stack, {**hyperparameters, "num_round": str(MODEL_ROUNDS)}, 1, workdir)
    if not job["model"]:
        raise RuntimeError("the model's training job wrote no model")
    return Path(job["model"])


def target_table(source: str, path: str) -> str:
    """Where ``path`` writes its predictions of ``source``: beside it, under a name that does not contain the
    source's (the stand-in's data queries are the statements that name the source)."""
    where, name = source.rsplit(".", 1)
    return f"{where}.SCORED_{path.upper()}_{name.rsplit('_', 1)[-1]}"


def measure_paths(stack: LocalStack, source: str, rows: int, model: Path, features: list[str],
                  options: ScoringOptions) -> list[dict[str, Any]]:
    """Both paths on ``source`` (``rows`` rows), ``reps`` times, interleaved; the raw runs."""
    runs = []
    for rep in range(options.reps):
        stack.stop_snowflake()  # free every result the server kept
        stack.start_snowflake()
        for path in PATHS:
            config = {"path": path, "secret": stack.snowflake_secret(), "model": str(model), "key": KEY,
                      "features": features, "source": source, "target": target_table(source, path),
                      "job_name": f"bench-score-{rows}-{rep}"}
            result = run_child(config, "bench.score_paths")
            if result["rows"] != rows or result["rows_written"] != rows:
                raise RuntimeError(f"{path} scored {result['rows']:,} and wrote {result['rows_written']:,} rows of "
                                   f"{rows:,}")
            runs.append({"table_rows": rows, "rep": rep, **result})
            log.info("scoring %s rows, rep %d, %-4s: %.1f s (read + score %.1f s, write %.1f s, publish %.1f s), "
                     "peak %.0f MiB", f"{rows:,}", rep + 1, path, result["total_s"], result["read_score_s"],
                     result["write_s"], result["publish_s"], result["peak_mib"])
    return runs


def medians(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (rows, path): the median of each time and memory figure, and rows per second from them."""
    out = []
    for rows in sorted({r["table_rows"] for r in runs}):
        for path in PATHS:
            group = [r for r in runs if r["table_rows"] == rows and r["path"] == path]
            if not group:
                continue
            row: dict[str, Any] = {"rows": rows, "path": path, "reps": len(group)}
            for metric in (*TIMES, *MEMORY, "load_1m"):
                values = [r[metric] for r in group if r.get(metric) is not None]
                row[metric] = statistics.median(values) if values else None
            row["rows_per_s"] = rows / row["total_s"]
            row["read_score_rows_per_s"] = rows / row["read_score_s"]
            row["write_rows_per_s"] = rows / (row["write_s"] + row["publish_s"])
            out.append(row)
    return out


def ratios(rows_medians: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ours over the baseline at each size: rows per second (above 1: ours faster) and peak MiB (below 1: smaller)."""
    out = []
    for rows in sorted({m["rows"] for m in rows_medians}):
        ours = next((m for m in rows_medians if m["rows"] == rows and m["path"] == "ours"), None)
        base = next((m for m in rows_medians if m["rows"] == rows and m["path"] == "base"), None)
        if not (ours and base):
            continue
        out.append({
            "rows": rows,
            "rows_per_s": ours["rows_per_s"] / base["rows_per_s"],
            "read_score_rows_per_s": ours["read_score_rows_per_s"] / base["read_score_rows_per_s"],
            "write_rows_per_s": ours["write_rows_per_s"] / base["write_rows_per_s"],
            "peak_mib": ours["peak_mib"] / base["peak_mib"],
            "peak_mib_without_write": ours["peak_mib"] / base["read_score_peak_mib"],
            "data_mib": (ours["peak_mib"] - ours["base_mib"]) / max(base["peak_mib"] - base["base_mib"], 1.0),
        })
    return out


def run_jobs(stack: LocalStack, source: str, rows: int, model: Path, options: ScoringOptions) -> list[dict[str, Any]]:
    """The real scoring job on ``source`` on each host count: rows, seconds and peak per host, queries."""
    hps = {"source_table": source, "target_table": target_table(source, "job"), "key_columns": KEY,
           "query_tag": "bench", "collective_timeout": "600"}
    jobs = []
    for hosts in options.hosts:
        job = run_counted_job(stack, hps, hosts, options.workdir, command=container_command(contract.SCORE_COMMAND),
                              env={contract.SCORING_MODEL_ENV: str(model.parent)})
        job.pop("model")  # a scoring job writes none
        scored = sum(h["rows"] or 0 for h in job["per_host"])
        if scored != rows:
            raise RuntimeError(f"the {hosts}-host scoring job's hosts scored {scored:,} rows of {rows:,}")
        for host in job["per_host"]:
            host["rows_per_s"] = host["rows"] / host["score_s"] if host.get("score_s") else None
        jobs.append({"rows": rows, **job, "rows_per_s_per_host": rows / hosts / job["wall_s"]})
        log.info("scoring job, %d host(s), %s rows: %.1f s, rows per host %s, peak per host %s MiB, %d data "
                 "queries", hosts, f"{rows:,}", job["wall_s"], [h["rows"] for h in job["per_host"]],
                 ", ".join(f"{h['peak_mib']:.0f}" for h in job["per_host"]), job["queries"]["data"])
    return jobs
