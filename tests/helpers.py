"""Constants and helpers the tests share (fixtures live in conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

from launch.local import LocalJobResult

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
