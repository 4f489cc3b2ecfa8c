"""The write, all or nothing: every host appends to one staging table; the leader then swaps it in.

1. The leader creates the staging table beside the target, empty, with the target's columns
   (``CREATE OR REPLACE TABLE ... AS SELECT <keys>, <typed NULLs> FROM <source> LIMIT 0``: the keys
   keep the source's own types).
2. Each host appends its predictions with the connector's bulk path (``write_pandas``: PUT of
   Parquet files, then COPY INTO), one result batch at a time.
3. When every host has written (the hosts agree on it), the leader checks the staging table holds
   every row of the query and makes the target appear whole in one statement: ``INSERT OVERWRITE
   INTO target SELECT * FROM staging`` when the target has the same columns (one transaction; the
   target stays the same object, so its grants, masking policies, tags and comment stay), or, the
   first time, ``ALTER TABLE staging RENAME TO target``. A target whose columns differ (another
   model's classes) is replaced by ``ALTER TABLE target SWAP WITH staging``, and the job warns that
   grants on the old table do not follow. The staging table is then dropped.

A job that fails or is stopped before step 3 leaves the target as it was. The leader drops the
staging table when it can; when it cannot (SageMaker stops every host once one fails), the next
job on the same target drops it as it starts. A rerun writes a fresh staging table and replaces the target again: it
never appends twice. The role needs CREATE TABLE in the target's schema and OWNERSHIP of the
target only when its columns change (docs/scoring.md, "Privileges").
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from typing import Any

from training.errors import SnowflakeError
from training.read.snowflake import describe_table, quote_column, table_parts

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Tables:
    """The target (quoted SQL) and this job's staging table beside it."""

    target_sql: str
    staging_sql: str
    staging_parts: tuple[str, ...]
    """The staging table's stored name parts (database, schema, table; fewer when the target names fewer)."""

    @classmethod
    def for_job(cls, target_sql: str, job_name: str) -> Tables:
        parts = table_parts(target_sql)
        suffix = hashlib.sha256(job_name.encode()).hexdigest()[:8].upper()
        staging = (*parts[:-1], f"{parts[-1]}__SCORING_{suffix}")
        return cls(target_sql, ".".join(quote_column(p) for p in staging), staging)

    def drop_stale(self, conn: Any) -> list[str]:
        """Drop the staging tables earlier jobs on this target left behind (a job stopped from outside: when one
        host fails, SageMaker stops the others, the leader too); their names."""
        *where, table = self.staging_parts
        schema_sql = ".".join(quote_column(p) for p in where)
        prefix = table[: table.rindex("__SCORING_") + len("__SCORING_")]
        like = prefix.replace("'", "''")  # its _ match any character: the exact names are picked below
        rows = _run(conn, f"SHOW TABLES LIKE '{like}%'" + (f" IN SCHEMA {schema_sql}" if len(where) == 2 else ""),
                    "list earlier staging tables (SHOW TABLES in the target's schema)")
        stale = [row[1] for row in rows if re.fullmatch(re.escape(prefix) + r"[0-9A-F]{8}", str(row[1]))
                 and row[1] != table]
        for name in stale:
            qualified = ".".join(quote_column(p) for p in (*where, name))
            _run(conn, f"DROP TABLE IF EXISTS {qualified}", "drop an earlier job's staging table")
        if stale:
            log.warning("dropped %d staging table(s) an earlier job on %s left behind: %s", len(stale),
                        self.target_sql, ", ".join(stale))
        return stale

    def create_staging(self, conn: Any, source_sql: str, keys: list[str], nulls: str) -> None:
        """An empty staging table with the target's columns (keys typed as the source has them)."""
        columns = ", ".join([*(quote_column(k) for k in keys), nulls])
        _run(conn, f"CREATE OR REPLACE TABLE {self.staging_sql} AS SELECT {columns} FROM {source_sql} LIMIT 0",  # noqa: S608
             "create the staging table (CREATE TABLE in the target's schema)")

    def append(self, conn: Any, frame: Any, chunk_rows: int) -> int:
        """Append ``frame`` to the staging table through PUT and COPY; the rows written."""
        from snowflake.connector.pandas_tools import write_pandas

        *where, table = self.staging_parts
        database, schema = (where[0], where[1]) if len(where) == 2 else (None, where[0] if where else None)
        from snowflake.connector.errors import Error

        try:
            ok, _, rows, _ = write_pandas(conn, frame, table, database=database, schema=schema, chunk_size=chunk_rows,
                                          quote_identifiers=True, auto_create_table=False, use_logical_type=True)
        except Error as err:
            raise _failed("append predictions to the staging table (CREATE STAGE in its schema, INSERT on it)",
                          err) from None
        if not ok:
            raise SnowflakeError(f"writing {len(frame):,} predictions to the staging table {self.staging_sql} failed: "
                                 "see the job's log; the target is unchanged")
        return int(rows)

    def publish(self, conn: Any, expected_rows: int) -> str:
        """Check the staging table holds ``expected_rows``, then make it the target in one statement."""
        found = int(_run(conn, f"SELECT COUNT(*) FROM {self.staging_sql}", "count the staged rows")[0][0])  # noqa: S608
        if found != expected_rows:
            raise SnowflakeError(f"the staging table {self.staging_sql} holds {found:,} rows where the query returned "
                                 f"{expected_rows:,}: the target is unchanged; run the job again")
        target = describe_table(conn, self.target_sql)
        if target is None:
            _run(conn, f"ALTER TABLE {self.staging_sql} RENAME TO {self.target_sql}",
                 "create the target (CREATE TABLE in its schema)")
            return "created"
        staged = describe_table(conn, self.staging_sql) or []
        if [c.name for c in target] == [c.name for c in staged]:
            _run(conn, "BEGIN", "begin the replacement")
            _run(conn, f"INSERT OVERWRITE INTO {self.target_sql} SELECT * FROM {self.staging_sql}",  # noqa: S608
                 "replace the target's rows (INSERT and DELETE on it)")
            _run(conn, "COMMIT", "commit the replacement")
            self.discard(conn)
            return "replaced"
        log.warning("target %s has other columns than this model writes: it is replaced by a SWAP, and grants, "
                    "policies and tags on the old table do not follow it: grant them again", self.target_sql)
        _run(conn, f"ALTER TABLE {self.target_sql} SWAP WITH {self.staging_sql}",
             "swap the target (OWNERSHIP of it)")
        self.discard(conn)  # now the old target's rows
        return "replaced"

    def discard(self, conn: Any) -> None:
        """Drop the staging table (a failed job's); never raises: the job's own error is the one to report."""
        try:
            _run(conn, f"DROP TABLE IF EXISTS {self.staging_sql}", "drop the staging table")
        except Exception as err:  # noqa: BLE001  never the job's outcome: the target is as the job left it
            log.warning("could not drop the staging table %s (%s): drop it by hand", self.staging_sql,
                        type(err).__name__)


def _run(conn: Any, sql: str, purpose: str) -> list[Any]:
    """``sql``'s rows; a Snowflake error becomes one line naming what the job was doing and the privilege it needs."""
    from snowflake.connector.errors import Error

    cursor = conn.cursor()
    try:
        cursor.execute(sql)
        return list(cursor.fetchall() or [])
    except Error as err:
        raise _failed(purpose, err) from None
    finally:
        cursor.close()


def _failed(purpose: str, err: Exception) -> SnowflakeError:
    # Snowflake's messages run over lines ("SQL access control error:\nInsufficient privileges to ..."): one line
    reason = " ".join((getattr(err, "msg", None) or str(err)).split())
    reason = re.sub(r"^\d{6} \(\w{5}\): ", "", reason)[:300]  # the connector's "003001 (42501): ": said below
    return SnowflakeError(f"could not {purpose}: {reason} (Snowflake error {getattr(err, 'errno', '?')}); the "
                          "target is unchanged")
