"""The write, all or nothing: every host appends to one staging table; the leader then swaps it in.

1. The leader creates the staging table beside the target, empty, with the target's columns
   (``CREATE OR REPLACE TABLE ... AS SELECT <keys>, <typed NULLs> FROM <source> LIMIT 0``: the keys
   keep the source's own types).
2. Each host appends its predictions with the connector's bulk path (``write_pandas``: PUT of
   Parquet files, then COPY INTO), one result batch at a time.
3. When every host has written (the hosts agree on it), the leader checks the staging table holds
   every row and makes the target appear whole in one statement: ``ALTER TABLE target SWAP WITH
   staging`` (then drops the staging table, which now holds the old rows), or, the first time,
   ``ALTER TABLE staging RENAME TO target``.

A job that fails or is stopped before step 3 leaves the target as it was (the leader drops the
staging table when it can). A rerun writes a fresh staging table and replaces the target again: it
never appends twice. The role needs CREATE TABLE in the target's schema and OWNERSHIP of the
target to swap it (docs/scoring.md).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from typing import Any

from training.errors import SnowflakeError
from training.read.snowflake import describe_table, quote_column

log = logging.getLogger(__name__)

_PART = re.compile(r'"((?:[^"]|"")+)"')


@dataclass(frozen=True)
class Tables:
    """The target (quoted SQL) and this job's staging table beside it."""

    target_sql: str
    staging_sql: str
    staging_parts: tuple[str, ...]
    """The staging table's stored name parts (database, schema, table; fewer when the target names fewer)."""

    @classmethod
    def for_job(cls, target_sql: str, job_name: str) -> Tables:
        parts = [p.replace('""', '"') for p in _PART.findall(target_sql)]
        suffix = hashlib.sha256(job_name.encode()).hexdigest()[:8].upper()
        staging = (*parts[:-1], f"{parts[-1]}__SCORING_{suffix}")
        return cls(target_sql, ".".join(quote_column(p) for p in staging), staging)

    def create_staging(self, conn: Any, source_sql: str, keys: list[str], nulls: str) -> None:
        """An empty staging table with the target's columns (keys typed as the source has them)."""
        columns = ", ".join([*(quote_column(k) for k in keys), nulls])
        _run(conn, f"CREATE OR REPLACE TABLE {self.staging_sql} AS SELECT {columns} FROM {source_sql} LIMIT 0")  # noqa: S608  (quoted)

    def append(self, conn: Any, frame: Any, chunk_rows: int) -> int:
        """Append ``frame`` to the staging table through PUT and COPY; the rows written."""
        from snowflake.connector.pandas_tools import write_pandas

        *where, table = self.staging_parts
        database, schema = (where[0], where[1]) if len(where) == 2 else (None, where[0] if where else None)
        ok, _, rows, _ = write_pandas(conn, frame, table, database=database, schema=schema, chunk_size=chunk_rows,
                                      quote_identifiers=True, auto_create_table=False, use_logical_type=True)
        if not ok:
            raise SnowflakeError(f"writing {len(frame):,} predictions to the staging table {self.staging_sql} failed: "
                                 "see the job's log; the target is unchanged")
        return int(rows)

    def publish(self, conn: Any, expected_rows: int) -> str:
        """Check the staging table holds ``expected_rows``, then make it the target in one statement."""
        found = int(_run(conn, f"SELECT COUNT(*) FROM {self.staging_sql}")[0][0])  # noqa: S608  (quoted)
        if found != expected_rows:
            raise SnowflakeError(f"the staging table {self.staging_sql} holds {found:,} rows where the hosts wrote "
                                 f"{expected_rows:,}: the target is unchanged; run the job again")
        if describe_table(conn, self.target_sql) is not None:
            _run(conn, f"ALTER TABLE {self.target_sql} SWAP WITH {self.staging_sql}")
            _run(conn, f"DROP TABLE IF EXISTS {self.staging_sql}")  # now the old target's rows
            return "replaced"
        _run(conn, f"ALTER TABLE {self.staging_sql} RENAME TO {self.target_sql}")
        return "created"

    def discard(self, conn: Any) -> None:
        """Drop the staging table (a failed job's); never raises: the job's own error is the one to report."""
        try:
            _run(conn, f"DROP TABLE IF EXISTS {self.staging_sql}")
        except Exception as err:  # noqa: BLE001  the job's own error is the one to report
            log.warning("could not drop the staging table %s (%s): drop it by hand", self.staging_sql,
                        type(err).__name__)


def _run(conn: Any, sql: str) -> list[Any]:
    cursor = conn.cursor()
    try:
        cursor.execute(sql)
        return list(cursor.fetchall() or [])
    finally:
        cursor.close()
