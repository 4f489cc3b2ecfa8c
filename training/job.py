"""One training job on one host: credentials, shard, matrices, collective training, model.

Every host runs :func:`run_job` with the same hyperparameters; the hosts differ only in rank.
The leader (rank 0) logs summaries, writes checkpoints and the model, and talks to MLflow.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

from training import __version__
from training.contract import MODEL_FILE
from training.errors import ClusterError, DataError, HyperparameterError, Interrupted
from training.evaluation import report as evaluation
from training.hyperparameters import SURVIVAL_COX, Hyperparameters, constraints, maximized
from training.model.booster import PLAN_ATTRIBUTE, embed_plan
from training.objectives.labels import LabelRange
from training.read import read_record, snapshot
from training.read.columns import ColumnPlan
from training.read.credentials import SignIn, SnowflakeCredentials
from training.read.names import resolve_table
from training.read.scan import ScanResult, ScanShare, fetch_share, open_scan, shares
from training.read.shards import Shard, ShardPlan, fetch_shard, plan_shard
from training.read.snowflake import (
    DEFAULT_TIMEOUTS,
    SnowflakeTimeouts,
    connect,
    count_distinct,
    describe_table,
    quote_column,
    table_parts,
)
from training.read.vocabulary import merge_vocabularies
from training.tracking.lineage import SnowflakeLineage
from training.tracking.recorder import NO_RECORDER, RunRecorder
from training.train.checkpoints import StopFlag, resume_point, write_model
from training.train.cluster import (
    Cluster,
    agree,
    allreduce_max,
    allreduce_sum,
    broadcast,
    collective,
    error_summary,
    from_leader,
    gather,
)
from training.train.dataset import CACHE_DIR, build_matrices, matrix_batches
from training.train.memory import choose_matrices
from training.train.rounds import TRAIN, VALIDATION, EarlyStop, RoundOwner, metric_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobSpec:
    """Everything a host needs to run its part of the job (built by the container from /opt/ml)."""

    hyperparameters: Hyperparameters
    cluster: Cluster
    model_dir: Path
    spill_dir: Path
    checkpoint_dir: Path | None = None
    sign_in: SignIn = field(default_factory=SignIn)
    job_name: str = ""
    """The training job's name (SageMaker's ``TRAINING_JOB_NAME``): a restart re-opens its first read."""
    snowflake_timeouts: SnowflakeTimeouts = DEFAULT_TIMEOUTS
    ledger_dir: Path | None = None
    """Where this host writes its collective ledger (:mod:`training.train.ledger`); None: in memory only."""


@dataclass
class JobResult:
    """What a finished job produced (the model path only on the leader)."""

    final_metrics: dict[str, float]
    rounds: int
    rows_total: int
    model_path: Path | None


def run_job(spec: JobSpec, stop: StopFlag | None = None, recorder: RunRecorder = NO_RECORDER) -> JobResult:
    """Train this host's part of the job; raise a :class:`~training.errors.UserError` on bad input.

    ``recorder`` keeps the run's record (MLflow on the leader when tracking is on, see
    :mod:`training.tracking.recorder`); it is checked before any data is fetched.
    """
    hps, cluster = spec.hyperparameters, spec.cluster
    stop = stop or StopFlag()
    log.info("xgboost %s, project %s, host %s is rank %d of %d", xgb.__version__, __version__,
             cluster.current_host, cluster.rank, cluster.size)
    for note in hps.notes if cluster.leader else ():
        log.warning("%s", note)
    if cluster.leader and hps["tree_method"] != "hist":
        log.warning("tree_method=%s trains as hist: the job builds XGBoost's QuantileDMatrix from the spilled "
                    "shard (bounded memory), which trains with hist only", hps["tree_method"])
    _check_hosts(hps, cluster)
    recorder.check_reachable()  # before any data is fetched
    recorder.start(dict(hps.values))
    creds = spec.sign_in.credentials()
    plan, shard, scan = _read_before_joining(creds, spec, cluster)
    with _collective_errors(cluster), collective(cluster, hps["tracker_port"], hps["collective_timeout"],
                                                 spec.ledger_dir):
        share = None
        if shard is None:
            plan, shard, share = _read_joined(creds, spec, cluster, plan, scan)
        durations = {"fetch_seconds": shard.fetch_seconds}
        # the cap first: a host that passed it stopped fetching, so its other counts are partial
        columns = _agree_vocabularies(shard, plan, cluster, hps, lambda name: _count_distinct(creds, plan, name, spec))
        rows_per_host = _check_totals(shard, plan, cluster, hps, share)
        _check_classes(columns, hps)
        query_ids = gather(shard.query_ids, cluster, "read: query ids")
        outputs = len(columns.classes or []) if hps.multiclass else 1
        choice = choose_matrices(shard.rows, len(columns.features), outputs, hps, cluster)
        started = time.monotonic()
        dtrain, dvalid = build_matrices(shard.train_path, shard.validation_path, columns, hps["max_bin"],
                                        hps["nthread"], spec.spill_dir / CACHE_DIR if choice.external else None,
                                        linear=hps.linear)
        durations["build_seconds"] = time.monotonic() - started
        started = time.monotonic()
        trained = _train(spec, columns, dtrain, dvalid, cluster, stop, recorder)
        booster, rounds = trained.booster, trained.rounds
        durations["train_seconds"] = time.monotonic() - started
        final = _final_metrics(booster, dtrain, dvalid, _custom_metric(hps, columns, cluster))
        # every host reaches the same verdict: every host's signal was all-reduced after each round
        interrupted = bool(trained.signalled) and rounds < hps["num_round"]
        if interrupted:  # only the leader knows whether its checkpoint was written
            saved_at = from_leader(lambda: trained.saved_at, cluster, "checkpoint: saved at the stop")
        report = None if interrupted else _evaluate(booster, dvalid, shard.validation_path, columns, hps, cluster)
    if interrupted:
        _stop_interrupted(spec, trained, columns, saved_at)
    if cluster.leader:  # the metrics are all-reduced: every host has the same; one line per job
        log.info("final metrics: %s rounds:%d", " ".join(f"{k}:{metric_text(v)}" for k, v in final.items()), rounds)
    embed_plan(booster, columns)
    model_path = _save_model(booster, spec.model_dir) if cluster.leader else None
    recorder.log_rows(rows_per_host)
    recorder.log_durations(durations)
    recorder.log_dataset(_lineage(creds, plan, columns, shard, query_ids, sum(rows_per_host), hps["read_mode"]))
    if cluster.leader:
        _record_evaluation(recorder, booster, report, columns, hps, final, plan.table, cluster.size,
                           sum(rows_per_host))
    recorder.finish(booster, final, columns, shard.example)
    return JobResult(final, rounds, sum(rows_per_host), model_path)


def _stop_interrupted(spec: JobSpec, trained: Trained, columns: ColumnPlan, saved_at: int | None) -> None:
    """Raise the stop's one line: who got the signal, after which round, and what a restart resumes from."""
    hps, rounds = spec.hyperparameters, trained.rounds
    model = ""
    if hps["save_model_on_termination"] == "true" and spec.cluster.leader:
        embed_plan(trained.booster, columns)
        model = f"; the model so far is in {_save_model(trained.booster, spec.model_dir)} (save_model_on_termination)"
    if spec.checkpoint_dir is None:
        resume = "no checkpoint location is configured, so a restart trains from the start"
    elif saved_at == rounds:
        resume = "a checkpoint was saved: restart the job with the same checkpoint location to resume"
    else:
        since = f"the one after round {saved_at}" if saved_at else "none: a restart trains from the start"
        resume = f"its checkpoint could not be saved (see the leader's log); the last saved is {since}"
    hosts = f"host{'s' if len(trained.signalled) > 1 else ''} {', '.join(trained.signalled)}"
    raise Interrupted(f"stopped by SIGTERM (received by {hosts}) after round {rounds} of {hps['num_round']}; "
                      f"{resume}{model}")


