"""``docs/benchmarks.md``, rendered from a run's results (``python -m bench.run --publish``)."""

from __future__ import annotations

import statistics
from typing import Any

from bench.report import (
    PATH_NAMES,
    categorical_table,
    markdown_table,
    ratio_table,
    rmse_table,
    scaling_table,
    targets_table,
)


def _machine(results: dict[str, Any]) -> str:
    m = results["machine"]
    loads = [r["load_1m"] for r in results["runs"] if "load_1m" in r]
    load = f"{statistics.median(loads):.1f} (min {min(loads):.1f}, max {max(loads):.1f})" if loads else "not recorded"
    packages = ", ".join(f"{name} {v}" for name, v in m["packages"].items())
    return "\n".join([
        f"- CPU: {m['cpu']}, {m['cores']} cores; memory {m['memory_gib']} GiB; {m['os']}; Python {m['python']}",
        f"- {packages}",
        f"- commit `{m['commit']}`, {m['date']}; the whole run took {results['wall_s'] / 60:.0f} minutes",
        f"- 1-minute load average when each measurement started: median {load} (on 2 cores, the "
        "benchmark itself and the local Snowflake make about 1); wall times carry some noise, the "
        "CPU-second columns of `benchmarks.json` and the memory figures much less.",
    ])


def _paths(results: dict[str, Any]) -> str:
    largest = max(m["rows"] for m in results["medians"])
    paged = next((m for m in results["medians"] if m["rows"] == largest and m["path"] == "c'"), None)
    pages = paged["pages"] if paged else "?"
    page_rows = results["config"]["page_rows"]
    return "\n".join([
        f"- **{PATH_NAMES['a']}**: `pandas.read_sql(query, conn)` over the connector's connection (rows as "
        "Python tuples), then `xgb.DMatrix(frame[features], label=...)`; the sample notebooks' approach.",
        f"- **{PATH_NAMES['b']}**: `cursor.fetch_pandas_all()` (Arrow to pandas), then `xgb.QuantileDMatrix`.",
        f"- **{PATH_NAMES['c']}**: the training code's own functions (`parse_hyperparameters`, `describe_table`, "
        "`plan_shard`, `fetch_shard` with `fetch_pages=1`, `build_matrices`), called as the job calls them: every "
        "Arrow batch is cast by the column plan (float32 for numbers) and appended to `train.arrow` / `validation.arrow`, then "
        "`ArrowFileIter` replays the memory-mapped files into `QuantileDMatrix`.",
        f"- **{PATH_NAMES[chr(99) + chr(39)]}**: the same code with `fetch_pages = ceil(rows / {page_rows:,})` "
        f"({pages} pages at {largest:,} rows): the shard is fetched, spilled and released one page query at a time.",
        f"- **{PATH_NAMES['d']}**: the same rows from local Parquet files, training and validation "
        "(`ParquetFile.iter_batches`, 65,536 rows a batch) into `QuantileDMatrix`: no warehouse, no network, "
        "no conversion; the floor on this machine.",
    ])


def _verdict(results: dict[str, Any]) -> str:
    missed = [t["target"] for t in results["targets"] if not t["met"]]
    if not results["targets"]:
        return "Targets need the paths (b), (c) and (c') at two sizes at least."
    if not missed:
        return "Every target is met at the largest size."
    return ("Missed at the largest size: " + "; ".join(missed) + ". "
            "*Where the time goes* below says what is ours to cut and what is the stand-in's.")


def _paging_cost(results: dict[str, Any]) -> str:
    largest = max(m["rows"] for m in results["medians"])
    c = next((m for m in results["medians"] if m["rows"] == largest and m["path"] == "c"), None)
    cp = next((m for m in results["medians"] if m["rows"] == largest and m["path"] == "c'"), None)
    local = ""
    if c and cp:
        local = (f" Here, at {largest:,} rows, {cp['pages']} pages took {cp['ingest_s']:.1f} s of ingest against "
                 f"{c['ingest_s']:.1f} s for one query ({cp['ingest_s'] / c['ingest_s']:.2f}x), and peaked at "
                 f"{cp['ingest_peak_mib']:,.0f} MiB against {c['ingest_peak_mib']:,.0f} MiB.")
    return PAGING_COST.format(local=local)


PAGING_COST = """\
Page `j` of host `r` among `n` hosts is the query `... WHERE MOD(ABS(HASH(key)), n*p) = r + n*j`, so
a job with `p` pages on `n` hosts runs **`n*p` queries**, and every one of them **scans the whole
table** (the selected columns of every micro-partition): a hash of the key says nothing about a
micro-partition's min/max metadata, so Snowflake cannot prune any partition for it. With `p = 1`
the job already scans the table `n` times; paging multiplies the warehouse time by `p` (the scans of
one job can share a warehouse and run side by side, so the cost is credits more than wall time).
The result cache does not help: every page is a different query.{local}

On a real warehouse the connector streams a large result in chunks (`fetch_arrow_batches` downloads
a few chunks ahead, `client_prefetch_threads`), and the reader spills and drops each batch, so a
host's memory is already bounded by the chunks in flight, not by its shard: **keep
`fetch_pages = 1` there**, and add hosts (`n`) rather than pages when a shard is too big to train
on one instance, since hosts also cut training time. Pages are worth their extra scans only where a
whole result arrives at once, as from this stand-in or a proxy or driver that buffers results:
then `p` is the smallest number that makes `shard rows / p` fit in memory, and the price is
`(p - 1) * n` more scans of the table per job. A table clustered on a stored bucket column
(`MOD(ABS(HASH(key)), 1024)`) would let each page prune to its own micro-partitions instead of
scanning all of them.
"""


