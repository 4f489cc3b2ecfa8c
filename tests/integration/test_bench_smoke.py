"""``make bench`` in miniature: every path runs end to end and the models agree (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.report import PATH_NAMES

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_bench_smoke_run_writes_every_path_and_the_rmses_agree(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "bench.run", "--sizes", "8000", "--reps", "1", "--page-rows", "2000",
               "--num-round", "10", "--scaling-hosts", "", "--categorical-rows", "8000",
               "--out", str(tmp_path / "results")]
    proc = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]

    out = tmp_path / "results"
    for name in ("results.json", "results.md", "memory.png"):
        assert (out / name).stat().st_size > 0, name
    results = json.loads((out / "results.json").read_text())
    medians = {m["path"]: m for m in results["medians"]}
    assert set(medians) == set(PATH_NAMES)
    assert medians["c'"]["pages"] == 4 and medians["c'"]["queries"] == 4  # 8,000 rows / 2,000 per page
    trained = {m["rows_train"] for m in medians.values()}
    assert len(trained) == 1, trained  # every path trained on the same rows
    assert all(m["rmse"] > 0 and m["peak_mib"] > 0 for m in medians.values())
    assert results["rmse"]["agree"], results["rmse"]
    assert "| (c) / (b) |" in (out / "results.md").read_text()
    # the text-column cost: both tables ingested by our path, ratios of the medians
    cat = results["categorical"]
    assert cat["rows"] == 8000 and cat["categories"] == [50, 1000]
    assert {r["rows_train"] for r in cat["runs"]["numeric"] + cat["runs"]["categorical"]} == {medians["c"]["rows_train"]}
    assert all(value > 0 for value in cat["ratio"].values())
    assert "+ 2 text columns" in (out / "results.md").read_text()
