"""The local Snowflake streams large results in chunks, as Snowflake does, to the unmodified connector.

One stand-in with small chunks whose every first download fails, in turn: a 403 (as an expired
URL answers), a body cut off halfway, a connection dropped after the headers. The connector
retries each chunk, and every read path still sees the table's rows once, in order.
A result is re-opened by query id (``RESULT_SCAN``), as a restarted job does.
It also accepts Time Travel's ``AT(TIMESTAMP => ...)`` (answering the current rows: it has no history).
"""

from __future__ import annotations

import json
import logging
import pickle
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.feather as feather
import pytest
from snowflake.connector.errors import ProgrammingError

from launch.local.result_chunks import ChunkSizes
from launch.local.services import LocalStack
from training.errors import DataError
from training.hyperparameters import parse_hyperparameters
from training.read.plan import plan_shard
from training.read.read_record import RECORD_FILE
from training.read.scan import ScanResult, open_scan
from training.read.snapshot import current_time
from training.read.snowflake import Column, describe_table

pytestmark = pytest.mark.slow

ROWS = 4_000
SIZES = ChunkSizes(inline_rows=300, first_chunk_rows=200, growth=2.0, max_chunk_rows=1_000,
                   faults="403,truncate,reset")
QUERY = "SELECT * FROM CHUNKED ORDER BY ID"


@pytest.fixture(scope="module")
def chunked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack(tmp_path_factory.mktemp("chunked"), persist=False, chunks=SIZES) as stack:
        stack.ensure_table("CHUNKED", data="synthetic", rows=ROWS, seed=3)
        yield stack


@pytest.fixture(scope="module")
def reference(chunked: LocalStack) -> pa.Table:
    """The table read in pages small enough to come back inline (no chunk involved)."""
    conn = chunked.connect()
    try:
        cursor, pages = conn.cursor(), []
        for low in range(0, ROWS, SIZES.inline_rows):
            cursor.execute("SELECT * FROM CHUNKED WHERE ID >= %s AND ID < %s ORDER BY ID", (low, low + SIZES.inline_rows))
            pages.append(cursor.fetch_arrow_all())
        return pa.concat_tables(pages)
    finally:
        conn.close()


def test_a_large_result_is_the_inline_part_then_the_configured_chunks(chunked: LocalStack, reference: pa.Table) -> None:
    inline, sizes = SIZES.plan(ROWS, 1.0)
    assert (inline, sizes) == (300, [200, 400, 800, 1000, 1000, 300])
    conn = chunked.connect()
    try:
        cursor = conn.cursor()
        cursor.execute(QUERY)
        assert [batch.rowcount for batch in cursor.get_result_batches()] == [inline, *sizes]
        cursor.execute(QUERY)
        assert [b.num_rows for b in cursor.fetch_arrow_batches()] == [inline, *sizes]
        cursor.execute(QUERY)
        assert cursor.fetch_arrow_all().equals(reference)  # same rows, same order, after a 403 per chunk
        cursor.execute(QUERY)
        frame = cursor.fetch_pandas_all()
        assert frame["ID"].tolist() == reference.column("ID").to_pylist()
    finally:
        conn.close()


