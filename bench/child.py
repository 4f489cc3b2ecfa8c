"""A measured process: one path of a benchmark in a fresh interpreter, its JSON line read back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
CHILD_TIMEOUT_SECONDS = 1800


def run_child(config: dict[str, Any], module: str = "bench.paths") -> dict[str, Any]:
    """Run ``module`` (``bench.paths`` or ``bench.score_paths``) in a fresh interpreter; return its JSON line
    plus the process's wall time and the load average when it started."""
    load = os.getloadavg()[0]  # the machine may be shared: record how busy it was
    started = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    # The config (it holds the local secret) goes through stdin, not the command line other users can read.
    proc = subprocess.run([sys.executable, "-m", module], input=json.dumps(config), cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=CHILD_TIMEOUT_SECONDS, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"bench child {config['path']} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_s"] = round(time.perf_counter() - started, 3)
    result["load_1m"] = round(load, 2)
    return result
