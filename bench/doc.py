"""``docs/benchmarks.md``, rendered from a run's results (``python -m bench.run --publish``).

``python -m bench.doc RESULTS_JSON [--publish]`` re-renders the tables, the plot and (with
``--publish``) the doc from a saved ``results.json`` without measuring again.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path
from typing import Any

from bench.report import (
    PATH_NAMES,
    analyse,
    categorical_table,
    markdown_table,
    queries_table,
    ratio_table,
    rmse_table,
    scaling_table,
    scoring_jobs_table,
    scoring_ratio_table,
    scoring_table,
    targets_table,
    write_results,
)


def _machine(results: dict[str, Any]) -> str:
    m = results["machine"]
    loads = [r["load_1m"] for r in results["runs"] if "load_1m" in r]
    load = f"{statistics.median(loads):.1f} (min {min(loads):.1f}, max {max(loads):.1f})" if loads else "not recorded"
    packages = ", ".join(f"{name} {v}" for name, v in m["packages"].items())
    return "\n".join([
        f"- CPU: {m['cpu']}, {m['cores']} cores; memory {m['memory_gib']} GiB; {m['os']}; Python {m['python']}",
        f"- {packages}",
        f"- commit `{m['commit']}`, {m['date']}; the whole run took {results['wall_s'] / 60:.0f} minutes"
        + (" (the scoring section below was measured apart: it says when)" if _scored_apart(results) else ""),
        f"- 1-minute load average when each measurement started: median {load} (on 2 cores, the "
        "benchmark itself and the local Snowflake make about 1); wall times carry some noise, the "
        "CPU-second columns of `benchmarks.json` and the memory figures much less.",
    ])


def _scored_apart(results: dict[str, Any]) -> bool:
    """Whether the scoring section was measured by another run (``--only scoring``) than the rest."""
    section = results.get("scoring")
    return bool(section) and section["command"] != results["command"] or \
        bool(section) and section["machine"]["commit"] != results["machine"]["commit"]


def _scoring(results: dict[str, Any]) -> str:
    """The scoring benchmark's section: what each side does, medians, ratios, the real job on 1 to N hosts."""
    section = results.get("scoring")
    if not section:
        return "(not measured in this run: `python -m bench.run --only scoring --publish` adds it)"
    m, config = section["machine"], section["config"]
    loads = [r["load_1m"] for r in section["runs"]]
    jobs = section.get("jobs") or []
    largest = max(jobs, key=lambda j: (j["rows"], j["hosts"]), default=None)
    largest_line = (f"The largest local scoring run: **{largest['rows']:,} rows on {largest['hosts']} hosts** "
                    f"({largest['wall_s']:.0f} s)." if largest else "No local scoring job ran.")
    ratio = max(section["ratios"], key=lambda r: r["rows"], default=None)
    summary = (f"At {ratio['rows']:,} rows, ours read, scored and wrote **{ratio['rows_per_s']:.2f}x** the "
               f"baseline's rows per second (read + score alone: {ratio['read_score_rows_per_s']:.2f}x; the write "
               f"alone: {ratio['write_rows_per_s']:.2f}x) in **{ratio['peak_mib']:.2f}x** its peak memory "
               f"({ratio['peak_mib_without_write']:.2f}x the baseline's peak before its write)."
               if ratio else "")
    return SCORING.format(
        command=section["command"], commit=m["commit"], date=m["date"], minutes=section["wall_s"] / 60,
        load=f"{statistics.median(loads):.1f} (min {min(loads):.1f}, max {max(loads):.1f})",
        cores=m["cores"], reps=config["reps"], model_rows=config["model_rows"], model_rounds=config["model_rounds"],
        medians=scoring_table(results), ratios=scoring_ratio_table(results), jobs=scoring_jobs_table(results),
        largest=largest_line, summary=summary, hosts=", ".join(str(h) for h in config["hosts"]) or "no",
        job_rows=f"{config['scaling_rows']:,}")