def _read_before_joining(creds: SnowflakeCredentials, spec: JobSpec,
                         cluster: Cluster) -> tuple[ShardPlan, Shard | None, ScanResult | None]:
    """Plan the read on every host; then, before the hosts join, what each mode reads alone.

    ``hash``: every host fetches its own shard (as the hosts finish at different times, the join
    waits for the slowest); with ``snapshot=job_start`` the leader only asks Snowflake for the time
    here, and the hosts fetch once they have joined (:func:`_read_joined`). ``scan``: the leader
    runs the job's one query (the join waits for it only); its result batches are dealt once the
    hosts have joined.
    """
    hps = spec.hyperparameters
    timeouts = spec.snowflake_timeouts
    conn = connect(creds, hps["query_tag"], timeouts)
    try:
        table, table_sql, columns = resolve_table(hps.readings["table"], lambda sql: describe_table(conn, sql),
                                                  hps["table"])
        plan = plan_shard(columns, hps, table_sql, table)
        _check_plan(hps, plan.columns)
        kinds = Counter(c.kind for c in plan.columns.features)
        log.info("reading %s as host %d of %d, read_mode=%s, snapshot=%s (%d features: %s; target %s as %s)",
                 plan.table, cluster.rank, cluster.size, hps["read_mode"], hps["snapshot"], len(plan.features),
                 ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())), plan.target, plan.columns.label.kind)
        if hps["read_mode"] == "scan":
            if cluster.leader:
                _scan_notes(hps)
            return plan, None, open_scan(conn, plan, hps, spec.checkpoint_dir, spec.job_name) if cluster.leader else None
        if hps["snapshot"] == snapshot.JOB_START:
            # the leader picks the time; every host learns it once joined, then fetches
            return replace(plan, snapshot_at=_job_start_time(conn, plan, spec) if cluster.leader else ""), None, None
    finally:
        conn.close()
    shard = fetch_shard(lambda: connect(creds, hps["query_tag"], timeouts), plan, cluster.rank, cluster.size, hps,
                        spec.spill_dir)
    return plan, shard, None


