"""Each host's disjoint, deterministic shard of the table, streamed and spilled to local Arrow files.

Host ``rank`` of ``n`` reads the rows where ``MOD(ABS(HASH(<key>)), n) = rank``. Splitting a shard
into ``p`` pages uses the same hash: page ``j`` is ``MOD(ABS(HASH(<key>)), n*p) = rank + n*j``, and
since ``h mod n == (h mod n*p) mod n`` the pages of a host are exactly its shard. A second, salted
hash marks a fixed fraction of rows as validation, so a row is validation on exactly one host and
training on none.

Every batch from ``fetch_arrow_batches()`` is cast to one float32 schema (NULL becomes NaN, i.e.
missing) and appended to ``train.arrow`` / ``validation.arrow``, so the shard is never held in
memory as a whole and can be re-read as often as XGBoost needs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.errors import DataError, SnowflakeError
from training.hyperparameters import Hyperparameters
from training.snowflake import Column, quote_column, quote_part, quote_table, unquoted

log = logging.getLogger(__name__)

SPLIT_BUCKETS = 1_000_000
"""Resolution of the validation split: fractions are honoured to one part in a million."""
VALIDATION_COLUMN = "__VALIDATION"
FETCH_ATTEMPTS = 3
"""A shard whose connection drops is fetched again from a clean start this many times in all."""
RETRY_PAUSE_SECONDS = 2.0
"""Pause before attempt ``k + 1`` is ``k`` times this (the server or the network may be recovering)."""
_PROGRESS_SECONDS = 5.0


@dataclass(frozen=True)
class ShardPlan:
    """The validated, quoted pieces of the shard query (no user text is formatted raw)."""

    table: str
    table_sql: str
    features: tuple[str, ...]
    target: str
    key: tuple[str, ...]

    @property
    def query_template(self) -> str:
        """The SQL every host runs, with bind placeholders for host, page and split."""
        cols = ", ".join(quote_column(c) for c in (*self.features, self.target))
        key = ", ".join(quote_column(c) for c in self.key)
        # Identifiers are validated and quoted; every value is a bind parameter.
        split = f"(MOD(ABS(HASH({key}, %(split_salt)s)), {SPLIT_BUCKETS}) < %(split_cut)s)"
        where = f"MOD(ABS(HASH({key})), %(modulus)s) = %(remainder)s"
        return f'SELECT {cols}, {split} AS "{VALIDATION_COLUMN}" FROM {self.table_sql} WHERE {where}'  # noqa: S608


def plan_shard(columns: list[Column], hps: Hyperparameters) -> ShardPlan:
    """Resolve target, features and shard key against the table's columns; check they are numeric."""
    by_name = {c.name: c for c in columns}
    target = _resolve(by_name, hps["target"], "target column", hps["table"])
    key_names = [_resolve(by_name, k, "shard_key column", hps["table"]) for k in hps.shard_key]
    if hps.features:
        features = [_resolve(by_name, f, "feature column", hps["table"]) for f in hps.features]
    else:
        features = [c.name for c in columns if c.name != target and c.name not in key_names]
    if target in features:
        raise DataError(f"the target {target!r} is also listed in 'features': remove it from 'features'")
    if not features:
        raise DataError(f"table {hps['table']!r} has no feature columns besides the target: set 'features'")
    for name in (*features, target):
        if not by_name[name].numeric:
            raise DataError(
                f"column {name!r} is {by_name[name].type_name}, not numeric: drop it from 'features' "
                "or cast it to a number in a view and train on the view"
            )
    return ShardPlan(
        table=hps["table"], table_sql=quote_table(hps["table"]), features=tuple(features),
        target=target, key=tuple(key_names or [*features, target]),
    )


def _resolve(by_name: dict[str, Column], given: str, what: str, table: str) -> str:
    name = unquoted(quote_part(given, what))
    if name in by_name:
        return name
    shown = ", ".join(list(by_name)[:20])
    raise SnowflakeError(
        f"{what} {given!r} is not in table {table!r} (columns: {shown}): fix the hyperparameter"
    )


@dataclass
class Shard:
    """What one host fetched: the spilled files and the counts the job reports and checks."""

    train_path: Path
    validation_path: Path
    features: list[str]
    rows_train: int = 0
    rows_validation: int = 0
    batches: int = 0
    null_target_rows: int = 0
    non_null: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    query_ids: list[str] = field(default_factory=list)
    query_template: str = ""
    read_at: str = ""
    fetch_seconds: float = 0.0

    @property
    def rows(self) -> int:
        return self.rows_train + self.rows_validation


def fetch_shard(
    connect: Callable[[], Any], plan: ShardPlan, rank: int, hosts: int, hps: Hyperparameters, spill_dir: Path,
) -> Shard:
    """Fetch host ``rank``'s shard into ``spill_dir``; retry from a clean start if the connection drops.

    A dropped connection surfaces as the connector's OperationalError or InterfaceError (the server
    went away), an HttpError (the server came back but forgot the session: 401) or, on a new attempt,
    as a failed sign-in: each is retried, :data:`FETCH_ATTEMPTS` times in all. Every attempt rewrites
    the spill files from the start, so a retried shard has no duplicate or missing rows.
    """
    retryable = _connection_errors()
    for attempt in range(1, FETCH_ATTEMPTS + 1):
        conn = None
        try:
            conn = connect()
            return _fetch_once(conn, plan, rank, hosts, hps, spill_dir)
        except retryable as err:
            cause = f"{type(err).__name__}, errno {getattr(err, 'errno', None) or '?'}"
            if attempt == FETCH_ATTEMPTS:
                raise SnowflakeError(
                    f"lost the connection to Snowflake while fetching shard {rank} of {hosts} "
                    f"({FETCH_ATTEMPTS} attempts, last: {cause}): check the network path to Snowflake "
                    "and the warehouse, then restart the job"
                ) from None
            log.warning("connection lost while fetching shard (attempt %d of %d, %s): starting the shard "
                        "again in %.0f s", attempt, FETCH_ATTEMPTS, cause, RETRY_PAUSE_SECONDS * attempt)
            time.sleep(RETRY_PAUSE_SECONDS * attempt)
        finally:
            _close_quietly(conn)
    raise AssertionError("unreachable")


