"""Where a job's rows came from, and that record as an ``mlflow.data`` dataset (no second read).

A run's dataset input says where the training data came from: the Snowflake account, the fully
qualified table, the query template each host ran, the query ids (so Snowflake's query history
shows exactly what was read), when it was read, the snapshot time it read at, how many rows and a digest of the schema. The
source is descriptive only: its ``load`` refuses, because re-running the query later would not
return the same snapshot.

:class:`SnowflakeLineage` is a plain dataclass the training loop fills in whether or not tracking
is on. ``mlflow`` (seconds to import, and absent where tracking is never used) is imported only
inside :func:`snowflake_dataset`, which builds the dataset classes on first use.

``SnowflakeSource``, an attribute of this module built on first access, is registered with MLflow
through the ``mlflow.dataset_source`` entry point in pyproject.toml, so that
``mlflow.data.get_source()`` reads a run's source back wherever this project is installed (also
after the run was copied to another server); without it MLflow answers ``unrecognized source type:
snowflake``.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from training.read.snowflake import table_parts

if TYPE_CHECKING:
    from training.read.columns import ColumnPlan
    from training.read.credentials import SnowflakeCredentials
    from training.read.plan import ShardPlan
    from training.read.scan import ScanShare
    from training.read.spill import Shard

SOURCE_TYPE = "snowflake"
"""``source_type`` of the dataset input, shown in the MLflow UI next to the dataset name."""


@dataclass(frozen=True)
class SnowflakeLineage:
    """Where the training rows came from; recorded as the run's dataset input."""

    account: str
    database: str
    schema: str
    table: str
    query_template: str
    query_ids: list[str]
    read_at: str  # ISO 8601, UTC
    rows: int
    columns: list[str]
    schema_digest: str
    """:meth:`training.read.columns.ColumnPlan.schema_digest`: names, Snowflake types, kinds and roles."""
    column_types: list[str] = field(default_factory=list)
    """MLflow type of each column as the table has it (``double``, ``string``, ``boolean``, ``datetime``;
    ``any`` for a scoring job's key columns, which it carries through whatever their type)."""
    read_mode: str = "hash"
    """``scan``: one query for the job (``query_ids`` holds its one id); ``hash``: one query per host and page."""
    snapshot_at: str = ""
    """ISO 8601: the one point in time the rows were read at (Time Travel's ``AT`` time, or the time of
    ``scan``'s one query); empty when the hosts read the table at different moments (``hash``, ``snapshot=none``)."""

    def source_dict(self) -> dict[str, Any]:
        """What the dataset's source records (everything but the columns, which its schema lists)."""
        return {
            "account": self.account, "database": self.database, "schema": self.schema, "table": self.table,
            "query_template": self.query_template, "query_ids": list(self.query_ids), "read_at": self.read_at,
            "rows": self.rows, "schema_digest": self.schema_digest, "read_mode": self.read_mode,
            "snapshot_at": self.snapshot_at,
        }

    def digest(self) -> str:
        """The dataset's digest: the same table read by the same queries with the same schema and row
        count, at the same snapshot time, is the same data (a read without one digests as before)."""
        parts = [self.account, self.database, self.schema, self.table, sorted(self.query_ids), self.rows,
                 self.schema_digest]
        key = json.dumps([*parts, self.snapshot_at] if self.snapshot_at else parts)
        return hashlib.sha256(key.encode()).hexdigest()[:10]


def snowflake_dataset(lineage: SnowflakeLineage) -> Any:
    """The ``mlflow.data`` dataset for ``lineage`` (no query is run); imports mlflow."""
    return _dataset_class()(lineage)


def __getattr__(name: str) -> Any:
    """``SnowflakeSource`` for MLflow's entry point: the class is built (mlflow imported) only when asked for."""
    if name == "SnowflakeSource":
        return _source_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# The classes subclass mlflow's, so they are built on first use: importing this module imports no mlflow.