def _job_start_time(conn: Any, plan: ShardPlan, spec: JobSpec) -> str:
    """``snapshot=job_start``'s time (leader): Snowflake's now, or, when this job restarts (spot), its
    first start's, so the hosts read the snapshot its checkpoints were trained on."""
    job_name, now = spec.job_name, datetime.now(timezone.utc)
    digest = read_record.query_digest(plan.query_template, plan.parameters(spec.hyperparameters, 1, 0))
    record = read_record.load(spec.checkpoint_dir, job_name, digest, now)
    if record is not None and record.snapshot_at:
        log.info("reading at this job's first snapshot, %s, for this restart", record.snapshot_at)
        return record.snapshot_at
    moment = snapshot.current_time(conn)
    read_record.save(spec.checkpoint_dir, read_record.ReadRecord(job_name, digest, now.isoformat(timespec="seconds"),
                                                                 snapshot_at=moment))
    return moment


def _scan_notes(hps: Hyperparameters) -> None:
    """The leader's notes on hyperparameters that read_mode=scan does not need."""
    if hps["fetch_pages"] > 1:
        log.warning("fetch_pages=%d applies to read_mode=hash only: scan reads its one result chunk by "
                    "chunk, %d at a time per host (fetch_threads)", hps["fetch_pages"], hps["fetch_threads"])
    if hps["snapshot"] == snapshot.JOB_START:
        log.info("snapshot=job_start: read_mode=scan reads one snapshot already (its one query); no AT clause")


