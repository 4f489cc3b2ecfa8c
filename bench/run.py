"""``make bench``: ingest time and peak memory of each path at several table sizes, queries per job, scaling.

For every size it seeds a synthetic table (``ID``, ``F0``..``F7``, ``Y``) in one local Snowflake
(fakesnow's server behind the unmodified connector, answering large results in chunks as
Snowflake does, at the default :class:`~launch.local.result_chunks.ChunkSizes`), writes the lower
bound's Parquet file and the common evaluation rows, and measures each path in its own fresh
process, ``--reps`` times, interleaved (a b c c-hash d e, a b c c-hash d e, ...). The server keeps
every query result in memory for its lifetime, so it is restarted after each repetition; only the
client processes are measured. Each path's warehouse queries are counted at the stand-in.
Then it runs real local jobs: ``scan`` and ``hash`` on 1, 2 and 4 hosts (queries per job, counted
at the stand-in), and the largest table in ``scan`` on 1, 2 and 4 hosts (rows and peak per host,
wall), then the scoring benchmark (:mod:`bench.scoring`: our batch scoring job against
``fetch_pandas_all`` + ``Booster.predict``, and the real job on 1, 2, 3 hosts), and writes
``results.json``, ``results.md`` and ``memory.png`` under ``--out`` (``--publish``: also ``docs/benchmarks*``).
``--only scoring`` measures the scoring benchmark alone and merges it into ``--merge-into`` (the
published ``docs/benchmarks.json``), whose other sections keep their numbers.

    python -m bench.run                                  # 250k, 1M, 4M rows, 3 repetitions
    python -m bench.run --sizes 20000 --reps 1 --query-hosts 2 --scaling-hosts 2 --score-sizes 20000 --out /tmp/b
    python -m bench.run --only scoring --publish         # scoring alone, merged into docs/benchmarks.json
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench import doc, report
from bench.child import REPO_ROOT, run_child
from bench.scaling import count_queries, run_counted_job
from bench.scoring import ScoringOptions, measure_paths, run_jobs, train_model
from bench.scoring import medians as scoring_medians
from bench.scoring import ratios as scoring_ratios
from launch.local.result_chunks import ChunkSizes
from launch.local.services import DATABASE, SCHEMA, LocalStack

log = logging.getLogger("bench")

DEFAULT_OUT = REPO_ROOT / "bench" / "results"
DEFAULT_MERGE = REPO_ROOT / "docs" / "benchmarks.json"
SEED = 0
PATH_LABELS = ("a", "b", "c", "c-hash", "c'", "d", "e")
"""(a) read_sql + DMatrix, (b) fetch_pandas_all + QuantileDMatrix, (c) ours in scan, (c-hash) ours in hash,
(c') ours in hash, paged (a reference, off by default), (d) Parquet, (e) ours in scan with external memory."""
DEFAULT_PATHS = "a,b,c,c-hash,d,e"
HASH_PATHS = ("c-hash", "c'")
EXTMEM_MISSING = "external memory not available in this build"
READ_MODES = ("scan", "hash")
METRICS = ("ingest_s", "train_s", "total_s", "process_s", "ingest_cpu_s", "train_cpu_s", "load_1m", "base_mib",
           "ingest_peak_mib", "peak_mib", "rmse")


@dataclass(frozen=True)
class Options:
    """What one benchmark run measures (see ``--help``)."""

    sizes: tuple[int, ...]
    paths: tuple[str, ...]
    reps: int
    train_reps: int
    train_max_rows: int
    scaling_rounds: int
    page_rows: int
    num_round: int
    scaling_rows: int
    scaling_hosts: tuple[int, ...]
    query_hosts: tuple[int, ...]
    query_rows: int
    query_rounds: int
    categorical_rows: int
    out: Path
    workdir: Path
    publish: bool
    rmse_tolerance: float
    scoring: ScoringOptions
    only: str = ""
    """``scoring``: measure the scoring benchmark alone and merge it into ``merge_into`` (the others keep their numbers)."""
    merge_into: Path = DEFAULT_MERGE


def parse_options(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="250000,1000000,4000000", help="table sizes in rows, comma-separated")
    parser.add_argument("--paths", default=DEFAULT_PATHS,
                        help=f"paths to measure, comma-separated, of {','.join(PATH_LABELS)} (c' is off by default)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions per path and size (median reported)")
    parser.add_argument("--train-reps", type=int, default=1,
                        help="repetitions that also train and score (the rest measure ingest only)")
    parser.add_argument("--train-max-rows", type=int, default=1_000_000,
                        help="train and score only at sizes up to this many rows (0: every size)")
    parser.add_argument("--page-rows", type=int, default=500_000,
                        help="rows per page of path c': fetch_pages = ceil(rows / page-rows)")
    parser.add_argument("--num-round", type=int, default=100, help="boosting rounds of every path")
    parser.add_argument("--scaling-rows", type=int, default=0, help="table of the scaling runs (default: largest size)")
    parser.add_argument("--scaling-rounds", type=int, default=20, help="boosting rounds of the scaling jobs")
    parser.add_argument("--scaling-hosts", default="1,2,4", help="host counts of the scaling runs ('' to skip)")
    parser.add_argument("--query-hosts", default="1,2,4",
                        help="host counts of the queries-per-job jobs, each in scan and hash ('' to skip)")
    parser.add_argument("--query-rows", type=int, default=0, help="table of the queries-per-job jobs (default: smallest size)")
    parser.add_argument("--query-rounds", type=int, default=5, help="boosting rounds of the queries-per-job jobs")
    parser.add_argument("--categorical-rows", type=int, default=-1,
                        help="rows of the text-column cost measurement (default: the largest size up to 1M; 0: skip)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder")
    parser.add_argument("--workdir", type=Path, default=None, help="servers, tables and spills (default: OUT/work)")
    parser.add_argument("--publish", action="store_true", help="also write docs/benchmarks.md, .png and .json")
    parser.add_argument("--score-sizes", default="250000,1000000",
                        help="table sizes of the scoring benchmark, comma-separated ('' to skip it)")
    parser.add_argument("--score-reps", type=int, default=3, help="repetitions of each scoring path and size")
    parser.add_argument("--score-hosts", default="1,2,3", help="host counts of the real scoring jobs ('' to skip)")
    parser.add_argument("--score-rows", type=int, default=0,
                        help="table of the real scoring jobs (default: the largest scoring size)")
    parser.add_argument("--score-model-rows", type=int, default=50_000,
                        help="table the scoring benchmark's model is trained on (one local job)")
    parser.add_argument("--only", choices=("scoring",), default="",
                        help="measure only this section and merge it into --merge-into (the rest keep their numbers)")
    parser.add_argument("--merge-into", type=Path, default=DEFAULT_MERGE,
                        help="the results --only merges into (default: the published docs/benchmarks.json)")
    parser.add_argument("--rmse-tolerance", type=float, default=0.01,
                        help="largest relative spread of the paths' validation RMSE that counts as agreement")
    args = parser.parse_args(argv)
    sizes = tuple(int(s) for s in args.sizes.split(",") if s.strip())
    if not sizes or min(sizes) < 1000 or args.reps < 1 or args.page_rows < 1:
        parser.error("--sizes needs sizes of at least 1000 rows; --reps and --page-rows must be positive")
    paths = tuple(p.strip() for p in args.paths.split(",") if p.strip())
    if not paths or set(paths) - set(PATH_LABELS):
        parser.error(f"--paths takes some of {', '.join(PATH_LABELS)}; got {args.paths!r}")
    score_sizes = tuple(int(s) for s in args.score_sizes.split(",") if s.strip())
    if (score_sizes and min(score_sizes) < 1000) or args.score_reps < 1 or (args.only and not score_sizes):
        parser.error("--score-sizes needs sizes of at least 1000 rows (and --only scoring some size); "
                     "--score-reps must be positive")
    out = args.out.resolve()
    workdir = (args.workdir or out / "work").resolve()
    scoring = ScoringOptions(sizes=score_sizes, reps=args.score_reps, hosts=_hosts(args.score_hosts),
                             scaling_rows=args.score_rows or max(score_sizes, default=0),
                             model_rows=args.score_model_rows, workdir=workdir)
    return Options(sizes=sizes, paths=tuple(p for p in PATH_LABELS if p in paths), reps=args.reps, train_reps=min(max(args.train_reps, 1), args.reps),
                   train_max_rows=args.train_max_rows or max(sizes), scaling_rounds=args.scaling_rounds,
                   page_rows=args.page_rows, num_round=args.num_round,
                   scaling_rows=args.scaling_rows or max(sizes),
                   scaling_hosts=_hosts(args.scaling_hosts), query_hosts=_hosts(args.query_hosts),
                   query_rows=args.query_rows or min(sizes), query_rounds=args.query_rounds,
                   categorical_rows=(max([s for s in sizes if s <= 1_000_000] or [min(sizes)])
                                     if args.categorical_rows < 0 else args.categorical_rows),
                   out=out, workdir=workdir, publish=args.publish,
                   rmse_tolerance=args.rmse_tolerance, scoring=scoring, only=args.only,
                   merge_into=args.merge_into.resolve())


def _hosts(text: str) -> tuple[int, ...]:
    return tuple(int(h) for h in text.split(",") if h.strip())


CATEGORIES = (50, 1000)
"""Distinct values of the text columns ``C50`` and ``C1000`` of the categorical table."""


def table_name(rows: int, categorical: bool = False) -> str:
    return f"BENCH_CAT_{rows}" if categorical else f"BENCH_{rows}"


def hyperparameters(rows: int, options: Options, pages: int = 1, categorical: bool = False,
                    read_mode: str = "scan") -> dict[str, str]:
    """The job's hyperparameters on the table of ``rows`` rows (every path trains with these)."""
    return {"table": f"{DATABASE}.{SCHEMA}.{table_name(rows, categorical)}", "target": "Y", "shard_key": "ID",
            "num_round": str(options.num_round), "eta": "0.1", "max_depth": "6", "validation_fraction": "0.2",
            "fetch_pages": str(pages), "query_tag": "bench", "collective_timeout": "600", "read_mode": read_mode}


def path_hyperparameters(label: str, rows: int, options: Options) -> dict[str, str]:
    """What the path labelled ``label`` runs with: hash for (c-hash) and (c'), pages for (c'), (e)'s switch."""
    from bench.paths import EXTMEM_HYPERPARAMETER

    pages = max(1, math.ceil(rows / options.page_rows)) if label == "c'" else 1
    hps = hyperparameters(rows, options, pages, read_mode="hash" if label in HASH_PATHS else "scan")
    if label == "e":
        hps[EXTMEM_HYPERPARAMETER] = "1"
    return hps


def path_code(label: str) -> str:
    """The function of ``bench.paths.PATHS`` a label runs ((c') is (c-hash) with pages)."""
    return "c-hash" if label == "c'" else label


def measured_paths(options: Options) -> tuple[tuple[str, ...], dict[str, str]]:
    """The paths this build can run, and the reason for each one it skips."""
    from bench.paths import extmem_available

    skipped = {"e": EXTMEM_MISSING} if "e" in options.paths and not extmem_available() else {}
    return tuple(p for p in options.paths if p not in skipped), skipped


def measure_size(stack: LocalStack, rows: int, options: Options, labels: tuple[str, ...]) -> list[dict[str, Any]]:
    """Seed the table, write the Parquet files, run every path ``reps`` times; return the raw runs."""
    stack.ensure_table(table_name(rows), data="synthetic", rows=rows, seed=SEED)
    stack.stop_snowflake()  # drop the seeding's results from the server's memory
    stack.start_snowflake()
    files = options.workdir / "files" / str(rows)
    files.mkdir(parents=True, exist_ok=True)
    base = {"secret": stack.snowflake_secret(), "train_parquet": str(files / "train.parquet"),
            "eval_parquet": str(files / "eval.parquet")}
    setup = run_child({**base, "path": "setup", "hyperparameters": hyperparameters(rows, options)})
    log.info("%s rows: %s training rows, %s evaluation rows", f"{rows:,}", f"{setup['rows_train']:,}",
             f"{setup['rows_eval']:,}")
    runs = []
    for rep in range(options.reps):
        for label in labels:
            spill = options.workdir / "spill" / f"{rows}-{rep}-{label.replace(chr(39), 'p')}"
            config = {**base, "label": label, "path": path_code(label), "features": setup["features"],
                      "spill_dir": str(spill), "train": rep < options.train_reps and rows <= options.train_max_rows,
                      "hyperparameters": path_hyperparameters(label, rows, options)}
            seen = stack.queries()["next"]
            result = run_child(config)
            result["queries"] = count_queries(stack.queries(seen)["queries"], config["hyperparameters"]["table"])
            shutil.rmtree(spill, ignore_errors=True)
            runs.append({"rows": rows, "rep": rep, **result})
            log.info("%s rows, rep %d, path %-6s: ingest %.1f s, %.0f MiB; train %s s, peak %s MiB, rmse %s; "
                     "%d data queries", f"{rows:,}", rep + 1, label, result["ingest_s"], result["ingest_peak_mib"],
                     result["train_s"], result["peak_mib"], result["rmse"], result["queries"]["data"])
        stack.stop_snowflake()  # free every result the server kept
        stack.start_snowflake()
    return runs


def measure_categorical(stack: LocalStack, options: Options) -> dict[str, Any] | None:
    """What two text columns (50 and 1,000 categories) cost our path against the all-numeric table.

    Path (c) ingests each table (fetch, spill, vocabulary, both matrices) ``reps`` times,
    interleaved, in fresh processes; the ratios of the medians are reported.
    """
    rows = options.categorical_rows
    if not rows:
        return None
    stack.ensure_table(table_name(rows), data="synthetic", rows=rows, seed=SEED)
    stack.ensure_table(table_name(rows, True), data="synthetic", rows=rows, seed=SEED, categories=CATEGORIES)
    runs: dict[str, list[dict[str, Any]]] = {"numeric": [], "categorical": []}
    for rep in range(options.reps):
        stack.stop_snowflake()
        stack.start_snowflake()
        for kind in runs:
            spill = options.workdir / "spill" / f"cat-{rows}-{rep}-{kind}"
            config = {"secret": stack.snowflake_secret(), "label": "c", "path": "c", "train": False,
                      "spill_dir": str(spill), "hyperparameters": hyperparameters(rows, options,
                                                                                   categorical=kind == "categorical")}
            result = run_child(config)
            shutil.rmtree(spill, ignore_errors=True)
            runs[kind].append(result)
            log.info("%s rows, rep %d, %s table: ingest %.1f s, %.0f MiB", f"{rows:,}", rep + 1, kind,
                     result["ingest_s"], result["ingest_peak_mib"])
    out: dict[str, Any] = {"rows": rows, "categories": list(CATEGORIES), "runs": runs}
    for kind, group in runs.items():
        out[kind] = {m: statistics.median(r[m] for r in group) for m in ("ingest_s", "ingest_peak_mib", "ingest_cpu_s")}
    out["ratio"] = {m: round(out["categorical"][m] / out["numeric"][m], 3) for m in out["numeric"]}
    return out


def medians(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (rows, path): the median of every metric over the repetitions."""
    out = []
    for rows in sorted({r["rows"] for r in runs}):
        for label in PATH_LABELS:
            group = [r for r in runs if r["rows"] == rows and r["path"] == label]
            if not group:
                continue
            row = {"rows": rows, "path": label, "reps": len(group), "rows_train": group[0]["rows_train"],
                   "pages": group[0].get("pages"), "batches": group[0].get("batches"),
                   "matrices": sorted({r["matrices"] for r in group if r.get("matrices")}),
                   "queries": group[0]["queries"]["data"], "other_statements": group[0]["queries"]["other"]}
            for metric in METRICS:  # training metrics exist only for the repetitions that trained
                values = [r[metric] for r in group if r.get(metric) is not None]
                row[metric] = statistics.median(values) if values else None
            row["trained_reps"] = sum(1 for r in group if r.get("rmse") is not None)
            out.append(row)
    return out


def run_job(stack: LocalStack, hps: dict[str, str], hosts: int, options: Options) -> dict[str, Any]:
    """One real local training job on a freshly started stand-in, its queries counted there."""
    result = run_counted_job(stack, hps, hosts, options.workdir)
    result.pop("model")  # a path on this machine: not a result
    return result


def run_query_counts(stack: LocalStack, options: Options) -> list[dict[str, Any]]:
    """Warehouse queries per job, counted at the stand-in, for each read mode and host count."""
    if not options.query_hosts:
        return []
    rows = options.query_rows
    stack.ensure_table(table_name(rows), data="synthetic", rows=rows, seed=SEED)
    results = []
    for mode in READ_MODES:
        for hosts in options.query_hosts:
            hps = {**hyperparameters(rows, options, read_mode=mode), "num_round": str(options.query_rounds)}
            result = run_job(stack, hps, hosts, options)
            log.info("%s, %d host(s), %s rows: %d data queries (other statements: %s); rows per host %s", mode,
                     hosts, f"{rows:,}", result["queries"]["data"], result["queries"]["other"],
                     [h["rows"] for h in result["per_host"]])
            results.append({"rows": rows, **result})
    return results


def run_scalings(stack: LocalStack, options: Options) -> list[dict[str, Any]]:
    """The largest table in ``scan`` mode on 1, 2, 4 hosts: rows and peak per host, wall."""
    if not options.scaling_hosts:
        return []
    rows = options.scaling_rows
    stack.ensure_table(table_name(rows), data="synthetic", rows=rows, seed=SEED)
    results = []
    for hosts in options.scaling_hosts:
        hps = {**hyperparameters(rows, options), "num_round": str(options.scaling_rounds)}
        result = run_job(stack, hps, hosts, options)
        log.info("%d host(s), %s rows: %.1f s, rows per host %s, peak per host %s MiB, %d data queries", hosts,
                 f"{rows:,}", result["wall_s"], [h["rows"] for h in result["per_host"]],
                 ", ".join(f"{h['peak_mib']:.0f}" for h in result["per_host"]), result["queries"]["data"])
        results.append({"rows": rows, **result})
    return results


def machine_facts() -> dict[str, Any]:
    """What the numbers were measured on: CPU, cores, memory, OS, library versions, commit."""
    cpu = next((line.split(":", 1)[1].strip() for line in _read_lines("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor() or "unknown")
    mem_kib = next((int(line.split()[1]) for line in _read_lines("/proc/meminfo") if line.startswith("MemTotal")), 0)
    packages = ("xgboost", "pyarrow", "pandas", "numpy", "snowflake-connector-python", "fakesnow", "duckdb")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                            text=True, check=False).stdout.strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem_kib / 2**20, 1),
            "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
            "packages": {name: version(name) for name in packages}, "commit": commit,
            "date": time.strftime("%Y-%m-%d %H:%M %Z")}


def _read_lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def run_config(options: Options, chunks: ChunkSizes) -> dict[str, Any]:
    """What the run measured with, recorded beside its numbers (the page quotes it)."""
    return {"sizes": list(options.sizes), "paths": list(options.paths), "reps": options.reps,
            "train_reps": options.train_reps, "train_max_rows": options.train_max_rows, "num_round": options.num_round,
            "page_rows": options.page_rows, "chunks": asdict(chunks), "categorical_rows": options.categorical_rows,
            "query_hosts": list(options.query_hosts), "query_rows": options.query_rows,
            "query_rounds": options.query_rounds, "scaling_hosts": list(options.scaling_hosts),
            "scaling_rows": options.scaling_rows, "scaling_rounds": options.scaling_rounds,
            "rmse_tolerance": options.rmse_tolerance, "hyperparameters": hyperparameters(max(options.sizes), options)}


def run_scoring(stack: LocalStack, options: Options, command: str) -> dict[str, Any] | None:
    """The scoring benchmark (:mod:`bench.scoring`), with the machine, commit and command that measured it."""
    scoring = options.scoring
    if not scoring.sizes:
        return None
    from training.model.booster import load

    started = time.perf_counter()
    facts = machine_facts()
    stack.ensure_table(table_name(scoring.model_rows), data="synthetic", rows=scoring.model_rows, seed=SEED)
    model = train_model(stack, hyperparameters(scoring.model_rows, options), options.workdir)
    features = list(load(model)[1].feature_names)
    runs = []
    for rows in scoring.sizes:
        stack.ensure_table(table_name(rows), data="synthetic", rows=rows, seed=SEED)
        runs += measure_paths(stack, hyperparameters(rows, options)["table"], rows, model, features, scoring)
    jobs = []
    if scoring.hosts:
        rows = scoring.scaling_rows
        stack.ensure_table(table_name(rows), data="synthetic", rows=rows, seed=SEED)
        jobs = run_jobs(stack, hyperparameters(rows, options)["table"], rows, model, scoring)
    per_path = scoring_medians(runs)
    return {"machine": facts, "command": command, "config": {**scoring.config(), "chunks": asdict(stack.chunks)},
            "runs": runs, "medians": per_path, "ratios": scoring_ratios(per_path), "jobs": jobs,
            "wall_s": round(time.perf_counter() - started, 1)}


def run_scoring_only(options: Options, argv: list[str]) -> dict[str, Any]:
    """``--only scoring``: the scoring benchmark merged into earlier results, whose other sections are kept."""
    results = json.loads(options.merge_into.read_text())
    with LocalStack(options.workdir, persist=True, chunks=ChunkSizes()) as stack:
        results["scoring"] = run_scoring(stack, options, "python -m bench.run " + " ".join(argv))
    return _finish(results, options)


def _finish(results: dict[str, Any], options: Options) -> dict[str, Any]:
    results.update(report.analyse(results))
    report.write_results(results, options.out)
    if options.publish:
        doc.publish(results, options.out, REPO_ROOT / "docs")
    return results


def run(options: Options, argv: list[str]) -> dict[str, Any]:
    options.out.mkdir(parents=True, exist_ok=True)
    if options.only == "scoring":
        return run_scoring_only(options, argv)
    labels, skipped = measured_paths(options)
    chunks = ChunkSizes()  # the stand-in's defaults: the page says what they are
    results: dict[str, Any] = {"machine": machine_facts(), "command": "python -m bench.run " + " ".join(argv),
                               "skipped": skipped, "config": run_config(options, chunks)}
    started = time.perf_counter()
    for label, reason in skipped.items():
        log.warning("path (%s) skipped: %s", label, reason)
    with LocalStack(options.workdir, persist=True, chunks=chunks) as stack:
        runs = [run for rows in options.sizes for run in measure_size(stack, rows, options, labels)]
        results["runs"], results["medians"] = runs, medians(runs)
        results["categorical"] = measure_categorical(stack, options)
        results["query_counts"] = run_query_counts(stack, options)
        results["scaling"] = run_scalings(stack, options)
        results["scoring"] = run_scoring(stack, options, results["command"])
    results["wall_s"] = round(time.perf_counter() - started, 1)
    return _finish(results, options)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s bench: %(message)s")
    for name in ("botocore", "urllib3", "snowflake", "launch", "training"):
        logging.getLogger(name).setLevel(logging.WARNING)
    options = parse_options(argv)
    results = run(options, argv)
    print(report.markdown_table(results))
    print(report.scoring_table(results))
    seconds = (results.get("scoring") or {}).get("wall_s") if options.only else results["wall_s"]
    print(f"\nresults: {options.out / 'results.json'}  ({seconds:.0f} s)")
    if not results["rmse"]["agree"]:
        print(f"WARNING: validation RMSEs disagree by more than {options.rmse_tolerance:.1%}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
