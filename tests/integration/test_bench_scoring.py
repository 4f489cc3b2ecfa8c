"""``make bench``'s scoring benchmark in miniature (``--only scoring``): both paths score every row, the
real job's hosts add up to the table, and the section merges into published results whose other
sections keep their numbers (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import doc, report

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
ROWS = 6000
"""Enough rows for the stand-in to answer in several chunks, so two hosts each get some."""


def test_scoring_bench_scores_every_row_both_ways_and_merges_into_the_published_results(tmp_path: Path) -> None:
    published = REPO_ROOT / "docs" / "benchmarks.json"
    command = [sys.executable, "-m", "bench.run", "--only", "scoring", "--score-sizes", str(ROWS), "--score-reps", "1",
               "--score-hosts", "2", "--score-model-rows", "2000", "--merge-into", str(published),
               "--out", str(tmp_path / "results")]
    proc = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]

    results = json.loads((tmp_path / "results" / "results.json").read_text())
    before = json.loads(published.read_text())
    assert results["runs"] == before["runs"] and results["scaling"] == before["scaling"]  # not measured again
    scoring = results["scoring"]
    assert {r["path"] for r in scoring["runs"]} == {"base", "ours"}
    for run in scoring["runs"]:  # every row read, scored and written, by both paths
        assert run["rows"] == run["rows_written"] == ROWS, run
        assert run["total_s"] > 0 and run["write_s"] > 0 and run["peak_mib"] > run["base_mib"] > 0, run
    base = next(m for m in scoring["medians"] if m["path"] == "base")
    assert base["read_score_peak_mib"] <= base["peak_mib"]
    (ratio,) = scoring["ratios"]
    assert ratio["rows"] == ROWS and all(value > 0 for value in ratio.values())
    (job,) = scoring["jobs"]  # the real scoring job: one query, its rows dealt to both hosts
    assert job["hosts"] == 2 and job["queries"]["data"] == 1
    assert sum(host["rows"] for host in job["per_host"]) == ROWS and all(host["rows"] > 0 for host in job["per_host"])
    assert all(host["peak_mib"] > 0 and host["rows_per_s"] > 0 for host in job["per_host"])

    results.update(report.analyse(results))
    page = doc.render(results)
    assert "## Batch scoring" in page and f"**{ROWS:,} rows on 2 hosts**" in page
    assert f"`{scoring['command']}` at commit `{scoring['machine']['commit']}`" in page
    assert "| (c) / (b) |" in page  # the ingest sections are still there
