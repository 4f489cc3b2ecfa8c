"""Snowflake lineage as an ``mlflow.data`` dataset, without reading the data a second time.

A run's dataset input says where the training data came from: the Snowflake account, the fully
qualified table, the query template each host ran, the query ids (so Snowflake's query history
shows exactly what was read), when it was read, how many rows and a digest of the schema. The
source is descriptive only: :meth:`SnowflakeSource.load` refuses, because re-running the query
later would not return the same snapshot.

This module imports ``mlflow`` at the top: :mod:`training.tracking` imports it lazily, only when
tracking is on.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from mlflow.data.dataset import Dataset
from mlflow.data.dataset_source import DatasetSource
from mlflow.types import ColSpec, Schema

from training.tracking import SnowflakeLineage

SOURCE_TYPE = "snowflake"
"""``source_type`` of the dataset input, shown in the MLflow UI next to the dataset name."""


class SnowflakeSource(DatasetSource):
    """Where a job's rows came from: a Snowflake table read by known queries at a known time."""

    def __init__(self, lineage: SnowflakeLineage) -> None:
        self.lineage = lineage

    @staticmethod
    def _get_source_type() -> str:
        return SOURCE_TYPE

    def load(self) -> Any:
        """Refuse: the table has moved on since the job read it; the query ids say what was read."""
        raise NotImplementedError("A Snowflake source records a past read; query the table with the query ids instead")

    @staticmethod
    def _can_resolve(raw_source: Any) -> bool:
        return False

    @classmethod
    def _resolve(cls, raw_source: Any) -> SnowflakeSource:
        raise NotImplementedError("A Snowflake source is built from a SnowflakeLineage, not resolved from a string")

    def to_dict(self) -> dict[str, Any]:
        lin = self.lineage
        return {
            "account": lin.account, "database": lin.database, "schema": lin.schema, "table": lin.table,
            "query_template": lin.query_template, "query_ids": list(lin.query_ids), "read_at": lin.read_at,
            "rows": lin.rows, "schema_digest": lin.schema_digest,
        }

    @classmethod
    def from_dict(cls, source_dict: dict[Any, Any]) -> SnowflakeSource:
        fields = dict(source_dict)
        columns: list[str] = fields.pop("columns", [])
        return cls(SnowflakeLineage(columns=columns, **fields))


class SnowflakeDataset(Dataset):
    """The rows a job trained on: named after the table, digested from what identifies the read."""

    def __init__(self, lineage: SnowflakeLineage) -> None:
        self.lineage = lineage
        name = f"{lineage.database}.{lineage.schema}.{lineage.table}"
        super().__init__(source=SnowflakeSource(lineage), name=name)

    def _compute_digest(self) -> str:
        # The same table read by the same queries with the same schema and row count is the same data.
        lin = self.lineage
        key = json.dumps([lin.account, lin.database, lin.schema, lin.table, sorted(lin.query_ids),
                          lin.rows, lin.schema_digest])
        return hashlib.sha256(key.encode()).hexdigest()[:10]

    @property
    def profile(self) -> dict[str, Any]:
        return {"num_rows": self.lineage.rows}

    @property
    def schema(self) -> Schema:
        # Each column under its table name, in the type the table has it.
        types = self.lineage.column_types or ["double"] * len(self.lineage.columns)
        return Schema([ColSpec(kind, name, required=False) for name, kind in zip(self.lineage.columns, types,
                                                                                 strict=True)])

    def to_dict(self) -> dict[str, str]:
        config = super().to_dict()
        config["schema"] = json.dumps({"mlflow_colspec": self.schema.to_dict()})
        config["profile"] = json.dumps(self.profile)
        return config


def snowflake_dataset(lineage: SnowflakeLineage) -> SnowflakeDataset:
    """The ``mlflow.data`` dataset for ``lineage`` (no query is run)."""
    return SnowflakeDataset(lineage)