@functools.cache
def _source_class() -> type:
    from mlflow.data.dataset_source import DatasetSource

    class SnowflakeSource(DatasetSource):
        """Where a job's rows came from: a Snowflake table read by known queries at a known time."""

        def __init__(self, lineage: SnowflakeLineage) -> None:
            self.lineage = lineage

        @staticmethod
        def _get_source_type() -> str:
            return SOURCE_TYPE

        def load(self) -> Any:
            """Refuse: the table has moved on since the job read it; the query ids say what was read."""
            raise NotImplementedError("A Snowflake source records a past read; query the table with the query ids "
                                      "instead")

        @staticmethod
        def _can_resolve(raw_source: Any) -> bool:
            return False

        @classmethod
        def _resolve(cls, raw_source: Any) -> SnowflakeSource:
            raise NotImplementedError("A Snowflake source is built from a SnowflakeLineage, not resolved from a "
                                      "string")

        def to_dict(self) -> dict[str, Any]:
            return self.lineage.source_dict()

        @classmethod
        def from_dict(cls, source_dict: dict[Any, Any]) -> SnowflakeSource:
            fields = dict(source_dict)
            columns: list[str] = fields.pop("columns", [])
            return cls(SnowflakeLineage(columns=columns, **fields))

    return SnowflakeSource


@functools.cache
def _dataset_class() -> type:
    from mlflow.data.dataset import Dataset
    from mlflow.types import ColSpec, Schema
    from mlflow.types.schema import AnyType

    source_class = _source_class()

    class SnowflakeDataset(Dataset):
        """The rows a job trained on: named after the table, digested from what identifies the read."""

        def __init__(self, lineage: SnowflakeLineage) -> None:
            self.lineage = lineage
            name = f"{lineage.database}.{lineage.schema}.{lineage.table}"
            super().__init__(source=source_class(lineage), name=name)

        def _compute_digest(self) -> str:
            return self.lineage.digest()

        @property
        def profile(self) -> dict[str, Any]:
            return {"num_rows": self.lineage.rows}

        @property
        def schema(self) -> Schema:
            # Each column under its table name, in the type the table has it.
            types = self.lineage.column_types or ["double"] * len(self.lineage.columns)
            return Schema([ColSpec(AnyType() if kind == "any" else kind, name, required=False)
                           for name, kind in zip(self.lineage.columns, types, strict=True)])

        def to_dict(self) -> dict[str, str]:
            config = super().to_dict()
            config["schema"] = json.dumps({"mlflow_colspec": self.schema.to_dict()})
            config["profile"] = json.dumps(self.profile)
            return config

    return SnowflakeDataset


def lineage_of(creds: SnowflakeCredentials, plan: ShardPlan, columns: ColumnPlan, shard: Shard,
               query_ids: list[str], rows: int, read_mode: str) -> SnowflakeLineage:
    """Where the rows came from, for the run's dataset input (from what the hosts already know).

    The snapshot time is the ``AT`` time the queries read at, or in ``scan`` mode without one, when
    its one query ran; in ``hash`` mode without one, the hosts read at different moments: empty.
    """
    database, schema, table = _qualified(creds, plan.table)
    return SnowflakeLineage(
        account=creds.account, database=database, schema=schema, table=table,
        query_template=plan.query_template, query_ids=query_ids, read_at=shard.read_at, rows=rows,
        columns=columns.names, schema_digest=columns.schema_digest(),
        column_types=[c.mlflow_type for c in columns.columns], read_mode=read_mode,
        snapshot_at=plan.snapshot_at or (shard.read_at if read_mode == "scan" else ""),
    )


def scoring_lineage(creds: SnowflakeCredentials, source_sql: str, query: str, keys: list[str], columns: ColumnPlan,
                    share: ScanShare) -> SnowflakeLineage:
    """What a scoring job read: its one query on the source table (``scan`` mode), the key columns it
    carried through (typed ``any``: the job keeps whatever type the source gives them) and the model's
    features, typed and digested as the model's column plan reads them."""
    database, schema, table = _qualified(creds, source_sql)
    features = [c for c in columns.features if c.name not in keys]
    return SnowflakeLineage(
        account=creds.account, database=database, schema=schema, table=table, query_template=query,
        query_ids=[share.query_id], read_at=share.read_at, rows=share.result_rows,
        columns=[*keys, *(c.name for c in features)], schema_digest=columns.schema_digest(),
        column_types=["any"] * len(keys) + [c.mlflow_type for c in features], read_mode="scan",
        snapshot_at=share.read_at,
    )


def _qualified(creds: SnowflakeCredentials, table_sql: str) -> tuple[str, str, str]:
    """Database, schema and table of ``table_sql`` as stored, the session's database and schema filling what it
    does not name."""
    parts = table_parts(table_sql)
    database = parts[-3] if len(parts) == 3 else creds.database
    schema = parts[-2] if len(parts) >= 2 else creds.schema
    return database, schema, parts[-1]
