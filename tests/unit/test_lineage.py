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


def test_a_scoring_read_is_the_source_table_and_its_one_query_with_keys_of_any_type() -> None:
    """A scoring job's input: the table named as the session reads it, the query id, and its columns: the keys it
    carries through whatever their type (``any``), then the model's features as the model reads them."""
    from mlflow.types import Schema

    from training.read.columns import FEATURE, LABEL, ColumnPlan, ColumnSpec
    from training.read.credentials import SnowflakeCredentials
    from training.read.scan import ScanShare

    plan = ColumnPlan((ColumnSpec("Price", "REAL", "numeric", FEATURE), ColumnSpec("region", "TEXT", "categorical",
                                                                                     FEATURE),
                       ColumnSpec("churned", "TEXT", "class", LABEL)))
    creds = SnowflakeCredentials("xy12345", "u", "wh", "SALES", "PUBLIC", "r", "password", {})
    share = ScanShare([], [], "01b2-0009", "2026-12-01T10:00:00+00:00", 3_000, 1)
    read = lineage.scoring_lineage(creds, '"Customers"', 'SELECT "id", "Price", "region" FROM "Customers"', ["id"],
                                   plan, share)
    assert (read.database, read.schema, read.table, read.query_ids, read.rows) == \
        ("SALES", "PUBLIC", "Customers", ["01b2-0009"], 3_000)
    assert read.snapshot_at == read.read_at == share.read_at and read.read_mode == "scan"
    dataset = lineage.snowflake_dataset(read)._to_mlflow_entity()
    assert dataset.name == "SALES.PUBLIC.Customers"
    columns = Schema.from_json(json.dumps(json.loads(dataset.schema)["mlflow_colspec"])).to_dict()
    assert [(c["name"], c["type"]) for c in columns] == [("id", "any"), ("Price", "double"), ("region", "string")]