SCORING = """\
*Measured by `{command}` at commit `{commit}`, {date}, in {minutes:.0f} minutes; 1-minute load average when each measured process started: median {load} on
{cores} cores (other work shared the machine).*

One model (a local training job, {model_rounds} rounds, on the {model_rows:,}-row synthetic table; its
column plan inside, as every model of ours) scores every row of the synthetic table (`ID`, `F0..F7`)
two ways, each in its own fresh process that imports the same libraries first, in {reps} repetition(s),
interleaved (baseline, ours, baseline, ours, ...); medians. The local Snowflake is restarted before
each repetition.

- **Baseline**: `cursor.execute("SELECT ID, F0, ..., F7 FROM table")`, `cursor.fetch_pandas_all()`,
  `Booster.predict(xgb.DMatrix(frame[features]))`: *read + score*, timed from loading the model.
  Then, timed apart as *write*: `CREATE TABLE` of two columns (`ID`, `PREDICTION`) and one
  `write_pandas` of the whole frame with its defaults (one Parquet file, one `PUT`, one `COPY`).
  Its *peak MiB, read + score* is its peak before it writes: the baseline without the write.
- **Ours**: the batch scoring job on one host, in the measured process, as the container calls it
  (`training.scoring.job.run_scoring`; the credentials handed in, where the real job reads a secret
  through boto3): the leader drops stale staging tables, creates the staging table, runs the one
  query and deals its result batches; the host downloads them `fetch_threads` = 4 at a time, scores
  each with `predict_rows` (`Booster.inplace_predict` on the column plan's coding) and appends it
  with `write_pandas` (a `PUT` and a `COPY` per result batch, so per chunk of the stand-in's answer),
  the key, the prediction and the lineage columns (`MODEL_NAME`, `MODEL_VERSION`, `RUN_ID`,
  `SCORED_AT`); then the leader counts the staging table and publishes it (`ALTER TABLE ... RENAME`
  the first time, `INSERT OVERWRITE` after). Reading, scoring and writing interleave batch by batch,
  so its *write* is the time spent inside the appends, *publish* the count and publication, and
  *read + score* the rest (connect, query, downloads, scoring, the staging table's creation); its
  memory cannot be split, only the whole run's peak is given.

{medians}

Ours over the baseline, by rows per second (**above 1: ours is faster**) and by peak memory
(**below 1: ours is smaller**). *Whole run*: both read, score and write (ours also publishes);
*read + score*: ours without its appends and publication against the baseline before its write;
*write*: ours' appends and publication against the baseline's one `write_pandas`; *above the
imports*: each peak less the process's memory after the imports (the data's share).

{ratios}

{summary}

### Our job on 1 to N local hosts

The real container program per host (`python -m container score`, `launch.local.hosts`), {hosts}
host(s), on the {job_rows}-row table, the hosts sharing this machine's {cores} cores with the local
Snowflake. *Wall*: start to the last host's exit (interpreter start, secret, query, downloads,
scoring, writes, publication); *rows/s per host, wall*: table rows / hosts / wall. *Scoring s per
host*: each host's own `wrote N predictions to the staging table in S s` line (from the deal to
every host's write done: the hosts agree on it, so it is about the slowest host's time). Peak per host:
the process's `VmHWM`, polled from `/proc` (it includes boto3 and the collective's set-up, which
the single-process comparison above leaves out). *Data queries*: the `SELECT`s of the source
counted at the stand-in (one per job whatever the hosts).

{jobs}

{largest}
"""


def _paths(results: dict[str, Any]) -> str:
    largest = max(m["rows"] for m in results["medians"])
    paged = next((m for m in results["medians"] if m["rows"] == largest and m["path"] == "c'"), None)
    page_rows = results["config"]["page_rows"]
    lines = [
        f"- **{PATH_NAMES['a']}**: `pandas.read_sql(query, conn)` over the connector's connection (rows as "
        "Python tuples), then `xgb.DMatrix(frame[features], label=...)`; the sample notebooks' approach.",
        f"- **{PATH_NAMES['b']}**: `cursor.fetch_pandas_all()` (Arrow to pandas), then `xgb.QuantileDMatrix`.",
        f"- **{PATH_NAMES['c']}**: the job's default read mode, through the training code's own functions as the "
        "job calls them on one host: `describe_table`, `plan_shard`, `run_scan` (the job's one query, "
        "`get_result_batches()`), `shares(result, 1)`, `fetch_share` (the batches downloaded `fetch_threads` = 4 at "
        "a time, each cast by the column plan, float32 for numbers, and appended to `train.arrow` / "
        "`validation.arrow`), then `build_matrices` (`ArrowFileIter` replays the memory-mapped files into "
        "`QuantileDMatrix`).",
        f"- **{PATH_NAMES['c-hash']}**: `read_mode=hash` on one host: `fetch_shard` with `fetch_pages=1` (the host's "
        "`MOD(HASH(ID))` query, its result streamed by `fetch_arrow_batches`), the same spill and matrices.",
    ]
    if paged:
        lines.append(f"- **{PATH_NAMES[chr(99) + chr(39)]}**: (c-hash) with `fetch_pages = ceil(rows / {page_rows:,})` "
                     f"({paged['pages']} pages at {largest:,} rows), kept as a reference.")
    lines += [
        f"- **{PATH_NAMES['d']}**: the same rows from local Parquet files, training and validation "
        "(`ParquetFile.iter_batches`, 65,536 rows a batch) into `QuantileDMatrix`: no warehouse, no network, "
        "no conversion; the floor on this machine.",
        f"- **{PATH_NAMES['e']}**: (c) with the hyperparameter `memory_budget_mb=1`, which makes the job's "
        "`choose_matrices` pick external memory and `build_matrices` build XGBoost's `ExtMemQuantileDMatrix` (its "
        f"page cache on the spill volume) instead of `QuantileDMatrix`{_kinds(results, 'e')}.",
    ]
    return "\n".join(lines)