def _read_joined(creds: SnowflakeCredentials, spec: JobSpec, cluster: Cluster, plan: ShardPlan,
                 scan: ScanResult | None) -> tuple[ShardPlan, Shard, ScanShare | None]:
    """What each host reads once the hosts have joined: its share of the leader's scan, or (``hash``
    with ``snapshot=job_start``) its own shard at the time the leader picked."""
    hps = spec.hyperparameters
    if hps["read_mode"] == "scan":
        share = _deal(scan, cluster)
        # a host whose download fails fails every host at once, with its reason
        return plan, agree(lambda: fetch_share(share, plan, hps, spec.spill_dir, cluster.leader), cluster,
                           "read: share fetched"), share
    plan = replace(plan, snapshot_at=broadcast(plan.snapshot_at if cluster.leader else None, cluster,
                                               "read: snapshot time"))
    log.info("reading shard %d of %d at snapshot %s (snapshot=job_start, the leader's Snowflake time)",
             cluster.rank, cluster.size, plan.snapshot_at)
    shard = agree(lambda: fetch_shard(lambda: connect(creds, hps["query_tag"], spec.snowflake_timeouts), plan,
                                      cluster.rank, cluster.size, hps, spec.spill_dir), cluster, "read: shard fetched")
    return plan, shard, None


def _deal(scan: ScanResult | None, cluster: Cluster) -> ScanShare:
    """This host's share of the leader's result batches (sent through the collective, never logged)."""
    # One broadcast of every share; each host keeps its own (the batches are small: URLs and headers).
    return broadcast(shares(scan, cluster.size) if cluster.leader else None, cluster, "read: deal")[cluster.rank]


class _collective_errors:
    """Turns a broken collective (a peer died or timed out) into a ClusterError with the fix.

    Only XGBoost errors from its communicator: any other XGBoost error (a check that failed on
    every host alike) keeps its own text and traceback, rather than blaming another host.
    """

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, err: Any, tb: Any) -> bool:
        if (kind is not None and issubclass(kind, xgb.core.XGBoostError) and self.cluster.distributed
                and _COMMUNICATION.search(str(err))):
            first = error_summary(err)
            raise ClusterError(
                f"host {self.cluster.current_host} lost contact with the other hosts ({first}): another host "
                "failed or was stopped; see its log for the cause"
            ) from None
        return False


_COMMUNICATION = re.compile(r"/collective/|\b(ring|poll|socket|connect\w*|tracker|bootstrap\w*|timed? ?out|allreduce|"
                            r"allgather|broadcast|communicat\w*|peer)\b", re.IGNORECASE)
"""What XGBoost's communicator errors say (its source path, ``Ring allreduce ... failed``, ``Poll
timeout``, ``Failed to connect``)."""


