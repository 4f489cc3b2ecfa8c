"""Each host's disjoint, deterministic shard of the table, streamed and spilled to local Arrow files.

Host ``rank`` of ``n`` reads the rows where ``MOD(ABS(HASH(<key>)), n) = rank``. Splitting a shard
into ``p`` pages uses the same hash: page ``j`` is ``MOD(ABS(HASH(<key>)), n*p) = rank + n*j``, and
since ``h mod n == (h mod n*p) mod n`` the pages of a host are exactly its shard. A second, salted
hash marks a fixed fraction of rows as validation, so a row is validation on exactly one host and
training on none.

Every batch from ``fetch_arrow_batches()`` is cast to the column plan's spill schema
(:mod:`training.read.columns`: numbers, booleans, dates and times as float32, text as text; NULL is
missing) and appended to ``train.arrow`` / ``validation.arrow``, so the shard is never held in
memory as a whole and can be re-read as often as XGBoost needs. Text columns keep their values in
the spill; their codes come from the job's one vocabulary, which the hosts agree on after fetching.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.errors import DataError, SnowflakeError
from training.hyperparameters import Hyperparameters
from training.objectives import labels as objectives
from training.read import names
from training.read.columns import (
    CLASS,
    FEATURE,
    GROUP,
    GROUP_KIND,
    LABEL,
    UPPER,
    UPPER_BOUND,
    WEIGHT,
    ColumnPlan,
    ColumnSpec,
    kind_of,
)
from training.read.snapshot import explicit_time, time_travel_error
from training.read.snowflake import Column, quote_column, quote_table
from training.read.vocabulary import VocabularyCounter

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
    columns: ColumnPlan
    key: tuple[str, ...]
    snapshot_at: str = ""
    """ISO-8601 time every query reads the table at (Time Travel's ``AT``); empty: the table as it is."""

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(self.columns.feature_names)

    @property
    def target(self) -> str:
        return self.columns.label.name

    @property
    def query_template(self) -> str:
        """The SQL every host runs, with bind placeholders for host, page, split and snapshot time."""
        cols = ", ".join(quote_column(c) for c in self.columns.names)
        key = ", ".join(quote_column(c) for c in self.key)
        # Identifiers are validated and quoted; every value is a bind parameter.
        split = f"(MOD(ABS(HASH({key}, %(split_salt)s)), {SPLIT_BUCKETS}) < %(split_cut)s)"
        where = f"MOD(ABS(HASH({key})), %(modulus)s) = %(remainder)s"
        # Time Travel: the value must be cast explicitly; TIMESTAMP_LTZ keeps the offset it is given.
        at = " AT(TIMESTAMP => %(snapshot)s::TIMESTAMP_LTZ)" if self.snapshot_at else ""
        group = self.columns.group
        # ranking: a group's rows contiguous in the shard (XGBoost's qid must not decrease)
        order = "" if group is None else f" ORDER BY {quote_column(group.name)}"
        return (f'SELECT {cols}, {split} AS "{VALIDATION_COLUMN}" FROM {self.table_sql}{at} '  # noqa: S608
                f"WHERE {where}{order}")

    def parameters(self, hps: Hyperparameters, modulus: int, remainder: int) -> dict[str, Any]:
        """The bind parameters of :attr:`query_template` (:func:`query_parameters`, plus the snapshot time)."""
        params = query_parameters(hps, modulus, remainder)
        if self.snapshot_at:
            params["snapshot"] = self.snapshot_at
        return params

    def execute(self, cursor: Any, params: dict[str, Any]) -> None:
        """Run :attr:`query_template` on ``cursor``; a refused snapshot becomes a :class:`DataError` with the fix."""
        from snowflake.connector.errors import ProgrammingError

        try:
            cursor.execute(self.query_template, params)
        except ProgrammingError as err:
            mapped = time_travel_error(err, self.table, self.snapshot_at)
            if mapped is None:
                raise
            raise mapped from None


def plan_shard(columns: list[Column], hps: Hyperparameters, table_sql: str | None = None,
               table: str | None = None) -> ShardPlan:
    """Resolve target, features, weight and shard key against the table's columns and give each a kind.

    With ``features`` empty, every column but the target, weight and shard key is a feature, and
    columns of a type the job cannot train on are left out with one warning; listed explicitly,
    such a column fails the job.
    """
    by_name = {c.name: c for c in columns}
    table = table or hps["table"]

    def resolve(key: str) -> list[str]:
        texts = hps.readings[key]
        return names.resolve_columns(key, texts, list(by_name), table) if any(t.strip() for t in texts) else []

    target = _label_column(resolve("target"), resolve("label_lower_column"))
    weight = (resolve("weight_column") or [None])[0]
    group = (resolve("group_column") or [None])[0]
    upper = (resolve("label_upper_column") or [None])[0]
    key_names = [group] if group is not None else resolve("shard_key")
    roles = {name: role for role, name in (("target", target), ("weight_column", weight), ("group_column", group),
                                           ("label_upper_column", upper)) if name is not None}
    features = resolve("features")
    if not features:
        features = [c.name for c in columns if c.name not in (*roles, *key_names)]
        skipped = [c for c in features if kind_of(by_name[c].type_name) is None]
        if skipped:
            log.warning("left out %d column(s) of types the job cannot train on: %s", len(skipped),
                        ", ".join(f"{c} ({by_name[c].type_name})" for c in skipped))
        features = [c for c in features if c not in skipped]
    for name, role in roles.items():
        if name in features:
            raise DataError(f"the {role} {name!r} is also listed in 'features': remove it from 'features'")
    if len(roles) < len([n for n in (target, weight, group, upper) if n is not None]):
        raise DataError(f"one column has two roles among target, weight_column, group_column and label_upper_column "
                        f"({', '.join(f'{r}={n}' for n, r in roles.items())}): choose another column")
    if not features:
        raise DataError(f"table {table!r} has no feature columns besides the target: set 'features'")
    specs = [_feature(by_name[name]) for name in features]
    specs.append(_label(by_name[target], hps))
    if weight is not None:
        specs.append(_numeric(by_name[weight], "weight_column", WEIGHT))
    if group is not None:
        specs.append(_group(by_name[group]))
    if upper is not None:
        specs.append(_numeric(by_name[upper], "label_upper_column", UPPER, UPPER_BOUND.name,
                              " (NULL or +inf for right-censored rows)"))
    return ShardPlan(
        table=table, table_sql=table_sql or quote_table(table), columns=ColumnPlan(tuple(specs)),
        key=tuple(key_names or [*features, target]), snapshot_at=explicit_time(hps["snapshot"]),
    )


def _label_column(target: list[str], lower: list[str]) -> str:
    """The label: the target, or survival:aft's lower bound (``label_lower_column``, which may stand for it)."""
    if target and lower and target != lower:
        raise DataError(f"target {target[0]!r} and label_lower_column {lower[0]!r} name two columns, and survival:aft's "
                        "label is its lower bound: set only label_lower_column")
    return (lower or target)[0]


def _group(column: Column) -> ColumnSpec:
    if kind_of(column.type_name) is None:
        raise DataError(f"group_column {column.name!r} is {column.type_name}: choose a text, number or date column "
                        "(or extract one in a view)")
    return ColumnSpec(column.name, column.type_name, GROUP_KIND.name, GROUP)


def _feature(column: Column) -> ColumnSpec:
    kind = kind_of(column.type_name)
    if kind is None:
        raise DataError(f"column {column.name!r} is {column.type_name}, which the job cannot train on: drop it "
                        "from 'features', or extract a number or text from it in a view")
    return ColumnSpec(column.name, column.type_name, kind.name, FEATURE)


def _label(column: Column, hps: Hyperparameters) -> ColumnSpec:
    kind = kind_of(column.type_name)
    if kind is None:
        raise DataError(f"target {column.name!r} is {column.type_name}, which cannot be a label: choose a "
                        "numeric, boolean or text target")
    if hps.classification:
        return ColumnSpec(column.name, column.type_name, CLASS.name, LABEL)
    if kind.xgboost_type != "q":
        raise DataError(f"target {column.name!r} is {column.type_name} but objective {hps['objective']!r} needs a "
                        "number: use a classification objective (binary:logistic, multi:softprob) or a numeric target")
    return ColumnSpec(column.name, column.type_name, kind.name, LABEL)


def _numeric(column: Column, key: str, role: str, kind: str = "numeric", note: str = "") -> ColumnSpec:
    """A numeric column of role ``role`` (a weight, an upper bound), named by hyperparameter ``key``."""
    found = kind_of(column.type_name)
    if found is None or found.name != "numeric":
        raise DataError(f"{key} {column.name!r} is {column.type_name}, not a number: choose a numeric column{note}")
    return ColumnSpec(column.name, column.type_name, kind, role)


@dataclass
class Shard:
    """What one host fetched: the spilled files and the counts the job reports and checks."""

    train_path: Path
    validation_path: Path
    features: list[str]
    vocabulary: VocabularyCounter
    rows_train: int = 0
    rows_validation: int = 0
    batches: int = 0
    null_target_rows: int = 0
    null_group_rows: int = 0
    bad_label_rows: int = 0
    """Rows whose label the objective cannot train on (:mod:`training.objectives.labels`)."""
    bad_bound_rows: int = 0
    """survival:aft rows whose upper bound is below the lower one."""
    label_rule: tuple[str, objectives.LabelRange] | None = None
    """What the labels must be for the objective and metrics (:func:`training.objectives.labels.label_rule`)."""
    null_weight_rows: int = 0
    negative_weight_rows: int = 0
    non_null: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """Non-NULL values of each feature."""
    infinite: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """Infinite values of each selected column (features, label, weight)."""
    example: pa.Table | None = None
    """A few raw rows of the features, as the table has them (the model's input example)."""
    query_ids: list[str] = field(default_factory=list)
    received_rows: int = 0
    """read_mode=scan: rows of the one result this host received (NULL targets included)."""
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
    from snowflake.connector.vendored.requests.exceptions import RequestException

    # RequestException: a result chunk whose download still fails after the connector's retries
    return (OperationalError, InterfaceError, HttpError, SnowflakeError, RequestException)


def _close_quietly(conn: Any) -> None:
    """Close a connection that may be dead; the connector's own errors are nothing to save.

    (snowflake-connector 4.x's ``close`` already logs and drops its failures; a DB-API ``close``
    may raise the connector's ``Error``. Anything else is a bug and is raised.)
    """
    if conn is None:
        return
    from snowflake.connector.errors import Error

    try:
        conn.close()
    except Error as err:
        log.debug("closing the Snowflake connection failed: %s", err)


def new_shard(plan: ShardPlan, hps: Hyperparameters, spill_dir: Path) -> Shard:
    """An empty shard whose rows will be spilled to ``train.arrow`` / ``validation.arrow`` in ``spill_dir``."""
    spill_dir.mkdir(parents=True, exist_ok=True)
    return Shard(spill_dir / "train.arrow", spill_dir / "validation.arrow", list(plan.features),
                 VocabularyCounter(plan.columns, hps["max_categories"]),
                 non_null=np.zeros(len(plan.features), dtype=np.int64),
                 infinite=np.zeros(len(plan.columns.columns), dtype=np.int64), query_template=plan.query_template,
                 label_rule=objectives.label_rule(hps["objective"], hps.eval_metrics),
                 read_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))


