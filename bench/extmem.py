"""In-memory against external-memory matrices on one spilled shard: peak memory and time.

``python -m bench.extmem --rows 2000000 --workdir /tmp/extmem`` writes the synthetic table's
rows straight into the spill files (the job's own spill schema, 20% validation), then measures
each kind in a fresh process: ``build_matrices`` (in memory, or with ``cache_dir``: external
memory) and ``rounds`` boosting rounds, printing one JSON line per kind with the wall times, the
process's peak resident set size (``VmHWM``), the peak of its anonymous memory (``RssAnon``,
sampled every 20 ms: ``VmHWM`` also counts the memory-mapped spill files' pages, which the kernel
can drop and read again) and :func:`training.train.memory.matrix_bytes`' estimate.
No Snowflake is involved: this isolates what the matrix kind costs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import xgboost as xgb

from bench.paths import peak_mib
from launch.datasets import synthetic_chunk
from training.read.columns import FEATURE, LABEL, ColumnPlan, ColumnSpec
from training.train.dataset import CACHE_DIR, build_matrices
from training.train.memory import MIB, matrix_bytes

CHUNK_ROWS = 250_000


def plan_of(features: int) -> ColumnPlan:
    """The column plan of the synthetic table's float features and target ``Y``."""
    return ColumnPlan(tuple([ColumnSpec(f"F{i}", "FLOAT", "numeric", FEATURE) for i in range(features)]
                            + [ColumnSpec("Y", "FLOAT", "numeric", LABEL)]))


def write_spill(spill: Path, rows: int, features: int, validation: float = 0.2) -> None:
    """``train.arrow`` and ``validation.arrow`` as a job spills them, written chunk by chunk."""
    spill.mkdir(parents=True, exist_ok=True)
    plan = plan_of(features)
    schema = plan.spill_schema
    with pa.OSFile(str(spill / "train.arrow"), "wb") as t, pa.OSFile(str(spill / "validation.arrow"), "wb") as v, \
            pa.ipc.new_file(t, schema) as train, pa.ipc.new_file(v, schema) as valid:
        for start in range(0, rows, CHUNK_ROWS):
            chunk = synthetic_chunk(start, min(CHUNK_ROWS, rows - start), seed=0, features=features)
            batch = plan.to_spill([chunk.column(name).combine_chunks() for name in plan.names])
            held_out = np.random.default_rng(start).random(batch.num_rows) < validation
            train.write_batch(batch.filter(pa.array(~held_out)))
            valid.write_batch(batch.filter(pa.array(held_out)))


def anon_mib() -> float:
    """This process's anonymous resident memory now (``RssAnon``), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return 0.0


class AnonPeak(threading.Thread):
    """Samples ``RssAnon`` until stopped; ``peak`` is the largest value seen."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak, self.done = anon_mib(), threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.02):
            self.peak = max(self.peak, anon_mib())


def measure(spill: Path, features: int, external: bool, rounds: int) -> dict:
    """Build both matrices and train in this process; the figures of one kind."""
    baseline, anon = peak_mib(), AnonPeak()
    anon_baseline = anon.peak
    anon.start()
    started = time.monotonic()
    dtrain, dvalid = build_matrices(spill / "train.arrow", spill / "validation.arrow", plan_of(features), 256, 0,
                                    spill / CACHE_DIR if external else None)
    built = time.monotonic()
    built_peak = peak_mib()
    booster = xgb.train({"tree_method": "hist", "max_depth": 6, "eta": 0.3}, dtrain, rounds,
                        evals=[(dtrain, "train"), (dvalid, "validation")], verbose_eval=False)
    trained = time.monotonic()
    cache = sum(p.stat().st_size for p in (spill / CACHE_DIR).glob("*")) if external else 0
    rmse = float(booster.eval(dvalid, "validation").rsplit(":", 1)[1])
    rows = dtrain.num_row() + dvalid.num_row()
    return {"kind": "external" if external else "in-memory", "rows": rows, "build_s": round(built - started, 2),
            "train_s": round(trained - built, 2), "baseline_mib": round(baseline), "anon_baseline_mib":
            round(anon_baseline), "anon_peak_mib": round(max(anon.peak, anon_mib())), "peak_after_build_mib":
            round(built_peak), "peak_mib": round(peak_mib()), "estimate_mib": round(matrix_bytes(rows, features, 256)
                                                                                       / MIB),
            "cache_mib": round(cache / MIB), "validation_rmse": round(rmse, 5)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--features", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--child", choices=("in-memory", "external"))
    args = parser.parse_args(argv)
    spill = args.workdir / "spill"
    if args.child:
        print(json.dumps(measure(spill, args.features, args.child == "external", args.rounds)), flush=True)
        return
    write_spill(spill, args.rows, args.features)
    spilled = sum((spill / name).stat().st_size for name in ("train.arrow", "validation.arrow"))
    print(json.dumps({"spill_mib": round(spilled / MIB)}), flush=True)
    for kind in ("in-memory", "external"):
        subprocess.run([sys.executable, "-m", "bench.extmem", "--features", str(args.features), "--rounds",
                        str(args.rounds), "--workdir", str(args.workdir), "--child", kind], check=True)


if __name__ == "__main__":
    main()
