"""The read's plan: which columns, under which roles, by which query.

Host ``rank`` of ``n`` reads the rows where ``MOD(ABS(HASH(<key>)), n) = rank``. Splitting a shard
into ``p`` pages uses the same hash: page ``j`` is ``MOD(ABS(HASH(<key>)), n*p) = rank + n*j``, and
since ``h mod n == (h mod n*p) mod n`` the pages of a host are exactly its shard. A second, salted
hash marks a fixed fraction of rows as validation, so a row is validation on exactly one host and
training on none. ``read_mode=scan`` runs the same query once for every host (modulus 1).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from training.errors import DataError
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
from training.read.options import ReadOptions
from training.read.snapshot import explicit_time, time_travel_error
from training.read.snowflake import Column, quote_column, quote_table

log = logging.getLogger(__name__)

SPLIT_BUCKETS = 1_000_000
"""Resolution of the validation split: fractions are honoured to one part in a million."""
VALIDATION_COLUMN = "__VALIDATION"


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

    def parameters(self, options: ReadOptions, modulus: int, remainder: int) -> dict[str, Any]:
        """The bind parameters of :attr:`query_template` (:func:`query_parameters`, plus the snapshot time)."""
        params = query_parameters(options, modulus, remainder)
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


def plan_shard(columns: list[Column], options: ReadOptions, table_sql: str | None = None,
               table: str | None = None) -> ShardPlan:
    """Resolve target, features, weight and shard key against the table's columns and give each a kind.

    With ``features`` empty, every column but the target, weight and shard key is a feature, and
    columns of a type the job cannot train on are left out with one warning; listed explicitly,
    such a column fails the job.
    """
    by_name = {c.name: c for c in columns}
    table = table or options.table

    def resolve(key: str) -> list[str]:
        texts = options.readings[key]
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
    specs.append(_label(by_name[target], options))
    if weight is not None:
        specs.append(_numeric(by_name[weight], "weight_column", WEIGHT))
    if group is not None:
        specs.append(_group(by_name[group]))
    if upper is not None:
        specs.append(_numeric(by_name[upper], "label_upper_column", UPPER, UPPER_BOUND.name,
                              " (NULL or +inf for right-censored rows)"))
    return ShardPlan(
        table=table, table_sql=table_sql or quote_table(table), columns=ColumnPlan(tuple(specs)),
        key=tuple(key_names or [*features, target]), snapshot_at=explicit_time(options.snapshot),
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


def _label(column: Column, options: ReadOptions) -> ColumnSpec:
    kind = kind_of(column.type_name)
    if kind is None:
        raise DataError(f"target {column.name!r} is {column.type_name}, which cannot be a label: choose a "
                        "numeric, boolean or text target")
    if options.classification:
        return ColumnSpec(column.name, column.type_name, CLASS.name, LABEL)
    if kind.xgboost_type != "q":
        raise DataError(f"target {column.name!r} is {column.type_name} but objective {options.objective!r} needs a "
                        "number: use a classification objective (binary:logistic, multi:softprob) or a numeric target")
    return ColumnSpec(column.name, column.type_name, kind.name, LABEL)


def _numeric(column: Column, key: str, role: str, kind: str = "numeric", note: str = "") -> ColumnSpec:
    """A numeric column of role ``role`` (a weight, an upper bound), named by hyperparameter ``key``."""
    found = kind_of(column.type_name)
    if found is None or found.name != "numeric":
        raise DataError(f"{key} {column.name!r} is {column.type_name}, not a number: choose a numeric column{note}")
    return ColumnSpec(column.name, column.type_name, kind, role)


def query_parameters(options: ReadOptions, modulus: int, remainder: int) -> dict[str, Any]:
    """The bind parameters of ``query_template`` for the rows with hash remainder ``remainder`` of ``modulus``.

    The validation split's salt and cut come from ``options``; ``modulus`` 1 and ``remainder`` 0 select
    every row of the table (what the tests and benchmarks compare a job's shards against).
    """
    return {
        "split_salt": f"validation-{options.split_seed}",
        "split_cut": round(options.validation_fraction * SPLIT_BUCKETS),
        "modulus": modulus,
        "remainder": remainder,
    }
