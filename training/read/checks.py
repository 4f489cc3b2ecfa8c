"""After the read, every host reaches the same verdict: one vocabulary per text column, agreed across
hosts, and the all-reduced counts checked (NULL targets, weights, labels, empty or infinite columns).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from training.collective.cluster import Cluster, allreduce_sum, from_leader, gather
from training.errors import DataError
from training.objectives.labels import LabelRange
from training.read.columns import ColumnPlan
from training.read.plan import ShardPlan
from training.read.scan import ScanShare
from training.read.snowflake import quote_column
from training.read.spill import Shard
from training.read.vocabulary import merge_vocabularies

log = logging.getLogger(__name__)


def agree_vocabularies(shard: Shard, plan: ShardPlan, cluster: Cluster, max_categories: int,
                       count: Callable[[str], int]) -> ColumnPlan:
    """One vocabulary per text column (and class label) for the whole job, identical on every host.

    XGBoost 3.0 never checks that a category code means the same value on every worker, so the
    hosts gather their partial vocabularies and each merges them the same way. A column over
    ``max_categories`` fails the job on every host with the same line.
    """
    columns = plan.columns
    if not columns.vocabulary_columns:
        return columns
    partials = gather([shard.vocabulary.partial()], cluster, "read: vocabularies")
    vocabularies, over = merge_vocabularies(columns, partials, max_categories)
    if over:
        name = next(iter(over))
        distinct = over[name] if over[name] is not None else from_leader(lambda: count(name), cluster,
                                                                         "read: distinct count")
        fix = ("use an objective for fewer classes, or group rare classes in a view" if name == plan.target
               else "raise the hyperparameter 'max_categories', or drop the column from 'features'")
        raise DataError(f"column {name!r} has {distinct:,} distinct values, over max_categories="
                        f"{max_categories:,}: {fix}")
    columns = columns.with_vocabularies(vocabularies)
    # Every host logs the digest of the codes it trains with: equal digests mean equal codes.
    log.info("category codes agreed across %d host(s): %s (digest %s)", cluster.size,
             ", ".join(f"{name} {len(values):,} values" for name, values in vocabularies.items()),
             columns.vocabulary_digest())
    return columns


def check_totals(shard: Shard, plan: ShardPlan, cluster: Cluster, null_target: str,
                 share: ScanShare | None = None) -> list[int]:
    """Check the all-reduced counts (every host reaches the same verdict); return rows per host."""
    per_host = np.zeros(cluster.size, dtype=np.int64)
    per_host[cluster.rank] = shard.rows
    local = np.array([shard.received_rows, shard.rows_train, shard.rows_validation, shard.null_target_rows,
                      shard.null_weight_rows, shard.negative_weight_rows, shard.null_group_rows, shard.bad_label_rows,
                      shard.bad_bound_rows, *shard.non_null, *shard.infinite, *per_host], dtype=np.int64)
    received, *totals = (int(x) for x in allreduce_sum(local, cluster, "read: totals"))
    if share is not None and received != share.result_rows:  # a row lost or read twice: our bug, not the data's
        raise RuntimeError(f"the hosts received {received:,} rows of the one result, which holds "
                           f"{share.result_rows:,}")
    width, columns = len(plan.features), len(plan.columns.columns)
    objective_rows, totals = totals[5:8], totals[:5] + totals[8:]
    rows_train, rows_valid, null_target_rows, null_weight, negative_weight = totals[:5]
    total = rows_train + rows_valid
    if cluster.leader:
        log.info("total rows across %d hosts: %s (train %s, validation %s)", cluster.size, f"{total:,}",
                 f"{rows_train:,}", f"{rows_valid:,}")
    if null_target_rows and null_target == "fail":
        raise DataError(f"{null_target_rows:,} rows have a NULL target {plan.target!r}: filter them out in a view, or "
                        "set the hyperparameter null_target=drop to leave them out of training")
    if null_target_rows and cluster.leader:
        log.warning("left out %s rows whose target %s is NULL (null_target=drop)", f"{null_target_rows:,}", plan.target)
    if total == 0:
        raise DataError(f"table {plan.table!r} has no rows to train on: load data or point 'table' at another table")
    weight = plan.columns.weight
    if weight is not None and (null_weight or negative_weight):
        what, fix = ((f"a NULL weight in {weight.name!r}", f"COALESCE({weight.name}, 1)") if null_weight
                     else (f"a negative weight in {weight.name!r}", f"GREATEST({weight.name}, 0)"))
        raise DataError(f"{null_weight or negative_weight:,} rows have {what}: weights must be numbers >= 0; "
                        f"fix them in a view (e.g. {fix}) or leave out 'weight_column'")
    _check_objective_rows(plan.columns, shard.label_rule, *objective_rows)
    _check_values(plan.columns, totals[5:5 + width], totals[5 + width:5 + width + columns])
    if rows_valid == 0 or rows_train == 0:
        which = "validation" if rows_valid == 0 else "training"
        key = ", ".join(plan.key) if len(plan.key) <= 3 else f"all {len(plan.key)} columns"
        raise DataError(f"the split left no {which} rows out of {total:,}: rows are held out by a hash of the shard key "
                        f"({key}), and rows with the same key fall on the same side; use a shard_key with many "
                        "distinct values (a row id), or adjust 'validation_fraction'")
    return [int(n) for n in totals[5 + width + columns:]]


def _check_objective_rows(columns: ColumnPlan, rule: tuple[str, LabelRange] | None, null_group: int,
                          bad_label: int, bad_bound: int) -> None:
    """Rows the objective cannot train on (all-reduced counts): a NULL group, a label out of range, an empty interval."""
    group, upper, label = columns.group, columns.upper, columns.label.name
    if group is not None and null_group:
        raise DataError(f"{null_group:,} rows have a NULL group_column {group.name!r}, and every row of a ranking job "
                        f"belongs to a query: filter them out in a view (WHERE {quote_column(group.name)} IS NOT NULL) "
                        "or COALESCE them to a group")
    if bad_label and rule is not None:
        asks, needs = rule
        raise DataError(f"{bad_label:,} rows have a {label!r} that {asks} cannot use (it needs {needs.words}): fix "
                        f"them in a view, or change the {asks.split()[0]}")
    if upper is not None and bad_bound:
        raise DataError(f"{bad_bound:,} rows have label_upper_column {upper.name!r} below the lower bound {label!r}: "
                        "each row's upper bound must be >= its lower one (NULL or +inf: right-censored); fix them "
                        "in a view")


def _check_values(columns: ColumnPlan, non_null: np.ndarray, infinite: np.ndarray) -> None:
    """No feature entirely NULL; no infinite number anywhere (XGBoost refuses them)."""
    empty = [name for name, count in zip(columns.feature_names, non_null, strict=True) if count == 0]
    if empty:
        raise DataError(f"column {empty[0]!r} is entirely NULL: drop it from 'features'")
    for name, count in zip(columns.names, infinite, strict=True):
        if count:
            raise DataError(f"column {name!r} has {int(count):,} infinite values (or numbers beyond float32's "
                            f"3.4e38): replace them in a view (e.g. NULLIF({quote_column(name)}, 'inf'::FLOAT)) or "
                            "drop the column")
