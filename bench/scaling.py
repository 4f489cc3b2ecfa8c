"""Scaling: the same table trained by 1, 2, 4 local hosts (the real container program per host).

Each host's peak memory is its process's ``VmHWM`` (the kernel's high-water mark of resident
memory), read from ``/proc/<pid>/status`` while the job runs: the mark only grows, so the last
reading before the process exits is its peak up to that moment. Rows per host come from the
host's own log line ``fetched N rows in ...``.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from launch.local.hosts import start_local_job

_FETCHED = re.compile(r"fetched ([\d,]+) rows in (\d+) batches in ([\d.]+) s")
_POLL_SECONDS = 0.1


def vm_hwm_mib(pid: int) -> float | None:
    """Peak resident memory of a live process, MiB; None once it has exited."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmHWM:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) / 1024 if match else None


def run_scaling(hyperparameters: dict[str, str], hosts: int, workdir: Path, env: dict[str, str],
                timeout: float = 1800.0) -> dict[str, Any]:
    """Run one job on ``hosts`` hosts; return wall time, exit code and per-host rows and peak memory."""
    started = time.perf_counter()
    job = start_local_job(hyperparameters, hosts=hosts, workdir=workdir, env=env)
    peaks = [0.0] * hosts
    while any(process.poll() is None for process, _ in job.processes):
        for i, (process, _) in enumerate(job.processes):
            peak = vm_hwm_mib(process.pid)
            if peak is not None:
                peaks[i] = max(peaks[i], peak)
        if time.perf_counter() - started > timeout:
            break
        time.sleep(_POLL_SECONDS)
    result = job.wait(timeout=60)
    wall = time.perf_counter() - started
    per_host = []
    for rank, log in enumerate(result.logs):
        fetched = _FETCHED.search(log.read_text(errors="replace")) if log.exists() else None
        per_host.append({"rank": rank, "rows": int(fetched.group(1).replace(",", "")) if fetched else None,
                         "fetch_s": float(fetched.group(3)) if fetched else None,
                         "peak_mib": round(peaks[rank], 1)})
    return {"hosts": hosts, "exit_code": result.exit_code, "failure": result.failure, "wall_s": round(wall, 2),
            "validation_rmse": result.final_metrics.get("validation-rmse"), "per_host": per_host}
