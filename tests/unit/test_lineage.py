"""The Snowflake dataset source as MLflow finds it: through the installed package's entry point."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

from training.tracking import lineage


def _lineage() -> lineage.SnowflakeLineage:
    return lineage.SnowflakeLineage(
        account="xy12345", database="ANALYTICS", schema="PUBLIC", table="HOUSING",
        query_template='SELECT * FROM "ANALYTICS"."PUBLIC"."HOUSING"', query_ids=["01b2-0001"],
        read_at="2026-11-30T00:00:00+00:00", rows=20_640, columns=["A", "B"], schema_digest="abc",
        column_types=["double", "string"], read_mode="scan", snapshot_at="2026-11-30T00:00:00+00:00")


def test_mlflow_reads_a_recorded_snowflake_source_back_through_the_entry_point() -> None:
    from mlflow.data.dataset_source_registry import get_dataset_source_from_json

    points = {e.name: e.value for e in importlib.metadata.entry_points(group="mlflow.dataset_source")}
    assert points.get("snowflake") == "training.tracking.lineage:SnowflakeSource", \
        "the package metadata is stale: reinstall the project (make venv, or pip install -e .)"
    recorded = lineage.snowflake_dataset(_lineage())._to_mlflow_entity()
    source = get_dataset_source_from_json(recorded.source, source_type=recorded.source_type)
    assert isinstance(source, lineage.SnowflakeSource)
    # the columns are the dataset's schema, not the source's
    assert json.loads(recorded.source) == source.to_dict() and source.lineage.table == "HOUSING"


def test_the_entry_point_module_imports_no_mlflow_until_the_class_is_asked_for() -> None:
    # The container imports training.tracking.lineage on every job, tracked or not; mlflow takes seconds.
    code = ("import sys, training.tracking.lineage as m; assert 'mlflow' not in sys.modules; "
            "m.SnowflakeSource; assert 'mlflow' in sys.modules; m.Other")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    assert "AttributeError: module 'training.tracking.lineage' has no attribute 'Other'" in done.stderr, done.stderr