def _kinds(results: dict[str, Any], path: str) -> str:
    kinds = sorted({k for m in results["medians"] if m["path"] == path for k in m.get("matrices") or []})
    return f" (built: {', '.join(kinds)})" if kinds else ""


def _chunks(results: dict[str, Any]) -> str:
    chunks = results["config"].get("chunks")
    if not chunks:
        return "The stand-in's chunk sizes were not recorded in this run."
    return (f"The local Snowflake answers a result above {chunks['inline_rows']:,} rows as Snowflake does: the first "
            f"{chunks['inline_rows']:,} rows inline, the rest in chunks the connector downloads, growing x"
            f"{chunks['growth']:g} from {chunks['first_chunk_rows']:,} rows to at most {chunks['max_chunk_rows']:,} "
            f"rows ({chunks['max_chunk_bytes'] / 2**20:.0f} MiB) each (`ChunkSizes()`, the stand-in's defaults, "
            "unchanged for the bench: they give tens of chunks at 1M rows, so a host's memory and the deal of "
            "batches to hosts are exercised as against Snowflake, whose chunks are larger, 16-160 MB).")


def _verdict(results: dict[str, Any]) -> str:
    missed = [t["target"] for t in results["targets"] if not t["met"]]
    if not results["targets"]:
        return "Targets need the paths (b) and (c) at two sizes at least, and the scan jobs."
    if not missed:
        return "Every target is met at the largest size."
    return ("Missed: " + "; ".join(missed) + ". *Where the time goes* below says how to find what is ours to "
            "cut and what is the stand-in's.")


def _paging_cost(results: dict[str, Any]) -> str:
    largest = max(m["rows"] for m in results["medians"])
    c = next((m for m in results["medians"] if m["rows"] == largest and m["path"] == "c-hash"), None)
    cp = next((m for m in results["medians"] if m["rows"] == largest and m["path"] == "c'"), None)
    local = ""
    if c and cp:
        local = (f" Here, at {largest:,} rows, {cp['pages']} pages took {cp['ingest_s']:.1f} s of ingest against "
                 f"{c['ingest_s']:.1f} s for one query ({cp['ingest_s'] / c['ingest_s']:.2f}x), and peaked at "
                 f"{cp['ingest_peak_mib']:,.0f} MiB against {c['ingest_peak_mib']:,.0f} MiB.")
    return PAGING_COST.format(local=local)


PAGING_COST = """\
In `read_mode=hash`, page `j` of host `r` among `n` hosts is the query `... WHERE MOD(ABS(HASH(key)),
n*p) = r + n*j`, so a job with `p` pages on `n` hosts runs **`n*p` queries**, and every one of them
**scans the whole table** (the selected columns of every micro-partition): a hash of the key says
nothing about a micro-partition's min/max metadata, so Snowflake cannot prune any partition for it.
`read_mode=scan` runs one query whatever `n`, and a host's memory is bounded by the chunks it has in
flight (`fetch_threads`), so it needs no pages.{local}
"""


