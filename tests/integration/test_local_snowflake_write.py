"""The scoring job's write path on the local Snowflake, through the unmodified connector.

Each host loads its predictions into a staging table with ``write_pandas`` (PUT + COPY), several
at once; the leader makes the target appear whole with ``ALTER TABLE target SWAP WITH staging``.
These tests hold the stand-in to what Snowflake does there (:mod:`launch.local.write_back`).
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import pytest
from snowflake.connector.errors import ProgrammingError
from snowflake.connector.pandas_tools import write_pandas

from launch.local.services import DATABASE, SCHEMA, LocalStack

pytestmark = pytest.mark.slow


def _name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8].upper()}"


def predictions(rows: int, start: int = 0) -> pd.DataFrame:
    """A scoring output: float, int, text, boolean and timestamp columns, each with NULLs."""
    ids = np.arange(start, start + rows)
    return pd.DataFrame({
        "ID": ids.astype("int64"),
        "PREDICTION": pd.array([None if i % 6 == 0 else i / 7 for i in ids], dtype="Float64"),
        "CLASS_COUNT": pd.array([None if i % 5 == 0 else int(i % 3) for i in ids], dtype="Int64"),
        "LABEL": [None if i % 4 == 0 else f"class-{i % 3}" for i in ids],
        "POSITIVE": pd.array([None if i % 7 == 0 else bool(i % 2) for i in ids], dtype="boolean"),
        "SCORED_AT": [pd.NaT if i % 3 == 0 else pd.Timestamp("2026-11-01 12:00:00") + pd.Timedelta(seconds=int(i))
                      for i in ids],
    })


def rows(conn: Any, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    cursor = conn.cursor()
    try:
        return cursor.execute(sql, params or None).fetchall()
    finally:
        cursor.close()


def table_rows(conn: Any, table: str) -> pd.DataFrame:
    cursor = conn.cursor()
    try:
        frame = cursor.execute(f"SELECT * FROM {table} ORDER BY ID").fetch_pandas_all()
    finally:
        cursor.close()
    return frame


def _values(series: pd.Series, kind: str) -> list[Any]:
    cast = {"int": int, "float": float, "text": str, "bool": bool, "time": pd.Timestamp}[kind]
    return [None if pd.isna(v) else cast(v) for v in series]


KINDS = {"ID": "int", "PREDICTION": "float", "CLASS_COUNT": "int", "LABEL": "text", "POSITIVE": "bool",
         "SCORED_AT": "time"}


def assert_same_rows(read: pd.DataFrame, written: pd.DataFrame) -> None:
    """Same columns, same rows in ID order, NULLs where the frame had them."""
    assert list(read.columns) == list(written.columns)
    for column, kind in KINDS.items():
        got, expected = _values(read[column], kind), _values(written[column], kind)
        if kind == "float":
            assert [g is None for g in got] == [e is None for e in expected], column
            got, expected = [g for g in got if g is not None], [e for e in expected if e is not None]
            assert got == pytest.approx(expected), column
        else:
            assert got == expected, column


def test_write_pandas_creates_and_overwrites_a_qualified_case_sensitive_table(stack: LocalStack) -> None:
    """auto_create_table + overwrite into "DB"."SCHEMA"."Name": typed columns, NULLs kept, a rerun replaces."""
    table = _name("Scores_Stage")
    conn = stack.connect()
    try:
        first = predictions(50)
        ok, chunks, loaded, _ = write_pandas(conn, first, table, database=DATABASE, schema=SCHEMA,
                                             auto_create_table=True, overwrite=True, use_logical_type=True,
                                             chunk_size=20)
        assert (ok, chunks, loaded) == (True, 3, 50)
        qualified = f'{DATABASE}.{SCHEMA}."{table}"'
        assert_same_rows(table_rows(conn, qualified), first)
        types = {name: kind for name, kind, *_ in rows(conn, f"DESCRIBE TABLE {qualified}")}
        assert types["ID"].startswith("NUMBER") and types["LABEL"].startswith("VARCHAR")
        assert types["POSITIVE"] == "BOOLEAN" and types["SCORED_AT"].startswith("TIMESTAMP_NTZ")
        assert types["PREDICTION"] == "FLOAT"
        assert rows(conn, f"SHOW TABLES LIKE '{table}' IN SCHEMA {DATABASE}.{SCHEMA}")[0][1] == table

        rerun = predictions(30, start=1_000)  # a rerun of the same host replaces its rows, never appends
        write_pandas(conn, rerun, table, database=DATABASE, schema=SCHEMA, auto_create_table=True, overwrite=True,
                     use_logical_type=True)
        assert_same_rows(table_rows(conn, qualified), rerun)
    finally:
        conn.close()


def test_write_pandas_from_three_clients_at_once_lands_every_row_once(stack: LocalStack) -> None:
    """Three hosts, each its own connection, in batches: into its own staging table and all into one."""
    shared, hosts, batch, batches = _name("SCORES_ALL"), 3, 40, 3
    conn = stack.connect()
    try:
        rows(conn, f"CREATE TABLE {shared} (ID NUMBER(38, 0), PREDICTION FLOAT, CLASS_COUNT NUMBER(38, 0), "
                   "LABEL TEXT, POSITIVE BOOLEAN, SCORED_AT TIMESTAMP_NTZ(9))")
        staging = [_name(f"SCORES_HOST{h}") for h in range(hosts)]
        start = threading.Barrier(hosts)

        def host(index: int) -> None:
            own = stack.connect()
            try:
                start.wait(timeout=60)
                for b in range(batches):
                    frame = predictions(batch, start=(index * batches + b) * batch)
                    ok, _, loaded, _ = write_pandas(own, frame, staging[index], auto_create_table=True,
                                                    use_logical_type=True)
                    assert (ok, loaded) == (True, batch)
                    ok, _, loaded, _ = write_pandas(own, frame, shared, use_logical_type=True)
                    assert (ok, loaded) == (True, batch)
            finally:
                own.close()

        with ThreadPoolExecutor(hosts) as pool:
            for future in [pool.submit(host, h) for h in range(hosts)]:
                future.result(timeout=300)

        everything = predictions(hosts * batches * batch)
        assert_same_rows(table_rows(conn, shared), everything)
        for h, name in enumerate(staging):
            assert_same_rows(table_rows(conn, name),
                             everything.iloc[h * batches * batch:(h + 1) * batches * batch].reset_index(drop=True))
    finally:
        conn.close()


def test_a_swap_exchanges_rows_and_names_atomically_as_another_connection_sees_it(stack: LocalStack) -> None:
    target, staging = _name("TARGET"), _name("STAGING")
    writer, reader = stack.connect(), stack.connect()
    try:
        rows(writer, f"CREATE TABLE {target} (ID INT, OLD TEXT)")
        rows(writer, f"INSERT INTO {target} VALUES (1, 'yesterday'), (2, 'yesterday')")
        write_pandas(writer, predictions(3), staging, auto_create_table=True, use_logical_type=True)

        counts = f"SELECT (SELECT COUNT(*) FROM {target}), (SELECT COUNT(*) FROM {staging})"
        assert rows(reader, counts) == [(2, 3)]
        seen: set[tuple[int, int]] = set()
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                seen.update(rows(reader, counts))

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            for _ in range(21):  # an odd number: the new rows end up in the target
                assert rows(writer, f"ALTER TABLE {target} SWAP WITH {staging}") == [("Statement executed successfully.",)]
        finally:
            stop.set()
            watcher.join(timeout=60)
        assert seen <= {(2, 3), (3, 2)}, seen  # both old tables or both new ones, never one of each

        assert_same_rows(table_rows(reader, target), predictions(3))
        assert rows(reader, f"SELECT * FROM {staging} ORDER BY ID") == [(1, "yesterday"), (2, "yesterday")]
        rows(writer, f"ALTER TABLE {DATABASE}.{SCHEMA}.{staging} SWAP WITH {SCHEMA.lower()}.{target.lower()}")
        assert rows(reader, f"SELECT COUNT(*) FROM {target}") == [(2,)]
    finally:
        writer.close()
        reader.close()


def test_a_failed_swap_leaves_both_tables_as_they_were(stack: LocalStack) -> None:
    target, staging = _name("TARGET"), _name("STAGING")
    conn, other = stack.connect(), stack.connect()
    try:
        rows(conn, f"CREATE TABLE {target} (ID INT)")
        rows(conn, f"INSERT INTO {target} VALUES (1), (2)")
        rows(conn, f"CREATE TABLE {staging} (ID INT, P FLOAT)")
        rows(conn, f"INSERT INTO {staging} VALUES (3, 0.5)")
        with pytest.raises(ProgrammingError) as missing:
            rows(conn, f"ALTER TABLE {target} SWAP WITH {staging}_GONE")
        assert missing.value.errno == 2003 and "does not exist or not authorized" in missing.value.msg
        rows(conn, "CREATE SCHEMA IF NOT EXISTS OTHER_SCHEMA")
        rows(conn, "CREATE TABLE IF NOT EXISTS OTHER_SCHEMA.ELSEWHERE (ID INT)")
        rows(conn, f"USE SCHEMA {DATABASE}.{SCHEMA}")  # CREATE SCHEMA made the new one current, as on Snowflake
        with pytest.raises(ProgrammingError, match="one schema only"):
            rows(conn, f"ALTER TABLE {target} SWAP WITH OTHER_SCHEMA.ELSEWHERE")
        assert rows(other, f"SELECT * FROM {target} ORDER BY ID") == [(1,), (2,)]
        assert rows(other, f"SELECT * FROM {staging}") == [(3, 0.5)]
        assert rows(conn, f"ALTER TABLE IF EXISTS {target}_GONE SWAP WITH {staging}") == [
            ("Statement executed successfully.",)]
        assert rows(other, f"SELECT * FROM {staging}") == [(3, 0.5)]
    finally:
        conn.close()
        other.close()


def test_ddl_commits_the_open_transaction_as_snowflake_does(stack: LocalStack) -> None:
    """A rename "in a transaction" is not atomic on Snowflake, so it is not here either."""
    log, target, staging = _name("LOG"), _name("TARGET"), _name("STAGING")
    conn, other = stack.connect(), stack.connect()
    try:
        rows(conn, f"CREATE TABLE {log} (ID INT)")
        rows(conn, "BEGIN")
        rows(conn, f"INSERT INTO {log} VALUES (1)")
        assert rows(other, f"SELECT COUNT(*) FROM {log}") == [(0,)]  # DML waits for the commit
        rows(conn, f"CREATE TABLE {target} (ID INT)")  # commits the insert, then runs on its own
        assert rows(other, f"SELECT COUNT(*) FROM {log}") == [(1,)]
        rows(conn, "ROLLBACK")
        assert rows(other, f"SELECT COUNT(*) FROM {log}") == [(1,)]
        assert len(rows(other, f"SHOW TABLES LIKE '{target}'")) == 1

        rows(conn, f"CREATE TABLE {staging} (ID INT)")
        rows(conn, f"INSERT INTO {staging} VALUES (7)")
        rows(conn, "BEGIN")
        rows(conn, f"DROP TABLE {target}")
        rows(conn, f"ALTER TABLE {staging} RENAME TO {target}")
        rows(conn, "ROLLBACK")  # undoes nothing: each DDL statement was its own transaction
        assert rows(other, f"SELECT * FROM {target}") == [(7,)]
        assert rows(other, f"SHOW TABLES LIKE '{staging}'") == []
    finally:
        conn.close()
        other.close()


def test_replacing_and_dropping_tables(stack: LocalStack) -> None:
    target, copy = _name("TARGET"), _name("COPY")
    conn = stack.connect()
    try:
        rows(conn, f"CREATE OR REPLACE TABLE {target} AS SELECT 1 AS ID UNION ALL SELECT 2")
        rows(conn, f"CREATE OR REPLACE TABLE {target} AS SELECT 3 AS ID")
        assert rows(conn, f"SELECT ID FROM {target}") == [(3,)]
        rows(conn, f"CREATE TABLE {copy} CLONE {target}")
        rows(conn, f"INSERT INTO {target} VALUES (4)")
        assert rows(conn, f"SELECT COUNT(*) FROM {copy}") == [(1,)]  # a clone is a snapshot, not a view
        assert rows(conn, f"CREATE OR REPLACE TABLE {copy} CLONE {target}") == [(f"Table {copy} successfully created.",)]
        assert rows(conn, f"SELECT ID FROM {copy} ORDER BY ID") == [(3,), (4,)]
        with pytest.raises(ProgrammingError, match="does not exist or not authorized"):
            rows(conn, f"CREATE OR REPLACE TABLE {copy} CLONE {target}_GONE")
        assert rows(conn, f"SELECT COUNT(*) FROM {copy}") == [(2,)]
        rows(conn, f"DROP TABLE IF EXISTS {copy}")
        rows(conn, f"DROP TABLE IF EXISTS {copy}")
        assert rows(conn, f"SHOW TABLES LIKE '{copy}'") == []
        rows(conn, f"CREATE TABLE {copy} (ID INT)")
        with pytest.raises(ProgrammingError):
            rows(conn, f"ALTER TABLE {target} RENAME TO {copy}")  # an existing name is refused
        rows(conn, f"DROP TABLE {copy}")
        rows(conn, f"ALTER TABLE {target} RENAME TO {copy}")
        assert rows(conn, f"SELECT COUNT(*) FROM {copy}") == [(2,)]
    finally:
        conn.close()


def test_a_table_the_role_may_not_write_is_refused_as_snowflake_refuses_it(tmp_path) -> None:
    """The stand-in's one privilege: a read-only table answers every write with Snowflake's 003001 / 42501,
    whatever the spelling of its name; it can still be read, and the other tables written."""
    with LocalStack(tmp_path / "stack", persist=False, read_only_tables=("DEMO.PUBLIC.LOCKED",)) as local:
        conn = local.connect()
        try:
            rows(conn, "CREATE TABLE OTHER (ID INT)")
            with pytest.raises(ProgrammingError) as created:
                rows(conn, "CREATE OR REPLACE TABLE locked (ID INT)")
            assert created.value.errno == 3001 and created.value.sqlstate == "42501"
            assert created.value.msg == ("003001 (42501): SQL access control error:\nInsufficient privileges to "
                                         "operate on table 'LOCKED'")  # the connector puts the code in front
            for sql in ("INSERT INTO LOCKED VALUES (1)", "INSERT OVERWRITE INTO demo.public.locked SELECT * FROM OTHER",
                        'DELETE FROM "DEMO"."PUBLIC"."LOCKED"', "UPDATE LOCKED SET ID = 2", "TRUNCATE TABLE LOCKED",
                        "ALTER TABLE LOCKED RENAME TO FREED", "ALTER TABLE OTHER SWAP WITH LOCKED",
                        "DROP TABLE IF EXISTS LOCKED"):
                with pytest.raises(ProgrammingError) as refused:
                    rows(conn, sql)
                assert refused.value.errno == 3001, (sql, refused.value.msg)
            rows(conn, "INSERT INTO OTHER VALUES (1)")
            assert rows(conn, "SELECT COUNT(*) FROM OTHER") == [(1,)]
        finally:
            conn.close()
