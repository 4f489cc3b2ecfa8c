"""Real local jobs (the container program per host): queries per job, rows and peak per host, wall.

Each host's peak memory is its process's ``VmHWM`` (the kernel's high-water mark of resident
memory), read from ``/proc/<pid>/status`` while the job runs: the mark only grows, so the last
reading before the process exits is its peak up to that moment. Rows per host come from the
host's own log line ``fetched N rows in ...`` (a scoring job's: ``wrote N predictions to the staging
table in S s``, S from the deal to every host's write done). The job's warehouse queries are counted at the
stand-in (its statement log, :meth:`launch.local.services.LocalStack.queries`), not by our code.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

from launch.local.hosts import start_local_job
from launch.local.services import LocalStack
from training import contract

_FETCHED = re.compile(r"fetched ([\d,]+) rows in (\d+) batches in ([\d.]+) s")
_WROTE = re.compile(r"wrote ([\d,]+) predictions to the staging table in ([\d.]+) s")
_POLL_SECONDS = 0.1
_LIMIT_0 = re.compile(r"\bLIMIT\s+0\s*;?\s*$")
SECRET_ID = "bench/snowflake"
"""The local secret every benchmark job signs in with."""
SCHEMA_LOOKUP = "SELECT ... LIMIT 0"
"""How the schema look-ups (no rows read) are counted among the other statements."""


def vm_hwm_mib(pid: int) -> float | None:
    """Peak resident memory of a live process, MiB; None once it has exited."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmHWM:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) / 1024 if match else None


def count_queries(statements: list[dict[str, Any]], table: str) -> dict[str, Any]:
    """The data queries among the stand-in's logged statements, and the rest counted by verb.

    A data query is a ``SELECT`` that names ``table`` and reads rows (the job's reads of the
    training table); a ``SELECT * ... LIMIT 0`` is the schema look-up (``describe_table``, no rows
    scanned), counted with the rest (session statements and the like) by verb. ``result_batches``:
    the rows of each batch the data queries' results came in (inline part first), one per query.
    """
    name = table.rsplit(".", 1)[-1].strip('"').upper()

    def kind(statement: dict[str, Any]) -> str:
        sql = statement["sql"].upper()
        if statement["verb"] == "SELECT" and name in sql:
            return SCHEMA_LOOKUP if _LIMIT_0.search(sql) else "data"
        return statement["verb"]

    kinds = [kind(s) for s in statements]
    data = [s for s, k in zip(statements, kinds, strict=True) if k == "data"]
    other = Counter(k for k in kinds if k != "data")
    return {"data": len(data), "other": dict(sorted(other.items())),
            "result_batches": [s.get("batches") or [] for s in data]}


def run_scaling(hyperparameters: dict[str, str], hosts: int, workdir: Path, env: dict[str, str],
                timeout: float = 1800.0, command: list[str] | None = None) -> dict[str, Any]:
    """Run one job on ``hosts`` hosts (``command``: the container's, default ``train``); return wall time, exit
    code and per-host rows and peak memory."""
    started = time.perf_counter()
    job = start_local_job(hyperparameters, hosts=hosts, workdir=workdir, env=env, command=command)
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
        text = log.read_text(errors="replace") if log.exists() else ""
        per_host.append({"rank": rank, **_host_rows(text), "peak_mib": round(peaks[rank], 1)})
    return {"hosts": hosts, "read_mode": hyperparameters.get("read_mode"), "exit_code": result.exit_code,
            "failure": result.failure, "wall_s": round(wall, 2),
            "validation_rmse": result.final_metrics.get("validation-rmse"), "per_host": per_host,
            "model": str(result.model_path) if result.model_path else None}


def _host_rows(log: str) -> dict[str, Any]:
    """A host's rows and seconds from its log: a training host's fetch, or a scoring host's write."""
    wrote = _WROTE.search(log)
    if wrote:
        return {"rows": int(wrote.group(1).replace(",", "")), "score_s": float(wrote.group(2))}
    fetched = _FETCHED.search(log)
    return {"rows": int(fetched.group(1).replace(",", "")) if fetched else None,
            "fetch_s": float(fetched.group(3)) if fetched else None}


def run_counted_job(stack: LocalStack, hps: dict[str, str], hosts: int, workdir: Path,
                    command: list[str] | None = None, env: dict[str, str] | None = None) -> dict[str, Any]:
    """One real local job (``command``: the container's, default ``train``) on a freshly started stand-in, its
    queries counted there; a job that fails raises."""
    stack.stop_snowflake()  # each job starts with an empty server (it keeps every result)
    stack.start_snowflake()
    stack.put_secret(SECRET_ID, stack.snowflake_secret())
    env = {**stack.aws_env(), contract.SECRET_ID_ENV: SECRET_ID, contract.TRACKING_URI_ENV: "", **(env or {})}
    seen = stack.queries()["next"]
    result = run_scaling(hps, hosts, workdir, env, command=command)
    if result["exit_code"] != 0:
        raise RuntimeError(f"the {hosts}-host job ({hps.get('read_mode') or 'scoring'}) failed: {result['failure']}")
    result["queries"] = count_queries(stack.queries(seen)["queries"], hps.get("table") or hps["source_table"])
    result["balance"] = balance(result)
    return result


def balance(job: dict[str, Any]) -> dict[str, Any] | None:
    """How far apart the hosts' rows are, against the largest batch of the job's one result (scan)."""
    rows = [h["rows"] for h in job["per_host"]]
    batches = job.get("queries", {}).get("result_batches") or []
    if None in rows or len(batches) != 1:
        return None
    largest = max(batches[0], default=0)
    spread = max(rows) - min(rows)
    return {"spread": spread, "largest_batch": largest, "within_one_chunk": spread <= largest}