PROFILE_NOTE = """\
*A dated note, written by hand on 2026-11-23 (commit 88e09fd) and not re-measured by
`make bench`: the tables above are regenerated on every run, this section is not. Rerun
`python -m bench.profile` to check it against today's code.*

Measured on the same shared machine (`bench/profile.py` runs one path
in-process under pyinstrument, which is not a project requirement:
`.venv/bin/python -m pip install pyinstrument`, then `python -m bench.profile --rows 250000`).
One ingest of path (c) at 250,000 rows, 4.2 s of wall time:

| step | wall s | whose |
|---|---:|---|
| `cursor.execute`: the stand-in runs the query and sends the whole result inline | 1.46 | the stand-in |
| `fetch_arrow_batches`: base64-decode and read the inline Arrow result | 0.33 | the connector |
| `_spill`: cast by the column plan (float32 here), split training/validation, append to the IPC files | 0.27 | ours |
| two connections and `describe_table` | 0.20 | the stand-in |
| `build_matrices`: `QuantileDMatrix` over `ArrowFileIter` (1.74 s inside XGBoost's C++) | 1.86 | ours + XGBoost |

The build step used far less CPU than wall time (0.3 CPU s with one thread, 0.7 with two: the
rest was waiting for a core on the busy machine). One suspect was ours: XGBoost sketches every
iterator step on its own and `ArrowFileIter` hands it steps of at most 65,536 rows. A standalone
build of a 3.2M-row matrix from 65,536-row steps used 7.5 - 8.6 CPU s against 4.8 for steps
coalesced to 262,144 rows, but that was measured at a load average of 5 to 6, where XGBoost's
threads spin while they wait for each other. End to end, path (c) at 4,000,000 rows with the
coalesced steps (a patched `ArrowFileIter`, three runs each, same machine and hour) used 8.7 - 9.2
ingest CPU s against 8.9 - 13.0 today, and the same peak: no gain worth a change, so the reader
stays as it is.

What remains is the stand-in's: it runs the query and serialises the whole result before the
first byte arrives, on the same two cores as the client. (These profiles were taken while the
baselines still read only the training rows; the published medians above come from the later run
in which every path reads the whole table.)
"""


def render(results: dict[str, Any]) -> str:
    """The whole page: machine, command, medians, ratios, targets, plot, RMSE, scaling, costs."""
    config = results["config"]
    largest = max(config["sizes"])
    return f"""# Benchmarks: a Snowflake table into XGBoost

How fast, and in how much memory, each way of getting a Snowflake table into an XGBoost model
goes, measured side by side in one run against the local Snowflake (fakesnow's server, reached over
HTTP by the unmodified `snowflake-connector-python`). Every path runs in its own fresh Python
process, which imports the same libraries first; it reads the table, builds the training matrix,
trains {config['num_round']} rounds with the job's parameters (`eta` 0.1, `max_depth` 6, `max_bin`
256, `hist`), scores the model and prints one JSON line. Peak memory is the process's `VmHWM` (its resident high-water mark; `ru_maxrss` would inherit the
parent's peak across `exec`).
Ingest figures are the median of {config['reps']} repetitions, interleaved path by path; the first
{config.get('train_reps', config['reps'])} of them also trained and scored, at sizes up to {config.get('train_max_rows', largest):,} rows (training is the same
work on every path, so the others measure ingest only, to keep the run short).

This page is generated: `{results['command']}` wrote it (`make bench` runs
`python -m bench.run --publish`), with the plot `benchmarks-memory.png` and the raw numbers of
every repetition in `benchmarks.json`; `python -m bench.report docs/benchmarks.json --publish`
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

## Medians

{markdown_table(results)}

*ingest*: wall time from connecting to the training matrix being ready (query, fetch, conversion,
spill, sketch); *ingest CPU*: the CPU seconds of the child's threads over the same span (the server's
work is not in it). *train*: the {config['num_round']} rounds. *peak MiB, ingest*: the process's peak
resident memory when the matrix was ready; *whole run*: at the end of training; *after imports*:
before any data (the libraries alone, the same for every path).

## Ours over the baselines

Below 1: ours is faster or smaller. At the largest size, then at each smaller one (where training ran too).

{ratio_table(results)}

{chr(10).join(ratio_table(results, rows) + chr(10) for rows in sorted(config['sizes'])[:-1])}

## Targets

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

## Scaling: one table, 1 to 4 local hosts

The real container program per host (`launch.local.hosts.start_local_job`), {config.get('scaling_rounds', config['num_round'])} rounds, `fetch_pages` 1, the hosts
sharing this machine's {results['machine']['cores']} cores (each gets `OMP_NUM_THREADS` = cores / hosts). Peak per
host: the process's `VmHWM`, polled from `/proc`. Wall: start to the last host's exit, fetch,
collective set-up, matrix, training and model included.

{scaling_table(results)}

## What paging costs on a real warehouse

{_paging_cost(results)}
## Where the time goes

{PROFILE_NOTE}
## Caveats

- The stand-in returns a whole result as one batch and runs on the same cores as the client, so
  ingest times include the server's query and serialisation work, and a fetch holds the whole
  result (or page) in memory at once. Against a real account, network and warehouse time replace
  the local server's; memory of (c) is then bounded by the chunks in flight.
- Resident memory counts the pages of the memory-mapped spill files that XGBoost has read
  (file-backed, so the kernel can drop them under pressure, unlike the heap of (a) and (b)): part
  of why (c') still grows with the table when its page size does not.
- (a) and (b) keep their DataFrame alive while training, as the sample notebooks do.
- Timings on a 2-core machine are noisy; the load average at each measurement and the
  repetitions' spread are in `benchmarks.json`.
"""