PROFILE_NOTE = """\
*A dated note, written by hand on 2026-11-30 (commits 035943f and after) and not re-measured by
`make bench`: the tables above are regenerated on every run, this section is not.*

`python -m bench.profile --rows 250000 --path c` (or `b`, `c-hash`) runs one ingest of a path
in-process under pyinstrument (not a project requirement: `.venv/bin/python -m pip install
pyinstrument`); the numbers below came from the same calls under `cProfile`, on the shared 2-core
machine (load average 3 to 7), one ingest each after a warm-up, 250,000 rows:

| step of (c), `read_mode=scan` | wall s | whose |
|---|---:|---|
| `run_scan`: the stand-in runs the query and cuts the whole result into chunks before it answers | 0.98 | the stand-in |
| `fetch_share`: 12 batches downloaded 4 at a time, cast, split, appended to the spill files | 0.33 | connector + ours |
| `build_matrices`: `QuantileDMatrix` over `ArrowFileIter`, training and validation | 0.80 | ours + XGBoost |
| ingest, all told ((b) on the same table: 2.09 s) | 2.16 | |

Found on the way, and fixed in `training/train/dataset.py`: a `scan` shard is spilled chunk by chunk,
and the result's first chunks hold hundreds of rows (500, 1,000, 2,000, ... before the split), so
`ArrowFileIter` handed XGBoost 14 steps for 200,000 training rows, and XGBoost sketches every step
on its own. It now coalesces them into steps of 65,536 rows: the training matrix took 0.66 CPU s
instead of 1.3 (1.6-2.0 s of wall instead of 3.5-3.9; the same files, the two iterators
alternated three times in one process). What remains between (c) and (b)
is the price of bounded memory: ours writes every row once to the spill files and XGBoost reads
them back in its passes, where (b) converts the whole result to one DataFrame in memory.
"""


DATA_QUERIES_NOTE = """\
*data queries*: the `SELECT`s that
read the table, counted at the stand-in (the schema look-up, `SELECT * ... LIMIT 0`, is not one);
*result batches*: the batches the path's data query came back in."""

QUERIES_NOTE = """\
The statements are counted where the warehouse would count them: the local Snowflake logs every
query request it is sent (`GET /local/queries`, `launch/local/result_chunks.py`). *Data queries*:
the `SELECT`s that read the table's rows; the other statements are listed by kind (each host looks
up the table's schema with `SELECT * ... LIMIT 0`, which reads no rows). `scan`: the leader's one
query, its result batches dealt to the hosts; `hash`: one query per host (times `fetch_pages`)."""