@contextmanager
def spill_files(shard: Shard, plan: ShardPlan) -> Iterator[tuple[Any, Any]]:
    """The training and validation Arrow files of ``shard``, open for :func:`spill_batch`."""
    schema = plan.columns.spill_schema
    with pa.OSFile(str(shard.train_path), "wb") as train_sink, \
            pa.OSFile(str(shard.validation_path), "wb") as valid_sink, \
            pa.ipc.new_file(train_sink, schema) as train, pa.ipc.new_file(valid_sink, schema) as valid:
        yield train, valid


def spill_table(result: pa.Table, plan: ShardPlan, shard: Shard, sinks: tuple[Any, Any]) -> bool:
    """Spill one result batch (a table of the query's columns); False once a text column passed the cap."""
    for batch in result.to_batches():
        spill_batch(batch, plan.columns, shard, *sinks)
        if shard.vocabulary.over_cap:
            log.warning("column %r has more than %s distinct values: stopped fetching",
                        shard.vocabulary.over_cap[0], f"{shard.vocabulary.cap:,}")
            return False
    return True


def log_fetched(shard: Shard) -> None:
    log.info("fetched %s rows in %d batches in %.1f s (train %s, validation %s, %d queries)",
             f"{shard.rows:,}", shard.batches, shard.fetch_seconds, f"{shard.rows_train:,}",
             f"{shard.rows_validation:,}", len(shard.query_ids))


