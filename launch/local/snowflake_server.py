"""The local Snowflake: fakesnow's server, made faithful where the job depends on it.

Run as ``python -m launch.local.snowflake_server PORT [DB_DIR]``: with ``DB_DIR`` its databases live in
files there and survive a restart (``fakesnow -s -d DIR`` ignores ``-d`` in server mode, so the
server's shared instance is pointed at the directory instead).

Where fakesnow 0.12.1 differs from Snowflake in a way the job would notice, it is patched here:

- **NULL timestamps.** fakesnow sends TIMESTAMP_NTZ/LTZ/TZ values as Snowflake's ``(epoch,
  fraction[, timezone])`` struct but drops the validity bitmap, so the connector reads a NULL
  timestamp as 1970-01-01 00:00:00. Snowflake keeps it NULL; so does this server.
- **One inline batch.** fakesnow answers every result inline; Snowflake sends large results as
  chunks the connector downloads. This server does too (:mod:`launch.local.result_chunks`).
- **Time Travel.** fakesnow cannot run ``FROM t AT(TIMESTAMP => ...)``. This server strips the
  clause and answers the table's current rows, refusing a time in the future as Snowflake does
  (:mod:`launch.local.time_travel`).
- **COPY INTO a quoted name.** fakesnow's COPY looks the target table up with ``DESCRIBE
  db.schema.name`` built from the parts *unquoted*, so a name Snowflake takes quoted
  (``HOLD."Mixed Case"."Sales Data"``) fails with DuckDB's ``Parser Error``. This server quotes
  each part, as the statement had it.
- **The write path.** ``write_pandas`` (PUT + COPY), ``ALTER TABLE ... SWAP WITH`` and DDL inside a
  transaction behave as on Snowflake (:mod:`launch.local.write_back`).

What it still does not do: see ``../shared/REFERENCE.md`` (no Time Travel *history*: any past
time reads the current rows, and no time is too old; ``RESULT_SCAN`` answers the whole cached
result whatever its projection (``SELECT *`` is right, ``COUNT(*)`` is not) and never expires, see
:mod:`launch.local.result_chunks`; ``HASH`` values differ from Snowflake's).
"""

from __future__ import annotations

import sys
import threading
from typing import Any


def _keep_null_timestamps() -> None:
    import pyarrow as pa
    import pyarrow.compute as pc
    from fakesnow import arrow

    original = arrow.timestamp_to_sf_struct

    def timestamp_to_sf_struct(ts: Any) -> pa.Array:
        if isinstance(ts, pa.ChunkedArray):
            ts = ts.combine_chunks()
        struct = original(ts)
        if not ts.null_count:
            return struct
        children = [struct.field(i) for i in range(struct.type.num_fields)]
        return pa.StructArray.from_arrays(children, fields=list(struct.type), mask=pc.is_null(ts))

    arrow.timestamp_to_sf_struct = timestamp_to_sf_struct


def _quote_copy_target() -> None:
    from fakesnow import copy_into

    def describe_table(table: Any, duck_conn: Any, current_database: str | None,
                       current_schema: str | None) -> list[tuple[str, str]]:
        parts = (table.catalog or current_database, table.db or current_schema, table.name)
        qualified = ".".join('"' + str(part).replace('"', '""') + '"' for part in parts)
        return [(row[0], row[1]) for row in duck_conn.execute(f"DESCRIBE {qualified}").fetchall()]

    copy_into._describe_table = describe_table


def serve(port: int, db_dir: str | None = None) -> None:
    """Serve the local Snowflake on ``127.0.0.1:port`` until the process is stopped.

    Large results are answered in chunks sized by ``LOCAL_SNOWFLAKE_*`` (:mod:`launch.local.result_chunks`).
    """
    import importlib
    import os

    import fakesnow

    from launch.local import result_chunks, time_travel, write_back

    _keep_null_timestamps()
    _quote_copy_target()
    run = fakesnow.server  # the function: importing the fakesnow.server module below shadows it
    server = importlib.import_module("fakesnow.server")
    if db_dir:
        from fakesnow.instance import FakeSnow

        server.shared_fs = FakeSnow(db_path=db_dir)
    write_back.install(server.app, server)  # innermost: the statements as the client sent them
    time_travel.install(server.app)  # then: the chunked answer wraps the stripped query's
    result_chunks.install(server.app, result_chunks.ChunkSizes.from_env(os.environ))
    with run(port=port):
        threading.Event().wait()


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else None)