def _check_totals(shard: Shard, plan: ShardPlan, cluster: Cluster, hps: Hyperparameters,
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
    rows_train, rows_valid, null_target, null_weight, negative_weight = totals[:5]
    total = rows_train + rows_valid
    if cluster.leader:
        log.info("total rows across %d hosts: %s (train %s, validation %s)", cluster.size, f"{total:,}",
                 f"{rows_train:,}", f"{rows_valid:,}")
    if null_target and hps["null_target"] == "fail":
        raise DataError(f"{null_target:,} rows have a NULL target {plan.target!r}: filter them out in a view, or "
                        "set the hyperparameter null_target=drop to leave them out of training")
    if null_target and cluster.leader:
        log.warning("left out %s rows whose target %s is NULL (null_target=drop)", f"{null_target:,}", plan.target)
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


def _check_hosts(hps: Hyperparameters, cluster: Cluster) -> None:
    """survival:cox trains on one host: XGBoost computes its gradient from each host's own risk sets and
    cannot all-reduce cox-nloglik, so several hosts would fit another model (or fail)."""
    if hps["objective"] == SURVIVAL_COX and cluster.size > 1:
        raise HyperparameterError(f"objective {SURVIVAL_COX} needs every row's risk set on one host (XGBoost "
                                  f"evaluates cox-nloglik on one host only), and the job has {cluster.size} hosts: "
                                  "train it on one host (instance_count = 1)")


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


def _agree_vocabularies(shard: Shard, plan: ShardPlan, cluster: Cluster, hps: Hyperparameters,
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
    vocabularies, over = merge_vocabularies(columns, partials, hps["max_categories"])
    if over:
        name = next(iter(over))
        distinct = over[name] if over[name] is not None else from_leader(lambda: count(name), cluster,
                                                                         "read: distinct count")
        fix = ("use an objective for fewer classes, or group rare classes in a view" if name == plan.target
               else "raise the hyperparameter 'max_categories', or drop the column from 'features'")
        raise DataError(f"column {name!r} has {distinct:,} distinct values, over max_categories="
                        f"{hps['max_categories']:,}: {fix}")
    columns = columns.with_vocabularies(vocabularies)
    # Every host logs the digest of the codes it trains with: equal digests mean equal codes.
    log.info("category codes agreed across %d host(s): %s (digest %s)", cluster.size,
             ", ".join(f"{name} {len(values):,} values" for name, values in vocabularies.items()),
             columns.vocabulary_digest())
    return columns


def _check_classes(columns: ColumnPlan, hps: Hyperparameters) -> None:
    classes = columns.classes
    if classes is None:
        return
    objective, label, shown = hps["objective"], columns.label.name, ", ".join(map(str, classes[:10]))
    if len(classes) < 2:
        raise DataError(f"target {label!r} has {len(classes)} distinct value(s) ({shown}): a classifier needs at "
                        "least two classes; check the table or the target")
    if not hps.multiclass and len(classes) != 2:
        raise DataError(f"target {label!r} has {len(classes)} classes ({shown}), but objective {objective!r} needs "
                        "exactly 2: use objective=multi:softprob")
    if hps.multiclass and hps["num_class"] and hps["num_class"] != len(classes):
        raise DataError(f"hyperparameter 'num_class' is {hps['num_class']}, but target {label!r} has "
                        f"{len(classes)} classes ({shown}): set num_class={len(classes)} or leave it out")


def _check_plan(hps: Hyperparameters, columns: ColumnPlan) -> None:
    """What the hyperparameters ask of the columns, checked before any row is fetched."""
    _params(hps, columns)  # the constraints name features of this plan
    text = [c.name for c in columns.features if c.needs_vocabulary]
    if hps.linear and text:
        raise DataError(f"booster=gblinear cannot use text column {text[0]!r} (XGBoost's linear booster has no "
                        "categories): drop the text columns from 'features', or use booster=gbtree")


def _params(hps: Hyperparameters, columns: ColumnPlan) -> dict[str, Any]:
    """``xgb.train``'s parameters: the hyperparameters, plus what the data decides (``num_class``, the
    constraints' feature positions)."""
    params = hps.xgboost_params()
    if hps.multiclass:
        params["num_class"] = len(columns.classes or [])
    monotone = constraints.resolve_monotone(hps["monotone_constraints"], columns.feature_names)
    interaction = constraints.resolve_interaction(hps["interaction_constraints"], columns.feature_names)
    if monotone:
        params["monotone_constraints"] = monotone
    if interaction:
        params["interaction_constraints"] = interaction
    return params


def _count_distinct(creds: SnowflakeCredentials, plan: ShardPlan, column: str, spec: JobSpec) -> int:
    conn = connect(creds, spec.hyperparameters["query_tag"], spec.snowflake_timeouts)
    try:
        return count_distinct(conn, plan.table_sql, column)
    finally:
        conn.close()


@dataclass(frozen=True)
class Trained:
    """What boosting produced; the same on every host, but ``saved_at``, the leader's last checkpoint."""

    booster: xgb.Booster
    rounds: int
    signalled: tuple[str, ...] = ()
    """The hosts whose SIGTERM stopped training (empty: it ran its rounds, or stopped early)."""
    saved_at: int | None = None


def _train(spec: JobSpec, columns: ColumnPlan, dtrain: Any, dvalid: Any, cluster: Cluster, stop: StopFlag,
           recorder: RunRecorder) -> Trained:
    """The model, its rounds, and the hosts whose stop signal ended training (the same on every host).

    ``xgb.train`` gets one callback, :class:`~training.train.rounds.RoundOwner`: XGBoost runs its
    callbacks in no fixed order, so a round's collective calls have a single owner.
    """
    hps = spec.hyperparameters
    done, model = resume_point(spec.checkpoint_dir, cluster)
    remaining = max(hps["num_round"] - done, 0)
    start = xgb.Booster(model_file=bytearray(model)) if model else None
    if start is not None:
        _check_resumable(start, columns, done)
    if remaining == 0:
        return Trained(start, done, saved_at=done)
    early = None
    if hps["early_stopping_rounds"]:
        first = hps.eval_metrics[0]
        early = EarlyStop(rounds=hps["early_stopping_rounds"], metric=first, data=VALIDATION, maximize=maximized(first))
    owner = RoundOwner(cluster, stop, columns, done, spec.checkpoint_dir, hps["checkpoint_interval"],
                       recorder.callback(done), early)
    booster = xgb.train(_params(hps, columns), dtrain, num_boost_round=remaining, xgb_model=start,
                        evals=[(dtrain, TRAIN), (dvalid, VALIDATION)], callbacks=[owner], verbose_eval=False,
                        custom_metric=_custom_metric(hps, columns, cluster))
    return Trained(booster, owner.stopped_at or booster.num_boosted_rounds(), owner.signalled, owner.saved_at)


def _check_resumable(start: xgb.Booster, columns: ColumnPlan, done: int) -> None:
    """A checkpoint continues only the model of the same columns and category codes.

    Between a stop and its restart the table may have changed (a new category sorts in and shifts
    the codes): continuing the trees with other codes would silently corrupt the model.
    """
    text = start.attr(PLAN_ATTRIBUTE)
    if text is not None and ColumnPlan.from_json(text) != columns:
        raise DataError(f"the checkpoint after round {done} was trained on other columns or category values than "
                        "the table has now: restart the job with an empty checkpoint location to train afresh")


def _custom_metric(hps: Hyperparameters, columns: ColumnPlan, cluster: Cluster) -> Any:
    """The job's own metrics (the built-in algorithm's ``f1``, ``r2``, ...), all-reduced; None if none."""
    if not hps.custom_metrics:
        return None
    return evaluation.custom_metric(hps.custom_metrics, hps["objective"], max(len(columns.classes or []), 2),
                                    lambda a: allreduce_sum(a, cluster, "round: custom metric sums"),
                                    lambda a: allreduce_max(a, cluster, "round: custom metric maxima"),
                                    weighted=columns.weight is not None)


def _final_metrics(booster: xgb.Booster, dtrain: Any, dvalid: Any, custom: Any = None) -> dict[str, float]:
    """The model's metrics on both sets (all-reduced across hosts), e.g. ``validation-rmse``."""
    text = booster.eval_set([(dtrain, TRAIN), (dvalid, VALIDATION)], feval=custom, output_margin=False)
    metrics = {}
    for item in text.split("\t")[1:]:
        name, value = item.rsplit(":", 1)
        metrics[name] = float(value)
    return metrics


def _evaluate(booster: xgb.Booster, dvalid: Any, validation_path: Path, columns: ColumnPlan, hps: Hyperparameters,
              cluster: Cluster) -> evaluation.Report | None:
    """The validation evaluation (every host: two all-reduces), scored by the final model over this
    host's validation matrix and read with its labels from the spilled rows in batches; None for
    objectives without one.

    One prediction over ``dvalid``, not a matrix per batch: building any XGBoost matrix inside the
    collective all-reduces its column count (XGBoost's own, native call), so a matrix per batch
    would make a number of calls that only this host knows (its validation rows) and pair the
    hosts' calls wrongly. Predicting makes no collective call. The predictions are held at once:
    4 bytes per validation row and class, a fraction of the matrix itself (a byte or more per value).
    """
    kind = evaluation.family(hps["objective"])
    if kind is None:
        return None
    classes = len(columns.classes or [])
    names = [str(c) for c in columns.classes or []]
    weighted = columns.weight is not None
    # classifiers: margins, turned into probabilities alike for every binary:*/multi:* objective;
    # regression: the prediction itself (a Poisson or gamma model's margin is a logarithm)
    output = booster.predict(dvalid, output_margin=kind in (evaluation.BINARY, evaluation.MULTICLASS))

    def scored() -> Iterator[evaluation.Scores]:
        start = 0
        for fields in matrix_batches(validation_path, columns):
            rows = len(fields["label"])
            scores = evaluation.probabilities(hps["objective"], output[start:start + rows], classes)
            start += rows
            yield evaluation.Scores.of(fields["label"], scores, fields["weight"] if weighted else None,
                                       fields.get("qid"))

    def batches() -> Iterator[evaluation.Scores]:
        return evaluation.whole_groups(scored())

    return evaluation.evaluate(kind, batches, lambda a: allreduce_sum(a, cluster, "evaluation: sums"),
                               lambda a: allreduce_max(a, cluster, "evaluation: maxima"), names)


def _record_evaluation(recorder: RunRecorder, booster: xgb.Booster, report: evaluation.Report | None,
                       columns: ColumnPlan, hps: Hyperparameters, final: dict[str, float], table: str, hosts: int,
                       rows: int) -> None:
    """The leader's record of the evaluation (headline metrics, charts, importance) and the run's description."""
    headline = {f"validation-{k}": v for k, v in (report.scalars if report else {}).items()
                if f"validation-{k}" not in final and math.isfinite(v)}
    if headline:
        log.info("evaluation: %s", ", ".join(f"{k} {metric_text(v)}" for k, v in headline.items()))
    importance = evaluation.feature_importance(booster, columns.xgboost_feature_names, columns.feature_names,
                                               linear=hps.linear)
    title = f"{table}, {hps['objective']}, {hosts} host(s)"
    recorder.log_evaluation(report, importance, title, headline)
    first = f"validation-{hps.eval_metrics[0]}"
    best = f"{first} {metric_text(final[first])}" if first in final else ""
    recorder.describe(f"XGBoost {hps['objective']} on Snowflake table {table}: {rows:,} rows read by {hosts} "
                      f"host(s), {booster.num_boosted_rounds()} rounds" + (f"; {best}" if best else "") + ".")


def _save_model(booster: xgb.Booster, model_dir: Path) -> Path:
    path = write_model(booster, model_dir / MODEL_FILE)
    log.info("model saved to %s", path)
    return path


def _lineage(creds: SnowflakeCredentials, plan: ShardPlan, columns: ColumnPlan, shard: Shard,
             query_ids: list[str], rows: int, read_mode: str) -> SnowflakeLineage:
    """Where the rows came from, for the run's dataset input (from what the hosts already know).

    The snapshot time is the ``AT`` time the queries read at, or in ``scan`` mode without one, when
    its one query ran; in ``hash`` mode without one, the hosts read at different moments: empty.
    """
    parts = table_parts(plan.table)
    database = parts[-3] if len(parts) == 3 else creds.database
    schema = parts[-2] if len(parts) >= 2 else creds.schema
    return SnowflakeLineage(
        account=creds.account, database=database, schema=schema, table=parts[-1],
        query_template=plan.query_template, query_ids=query_ids, read_at=shard.read_at, rows=rows,
        columns=columns.names, schema_digest=columns.schema_digest(),
        column_types=[c.mlflow_type for c in columns.columns], read_mode=read_mode,
        snapshot_at=plan.snapshot_at or (shard.read_at if read_mode == "scan" else ""),
    )