def _fetch_once(conn: Any, plan: ShardPlan, rank: int, hosts: int, hps: Hyperparameters, spill_dir: Path) -> Shard:
    pages = hps["fetch_pages"]
    shard = new_shard(plan, hps, spill_dir)
    started = time.monotonic()
    progress = _Progress(rank, pages)
    with spill_files(shard, plan) as sinks:
        for page in range(pages):
            if not _fetch_page(conn, plan, hps, hosts, rank + hosts * page, shard, sinks):
                break
            progress.update(shard, page)
    shard.fetch_seconds = time.monotonic() - started
    log_fetched(shard)
    return shard


def _fetch_page(conn: Any, plan: ShardPlan, hps: Hyperparameters, hosts: int, remainder: int, shard: Shard,
                sinks: tuple[Any, Any]) -> bool:
    """Spill one page's rows; False once a text column passed the cap (fetching more is wasted)."""
    cursor = conn.cursor()
    try:
        plan.execute(cursor, plan.parameters(hps, hosts * hps["fetch_pages"], remainder))
        shard.query_ids.append(cursor.sfqid)
        for result in cursor.fetch_arrow_batches():  # a pyarrow Table per result chunk
            if not spill_table(result, plan, shard, sinks):
                return False
    finally:
        cursor.close()
    return True


