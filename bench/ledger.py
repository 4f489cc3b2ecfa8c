"""What the collective ledger costs: per recorded call, and per boosting round of a 2-host job.

``python -m bench.ledger`` prints one JSON line. Two parts:

- ``record``: :meth:`training.collective.ledger.Ledger.record` alone, in memory and with its file (one
  line-buffered write per call), in microseconds per call;
- ``rounds``: two hosts as threads of one process (XGBoost's communicator is per thread), each
  with 20,000 rows, boosting ``--rounds`` rounds through the job's own round owner
  (:class:`training.train.rounds.RoundOwner`, evaluated on training and validation sets: 3 recorded
  calls a round), with the ledger written to files and kept in memory only, alternately
  ``--repeats`` times; the ratio compares the medians run side by side.

The ledger has no off switch: its in-memory part (a counter, the last calls, a digest) is always
on, so ``record``'s in-memory figure is what every job pays per call.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import xgboost as xgb

from launch.local.hosts import run_thread_hosts
from training.collective.cluster import Cluster
from training.collective.ledger import Ledger
from training.read.columns import FEATURE, LABEL, ColumnPlan, ColumnSpec
from training.train.checkpoints import StopFlag
from training.train.rounds import RoundOwner

HOSTS = ("127.0.0.1", "127.0.0.2")
PLAN = ColumnPlan(tuple([ColumnSpec(f"F{i}", "FLOAT", "numeric", FEATURE) for i in range(8)]
                        + [ColumnSpec("Y", "FLOAT", "numeric", LABEL)]))


def record_cost(calls: int, directory: Path | None) -> float:
    """Microseconds per :meth:`Ledger.record` call (with a file under ``directory``, or in memory)."""
    ledger = Ledger(directory / "bench.ledger" if directory else None)
    started = time.perf_counter()
    for index in range(calls):
        ledger.record(f"round {index}: stop verdict", "allreduce:max", "int32", "(3,)")
    elapsed = time.perf_counter() - started
    ledger.close()
    return elapsed / calls * 1e6


def train_seconds(rounds: int, ledger_dir: Path | None) -> float:
    """Wall seconds of ``rounds`` rounds on two thread-hosts (the slower host's)."""
    return max(run_thread_hosts(lambda cluster: _host(cluster, rounds), HOSTS, ledger_dir))


def _host(cluster: Cluster, rounds: int) -> float:
    rng = np.random.default_rng(cluster.rank)
    x = rng.normal(size=(20_000, 8)).astype(np.float32)
    y = (np.sin(x[:, 0]) + x[:, 1] + rng.normal(size=len(x))).astype(np.float32)
    dtrain = xgb.QuantileDMatrix(x[:16_000], y[:16_000])
    dvalid = xgb.QuantileDMatrix(x[16_000:], y[16_000:], ref=dtrain)
    owner = RoundOwner(cluster, StopFlag(), PLAN, 0, None, 1_000, xgb.callback.TrainingCallback())
    started = time.perf_counter()
    xgb.train({"max_depth": 4, "nthread": 1}, dtrain, rounds, evals=[(dtrain, "train"), (dvalid, "validation")],
              callbacks=[owner], verbose_eval=False)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ledger", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        directory = Path(work)
        record = {"in_memory_us": record_cost(args.calls, None), "with_file_us": record_cost(args.calls, directory)}
        files, memory = [], []
        for _ in range(args.repeats):  # alternately, so that load on the machine falls on both alike
            files.append(train_seconds(args.rounds, directory / "ledgers"))
            memory.append(train_seconds(args.rounds, None))
    per_round = {"with_files_ms": statistics.median(files) / args.rounds * 1e3,
                 "in_memory_ms": statistics.median(memory) / args.rounds * 1e3}
    print(json.dumps({"record": {k: round(v, 2) for k, v in record.items()},
                      "rounds": {**{k: round(v, 3) for k, v in per_round.items()},
                                 "ratio_files_to_memory": round(per_round["with_files_ms"] / per_round["in_memory_ms"], 3),
                                 "calls_per_round": 3, "rounds": args.rounds, "repeats": args.repeats}}))


if __name__ == "__main__":
    main()
