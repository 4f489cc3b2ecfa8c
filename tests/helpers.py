"""Constants and helpers the tests share (fixtures live in conftest.py)."""

from __future__ import annotations

import json
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from launch.local.hosts import LocalJob, LocalJobResult
from training import contract
from training.read.columns import FEATURE, LABEL, ColumnPlan, ColumnSpec

SECRET_ID = "test/snowflake"
SECRET_PASSWORD = "Zq-distinctive-s3cret-7731"
"""A distinctive secret value: tests search every output for it and must never find it."""
SYNTH_TABLE = "SYNTH50K"
SYNTH_ROWS = 50_000


def synth_hps(**overrides: object) -> dict[str, str]:
    """Hyperparameters of a small, fast job on the synthetic table."""
    hps = {"table": f"DEMO.PUBLIC.{SYNTH_TABLE}", "target": "Y", "shard_key": "ID", "num_round": "20",
           "max_depth": "4", "eta": "0.3", "collective_timeout": "60"}
    hps.update({k: str(v) for k, v in overrides.items()})
    return hps


def outputs_text(result: LocalJobResult) -> str:
    """Every text a job left behind: logs, failure files and the host trees' JSON files."""
    parts = []
    for host_dir in result.host_dirs:
        for path in host_dir.rglob("*"):
            if path.is_file() and path.suffix in ("", ".txt", ".json") and path.name != "xgboost-model":
                parts.append(path.read_text(errors="replace"))
    return "\n".join(parts)


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def wait_for_log(job: LocalJob, text: str, timeout: float = 180.0) -> None:
    """Wait until ``text`` appears in the leader's log; fail if the leader exits or time runs out."""
    deadline = time.monotonic() + timeout
    while text not in job.leader_log():
        assert job.processes[0][0].poll() is None, job.leader_log()[-3000:]
        assert time.monotonic() < deadline, f"{text!r} never appeared:\n{job.leader_log()[-2000:]}"
        time.sleep(0.05)


def per_round(log: str, metric: str) -> list[float]:
    """The leader's validation ``metric`` of each round, from the lines XGBoost prints per round."""
    return [float(v) for v in re.findall(rf"\]\t.*validation-{re.escape(metric)}:([-+0-9.eE]+)", log)]


def assert_trains_on_several_hosts_as_on_one(several: LocalJobResult, one: LocalJobResult, metric: str, hosts: int,
                                             rows: int, rounds: int, higher_is_better: bool = False) -> None:
    """The same job on ``hosts`` hosts and on one: the hosts all-reduce every metric, so the validation
    ``metric`` is in the leader's log every round, agrees within 2%, and improved while training."""
    logs = {}
    for count, result in ((hosts, several), (1, one)):
        assert result.exit_code == 0, result.failure
        logs[count] = result.logs[0].read_text()
        assert len(per_round(logs[count], metric)) == rounds, (count, per_round(logs[count], metric))
    assert f"total rows across {hosts} hosts: {rows:,}" in logs[hosts]
    many, single = several.final_metrics[f"validation-{metric}"], one.final_metrics[f"validation-{metric}"]
    assert many == pytest.approx(single, rel=0.02), (metric, many, single)
    trained = per_round(logs[hosts], metric)
    better = max if higher_is_better else min
    assert better(trained[0], trained[-1]) == trained[-1], trained  # it learned something


def numeric_plan(features: list[str], label: str = "target") -> ColumnPlan:
    """The column plan of an all-float table (what a job on the synthetic table builds)."""
    return ColumnPlan(tuple([ColumnSpec(f, "REAL", "numeric", FEATURE) for f in features]
                            + [ColumnSpec(label, "REAL", "numeric", LABEL)]))


def spilled_ids(host_dir: Path) -> np.ndarray:
    """The ``ID`` column of every row a host spilled (training and validation files)."""
    ids = []
    for name in ("train.arrow", "validation.arrow"):
        with pa.memory_map(str(contract.default_spill_dir(host_dir) / name)) as source:
            ids.append(np.asarray(pa.ipc.open_file(source).read_all().column("ID")))
    return np.concatenate(ids).astype(np.int64)


def recorder_from_environment(environ: dict[str, str], resource_config: dict | None = None,
                              hyperparameters_raw: dict | None = None) -> Any:
    """The leader's run recorder as the container builds it: the job's environment read by
    ``container.env.TrainingEnv`` (its one reader) beside a host tree of these files."""
    from container.env import TrainingEnv
    from training.tracking.mlflow_recorder import MlflowRecorder

    with tempfile.TemporaryDirectory() as base:
        config = contract.config_dir(Path(base))
        config.mkdir(parents=True)
        resources = resource_config or {"hosts": ["algo-1"], "current_host": "algo-1"}
        (config / contract.RESOURCE_CONFIG).write_text(json.dumps(resources))
        (config / contract.HYPERPARAMETERS).write_text(json.dumps(hyperparameters_raw or {}))
        env = TrainingEnv.from_dir(Path(base), environ)
    return MlflowRecorder.from_settings(env.tracking, env.job_info())

