"""``make bench`` in miniature: every path runs end to end, the models agree, queries are counted at
the stand-in and a 2-host job's rows add up to the table (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.paths import extmem_available

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
ROWS = 8000


def test_bench_smoke_run_writes_every_path_counts_queries_and_the_rmses_agree(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "bench.run", "--sizes", str(ROWS), "--reps", "1", "--num-round", "10", "--query-hosts", "2", "--query-rounds", "2",
               "--scaling-hosts", "", "--categorical-rows", str(ROWS), "--score-sizes", "", "--out", str(tmp_path / "results")]
    proc = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]

    out = tmp_path / "results"
    for name in ("results.json", "results.md", "memory.png"):
        assert (out / name).stat().st_size > 0, name
    results = json.loads((out / "results.json").read_text())
    medians = {m["path"]: m for m in results["medians"]}
    expected = {"a", "b", "c", "c-hash", "d"} | ({"e"} if extmem_available() else set())
    assert set(medians) == expected
    assert ("e" in results["skipped"]) != extmem_available()
    # every path produced its metrics, on the same training rows
    assert all(m["rmse"] > 0 and m["peak_mib"] > 0 and m["ingest_s"] > 0 for m in medians.values())
    assert {m["rows_train"] for m in medians.values()} == {medians["d"]["rows_train"]}
    assert results["rmse"]["agree"], results["rmse"]
    # data queries counted at the stand-in: one per path that reads the warehouse
    assert {p: m["queries"] for p, m in medians.items()} == {**{p: 1 for p in expected}, "d": 0}
    assert medians["c"]["batches"] > 2  # the stand-in answered in chunks
    md = (out / "results.md").read_text()
    assert "| (c) / (b) |" in md
    # queries per job: scan runs one query for 2 hosts, hash one per host; rows per host add up to the table
    jobs = {job["read_mode"]: job for job in results["query_counts"]}
    assert set(jobs) == {"scan", "hash"} and all(job["hosts"] == 2 for job in jobs.values())
    assert jobs["scan"]["queries"]["data"] == 1 and jobs["hash"]["queries"]["data"] == 2
    for job in jobs.values():
        assert sum(host["rows"] for host in job["per_host"]) == ROWS
    assert jobs["scan"]["balance"]["within_one_chunk"]
    assert any(t["target"].startswith("queries per job = 1 in scan") and t["met"] for t in results["targets"])
    assert "| scan | 2 |" in md and "| hash | 2 |" in md
    # the text-column cost: both tables ingested by our path, ratios of the medians
    cat = results["categorical"]
    assert cat["rows"] == ROWS and cat["categories"] == [50, 1000]
    assert {r["rows_train"] for r in cat["runs"]["numeric"] + cat["runs"]["categorical"]} == {medians["c"]["rows_train"]}
    assert all(value > 0 for value in cat["ratio"].values())
    assert "+ 2 text columns" in md