def render(results: dict[str, Any]) -> str:
    """The whole page: machine, command, paths, medians, ratios, targets, plot, RMSE, queries, scaling, costs."""
    config = results["config"]
    largest = max(config["sizes"])
    return f"""# Benchmarks: a Snowflake table into XGBoost

How fast, and in how much memory, each way of getting a Snowflake table into an XGBoost model
goes, measured side by side in one run against the local Snowflake (fakesnow's server, reached over
HTTP by the unmodified `snowflake-connector-python`, answering large results in chunks as Snowflake
does). Every path runs in its own fresh Python
process, which imports the same libraries first; it reads the table, builds the training matrix,
trains {config['num_round']} rounds with the job's parameters (`eta` 0.1, `max_depth` 6, `max_bin`
256, `hist`), scores the model and prints one JSON line. Peak memory is the process's `VmHWM` (its resident high-water mark; `ru_maxrss` would inherit the
parent's peak across `exec`).
Ingest figures are the median of {config['reps']} repetitions, interleaved path by path; the first
{config.get('train_reps', config['reps'])} of them also trained and scored, at sizes up to {config.get('train_max_rows', largest):,} rows (training is the same
work on every path, so the others measure ingest only, to keep the run short).

This page is generated: `{results['command']}` wrote it (`make bench` runs
`python -m bench.run --publish`), with the plot `benchmarks-memory.png` and the raw numbers of
every repetition in `benchmarks.json`; `python -m bench.doc docs/benchmarks.json --publish`
re-renders it without measuring.

## Machine

{_machine(results)}

## Paths

{_paths(results)}

Every path does what a training job must: it reads the whole table (the job's own query, with
its validation flag), splits it into training and validation rows by the job's own hash
(`validation_fraction` 0.2) and builds both matrices (the validation matrix with the training
bins where the API allows). (a) and (b) split their DataFrame; ours spills the two sets apart as
the batches arrive. All paths train on the same rows and are scored on the same rows. The table
is `ID`, 8 float features `F0..F7`, float target `Y` (`launch/datasets.py`).

{_chunks(results)}

## Medians

{markdown_table(results)}

*ingest*: wall time from connecting to the training matrix being ready (query, fetch, conversion,
spill, sketch); *ingest CPU*: the CPU seconds of the child's threads over the same span (the server's
work is not in it). *train*: the {config['num_round']} rounds. *peak MiB, ingest*: the process's peak
resident memory when the matrix was ready; *whole run*: at the end of training; *after imports*:
before any data (the libraries alone, the same for every path). {DATA_QUERIES_NOTE}

## Ours over the baselines

Below 1: ours is faster or smaller. At the largest size, then at each smaller one (where training ran too).

{ratio_table(results)}

{chr(10).join(ratio_table(results, rows) + chr(10) for rows in sorted(config['sizes'])[:-1])}

## Targets

Memory and time at the largest size ({largest:,} rows); balance and queries over every `scan` job below.

{targets_table(results)}

{_verdict(results)}

## Peak memory against rows

![Peak resident memory against table rows, one line per path](benchmarks-memory.png)

## Validation RMSE

Every model scored on the same validation rows. Bin cut points depend on the order and batching of
rows, so paths agree up to a small spread; the run flags a spread above {config['rmse_tolerance']:.0%}.

{rmse_table(results)}

## What text columns cost

Path (c) on a table with two text columns against the all-numeric table of the same row count,
each ingested (fetch, spill, one vocabulary per text column, both matrices with category codes)
{config['reps']} times, interleaved, in fresh processes; medians. Text stays text in the spill, and
the codes are looked up per batch each time XGBoost reads the iterator
([docs/your-table.md](your-table.md)).

{categorical_table(results)}

## Warehouse queries per job

Real local jobs (the container program per host, `launch.local.hosts.start_local_job`,
{config.get('query_rounds', '?')} rounds) on the {config.get('query_rows', 0):,}-row table, in each read mode.
{QUERIES_NOTE}

{queries_table(results)}

## Scaling: one table, 1 to 4 local hosts, `read_mode=scan`

The real container program per host, {config.get('scaling_rounds', config['num_round'])} rounds, the hosts
sharing this machine's {results['machine']['cores']} cores (each gets `OMP_NUM_THREADS` = cores / hosts). Rows per
host: each host's own `fetched N rows` line; *spread / largest chunk*: the most and fewest rows of
any two hosts apart, against the largest batch of the one result (the deal keeps hosts within one
batch of equal). Peak per host: the process's `VmHWM`, polled from `/proc`. Wall: start to the last
host's exit, query, fetch, collective set-up, matrix, training and model included.

{scaling_table(results)}

## Batch scoring: our job against fetch_pandas_all + Booster.predict

{_scoring(results)}
## What paging costs on a real warehouse

{_paging_cost(results)}
## Where the time goes

{PROFILE_NOTE}
## Caveats

- The stand-in runs on the same cores as the client: ingest times include its query, the
  serialisation of every chunk (it cuts the whole result into chunks before answering) and the
  chunk downloads over loopback. Against a real account, network and warehouse time replace them.
- Resident memory counts the pages of the memory-mapped spill files that XGBoost has read
  (file-backed, so the kernel can drop them under pressure, unlike the heap of (a) and (b)).
- (a) and (b) keep their DataFrame alive while training, as the sample notebooks do.
- Timings on a 2-core machine are noisy; the load average at each measurement and the
  repetitions' spread are in `benchmarks.json`.
"""


def publish(results: dict[str, Any], out: Path, docs: Path) -> None:
    """``docs/benchmarks.md`` with the plot and the run's JSON beside it."""
    docs.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(out / "memory.png", docs / "benchmarks-memory.png")
    (docs / "benchmarks.json").write_text(json.dumps(results, indent=1) + "\n")
    (docs / "benchmarks.md").write_text(render(results))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.doc", description=__doc__.split("\n")[0])
    parser.add_argument("results", type=Path, help="a results.json written by bench.run")
    parser.add_argument("--publish", action="store_true", help="also write docs/benchmarks.md, .png and .json")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    results = json.loads(args.results.read_text())
    results.update(analyse(results))
    # Re-rendered tables go to bench/results/ (git-ignored), never beside a published docs/benchmarks.json.
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(parents=True, exist_ok=True)
    write_results(results, out)
    if args.publish:
        publish(results, out, Path(__file__).resolve().parents[1] / "docs")
    print(markdown_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