def _connection_errors() -> tuple[type[Exception], ...]:
    from snowflake.connector.errors import HttpError, InterfaceError, OperationalError

    return (OperationalError, InterfaceError, HttpError, SnowflakeError)


def _close_quietly(conn: Any) -> None:
    if conn is None:
        return
    try:
        conn.close()
    except Exception as err:  # noqa: BLE001  a dead connection may fail to close; nothing to save
        log.debug("closing the Snowflake connection failed: %s", err)


def _fetch_once(conn: Any, plan: ShardPlan, rank: int, hosts: int, hps: Hyperparameters, spill_dir: Path) -> Shard:
    spill_dir.mkdir(parents=True, exist_ok=True)
    pages = hps["fetch_pages"]
    shard = Shard(spill_dir / "train.arrow", spill_dir / "validation.arrow", list(plan.features),
                  non_null=np.zeros(len(plan.features), dtype=np.int64), query_template=plan.query_template,
                  read_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    schema = spill_schema(plan.features)
    started = time.monotonic()
    progress = _Progress(rank, pages)
    with pa.OSFile(str(shard.train_path), "wb") as train_sink, \
            pa.OSFile(str(shard.validation_path), "wb") as valid_sink, \
            pa.ipc.new_file(train_sink, schema) as train, pa.ipc.new_file(valid_sink, schema) as valid:
        for page in range(pages):
            cursor = conn.cursor()
            try:
                cursor.execute(plan.query_template, _bind(hps, hosts * pages, rank + hosts * page))
                shard.query_ids.append(cursor.sfqid)
                for result in cursor.fetch_arrow_batches():  # a pyarrow Table per result chunk
                    for batch in result.to_batches():
                        _spill(batch, schema, shard, train, valid)
                    progress.update(shard, page)
            finally:
                cursor.close()
    shard.fetch_seconds = time.monotonic() - started
    log.info("fetched %s rows in %d batches in %.1f s (train %s, validation %s, %d queries)",
             f"{shard.rows:,}", shard.batches, shard.fetch_seconds, f"{shard.rows_train:,}",
             f"{shard.rows_validation:,}", len(shard.query_ids))
    return shard


def _bind(hps: Hyperparameters, modulus: int, remainder: int) -> dict[str, Any]:
    return {
        "split_salt": f"validation-{hps['split_seed']}",
        "split_cut": round(hps["validation_fraction"] * SPLIT_BUCKETS),
        "modulus": modulus,
        "remainder": remainder,
    }


def spill_schema(features: tuple[str, ...] | list[str]) -> pa.Schema:
    """The fixed schema of the spilled files: every feature and the label as float32."""
    return pa.schema([pa.field(name, pa.float32()) for name in features] + [pa.field("__LABEL", pa.float32())])


def _spill(batch: pa.RecordBatch, schema: pa.Schema, shard: Shard, train: Any, valid: Any) -> None:
    width = len(schema) - 1
    columns = [_to_float32(batch.column(i), schema.field(i).name) for i in range(width + 1)]
    label_ok = pc.is_valid(batch.column(width))
    shard.null_target_rows += batch.num_rows - (pc.sum(label_ok).as_py() or 0)
    is_valid_row = pc.fill_null(batch.column(width + 1).cast(pa.bool_()), False)
    table = pa.RecordBatch.from_arrays(columns, schema=schema)
    for sink, mask in ((train, pc.and_(label_ok, pc.invert(is_valid_row))), (valid, pc.and_(label_ok, is_valid_row))):
        part = table.filter(mask)
        if part.num_rows:
            sink.write_batch(part)
            shard.non_null += [part.num_rows - part.column(i).null_count for i in range(width)]
        if sink is train:
            shard.rows_train += part.num_rows
        else:
            shard.rows_validation += part.num_rows
    shard.batches += 1


def _to_float32(column: pa.Array, name: str) -> pa.Array:
    try:
        return pc.cast(column, pa.float32(), safe=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise DataError(
            f"column {name!r} arrived as {column.type}, which does not convert to a number: drop it "
            "from 'features' or cast it in a view"
        ) from None


class _Progress:
    """Logs rows fetched at most every few seconds, so long fetches show they are alive."""

    def __init__(self, rank: int, pages: int) -> None:
        self.rank, self.pages, self.last = rank, pages, time.monotonic()

    def update(self, shard: Shard, page: int) -> None:
        now = time.monotonic()
        if now - self.last >= _PROGRESS_SECONDS:
            self.last = now
            log.info("fetching: %s rows in %d batches so far (page %d of %d)",
                     f"{shard.rows:,}", shard.batches, page + 1, self.pages)