def test_result_batches_download_in_another_process_without_a_connection(chunked: LocalStack, reference: pa.Table,
                                                                          tmp_path: Path) -> None:
    conn = chunked.connect()
    cursor = conn.cursor()
    cursor.execute(QUERY)
    (tmp_path / "batches.pickle").write_bytes(pickle.dumps(cursor.get_result_batches()))
    conn.close()
    script = ("import pickle, sys, pyarrow as pa; batches = pickle.load(open(sys.argv[1], 'rb')); "
              "pa.feather.write_feather(pa.concat_tables([b.to_arrow() for b in batches]), sys.argv[2])")
    done = subprocess.run([sys.executable, "-c", "import pyarrow.feather; " + script, str(tmp_path / "batches.pickle"),
                           str(tmp_path / "rows.arrow")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert feather.read_table(tmp_path / "rows.arrow").equals(reference)


def test_a_small_result_stays_one_inline_batch(chunked: LocalStack) -> None:
    conn = chunked.connect()
    try:
        cursor = conn.cursor()
        cursor.execute("SELECT * FROM CHUNKED WHERE ID < %s", (SIZES.inline_rows,))
        assert [batch.rowcount for batch in cursor.get_result_batches()] == [SIZES.inline_rows]
    finally:
        conn.close()


def test_a_restart_reopens_its_recorded_result_while_snowflake_keeps_it(chunked: LocalStack, tmp_path: Path,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    """The leader records its query in the checkpoint directory; a restart re-opens that result
    (RESULT_SCAN: the same rows, though the table changed since, in fresh chunks), and queries the
    table again, saying the snapshot changed, once the result is too old or gone."""
    chunked.ensure_table("REOPEN", data="synthetic", rows=2_500, seed=4)
    hps = parse_hyperparameters({"table": "REOPEN", "target": "Y"})
    conn = chunked.connect()
    try:
        plan = plan_shard(describe_table(conn, "REOPEN"), hps.read_options())
        first = open_scan(conn, plan, hps.read_options(), tmp_path, "job-1")
        record = json.loads((tmp_path / RECORD_FILE).read_text())
        assert record["query_id"] == first.query_id and record["job_name"] == "job-1"
        assert set(record) == {"job_name", "query_id", "read_at", "query_digest", "snapshot_at"}  # nothing secret
        conn.cursor().execute("INSERT INTO REOPEN SELECT * FROM REOPEN WHERE ID < 10")  # the table moves on

        def rows(result: ScanResult) -> int:
            assert len(result.batches) > 1  # in chunks, as the first read was
            return sum(batch.rowcount for batch in result.batches)

        with caplog.at_level(logging.INFO, logger="training.read.scan"):
            again = open_scan(conn, plan, hps.read_options(), tmp_path, "job-1")
        assert (again.query_id, again.read_at, rows(again)) == (first.query_id, first.read_at, 2_500)
        assert pa.concat_tables(b.to_arrow() for b in again.batches).equals(
            pa.concat_tables(b.to_arrow() for b in first.batches))  # the same rows, in fresh chunks
        assert f"re-opened the result of query {first.query_id}" in caplog.text

        later = datetime.fromisoformat(first.read_at) + timedelta(hours=25)
        caplog.clear()
        with caplog.at_level(logging.INFO):
            fresh = open_scan(conn, plan, hps.read_options(), tmp_path, "job-1", now=later)
        assert fresh.query_id != first.query_id and rows(fresh) == 2_510
        assert "the snapshot changes: this job's first read" in caplog.text
        assert json.loads((tmp_path / RECORD_FILE).read_text())["query_id"] == fresh.query_id

        (tmp_path / RECORD_FILE).write_text(json.dumps({**record, "query_id": str(uuid.uuid4())}))
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="training.read.scan"):
            assert rows(open_scan(conn, plan, hps.read_options(), tmp_path, "job-1")) == 2_510
        assert "the snapshot changes: could not re-open the result of query" in caplog.text
        caplog.clear()  # another job with the same checkpoint location reads the table as it is now
        with caplog.at_level(logging.INFO, logger="training.read.read_record"):
            other = open_scan(conn, plan, hps.read_options(), tmp_path, "job-2")
        assert "holds the read of job job-1, not this one" in caplog.text and other.query_id != fresh.query_id
    finally:
        conn.close()


def test_time_travel_reads_the_current_rows_and_refuses_the_future(chunked: LocalStack, reference: pa.Table) -> None:
    """The stand-in has no history: ``AT(TIMESTAMP => <past>)`` answers the table as it is (in chunks, as
    any large result); a time in the future is refused as Snowflake refuses it, and the job says the fix."""
    conn = chunked.connect()
    try:
        cursor = conn.cursor()
        now = current_time(conn)
        at = "SELECT * FROM CHUNKED AT(TIMESTAMP => %(at)s::TIMESTAMP_LTZ) ORDER BY ID"
        cursor.execute(at, {"at": now})
        assert cursor.fetch_arrow_all().equals(reference)
        future = (datetime.fromisoformat(now) + timedelta(hours=1)).isoformat()
        with pytest.raises(ProgrammingError, match="Time travel data is not available for table CHUNKED") as err:
            cursor.execute(at, {"at": future})
        assert err.value.errno == 707
        hps = parse_hyperparameters({"table": "CHUNKED", "target": "Y", "snapshot": future})
        plan = plan_shard([Column("ID", 0), Column("F0", 1), Column("Y", 1)], hps.read_options())
        with pytest.raises(DataError, match=re.escape(f"table 'CHUNKED' has no Time Travel data at snapshot {future} "
                                                     "(Snowflake: Time travel data is not available for table CHUNKED)")):
            plan.execute(cursor, plan.parameters(hps.read_options(), 1, 0))
    finally:
        conn.close()