def query_parameters(hps: Hyperparameters, modulus: int, remainder: int) -> dict[str, Any]:
    """The bind parameters of ``query_template`` for the rows with hash remainder ``remainder`` of ``modulus``.

    The validation split's salt and cut come from ``hps``; ``modulus`` 1 and ``remainder`` 0 select
    every row of the table (what the tests and benchmarks compare a job's shards against).
    """
    return {
        "split_salt": f"validation-{hps['split_seed']}",
        "split_cut": round(hps["validation_fraction"] * SPLIT_BUCKETS),
        "modulus": modulus,
        "remainder": remainder,
    }


def spill_batch(batch: pa.RecordBatch, plan: ColumnPlan, shard: Shard, train: Any, valid: Any) -> None:
    """Cast one record batch by the column plan, count it, and append its rows to the training or validation file."""
    width = len(plan.columns)
    try:
        table = plan.to_spill([batch.column(i) for i in range(width)])
    except ValueError as err:
        raise DataError(f"{err}: cast the column in a view, or drop it from 'features'") from None
    if shard.example is None and batch.num_rows:
        shard.example = pa.Table.from_batches([batch.slice(0, 5)]).select(plan.feature_names)
    labels = len(plan.features)
    label_ok = pc.is_valid(table.column(labels))
    shard.null_target_rows += batch.num_rows - (pc.sum(label_ok).as_py() or 0)
    is_valid_row = pc.fill_null(batch.column(width).cast(pa.bool_()), False)
    table = table.filter(label_ok)
    is_valid_row = is_valid_row.filter(label_ok)
    if plan.weight is not None:
        weights = table.column(labels + 1)
        shard.null_weight_rows += weights.null_count
        shard.negative_weight_rows += pc.sum(pc.less(weights, 0)).as_py() or 0
    _count_roles(plan, table, shard)
    shard.vocabulary.update(table)
    shard.infinite += [pc.sum(pc.is_inf(c)).as_py() or 0 if pa.types.is_floating(c.type) and spec.role != UPPER else 0
                       for spec, c in zip(plan.columns, table.columns, strict=True)]
    for sink, mask in ((train, pc.invert(is_valid_row)), (valid, is_valid_row)):
        part = table.filter(mask)
        if part.num_rows:
            sink.write_batch(part)
            shard.non_null += [part.num_rows - part.column(i).null_count for i in range(labels)]
        if sink is train:
            shard.rows_train += part.num_rows
        else:
            shard.rows_validation += part.num_rows
    shard.batches += 1


def _count_roles(plan: ColumnPlan, table: pa.Table, shard: Shard) -> None:
    """Count what the objective cannot train on: labels out of its range, NULL groups, empty intervals."""
    label = table.column(plan.columns.index(plan.label))
    shard.bad_label_rows += objectives.bad_labels(shard.label_rule, label)
    if plan.group is not None:
        shard.null_group_rows += table.column(plan.columns.index(plan.group)).null_count
    if plan.upper is not None:
        shard.bad_bound_rows += objectives.bad_bounds(label, table.column(plan.columns.index(plan.upper)))


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
