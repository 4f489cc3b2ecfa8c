"""One training job on one host, told as its stages: read → agree and check → matrices → train →
evaluate → save and record.

Every host runs :func:`run_job` with the same hyperparameters; the hosts differ only in rank.
The leader (rank 0) logs summaries, writes checkpoints and the model, and talks to MLflow. Each
stage lives in its sub-package: :mod:`training.read`, :mod:`training.collective`,
:mod:`training.train`, :mod:`training.evaluation`, :mod:`training.model`, :mod:`training.tracking`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import xgboost as xgb

from training import __version__
from training.collective.cluster import Cluster, collective, collective_errors, from_leader, gather
from training.contract import MODEL_FILE
from training.errors import Interrupted
from training.hyperparameters import Hyperparameters
from training.model.booster import embed_plan
from training.objectives.metrics import final_line
from training.read.checks import agree_vocabularies, check_totals
from training.read.columns import ColumnPlan
from training.read.credentials import SignIn
from training.read.reader import Reader
from training.read.snowflake import DEFAULT_TIMEOUTS, SnowflakeTimeouts
from training.tracking.lineage import lineage_of
from training.tracking.recorder import NO_RECORDER, RunRecorder, record_evaluation
from training.train.boosting import Trained, custom_metric, final_metrics, train
from training.train.checkpoints import StopFlag, write_model
from training.train.checks import check_classes, check_hosts, check_plan
from training.train.dataset import CACHE_DIR, build_matrices
from training.train.evaluate import evaluate, shap_importance
from training.train.memory import choose_matrices

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
    """Where this host writes its collective ledger (:mod:`training.collective.ledger`); None: in memory only."""


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
    _log_start(hps, cluster)
    check_hosts(hps, cluster)
    recorder.check_reachable()  # before any data is fetched
    recorder.start(dict(hps.values))
    creds = spec.sign_in.credentials()
    reader = Reader(creds, hps.read_options(), cluster, spec.spill_dir, spec.snowflake_timeouts, spec.checkpoint_dir,
                    spec.job_name)
    # read: the plan on every host, then what each read mode fetches before the hosts join
    plan, shard, scan = reader.before_joining(lambda columns: check_plan(hps, columns))
    with collective_errors(cluster), collective(cluster, hps["tracker_port"], hps["collective_timeout"],
                                                spec.ledger_dir):
        share = None
        if shard is None:
            plan, shard, share = reader.joined(plan, scan)
        durations = {"fetch_seconds": shard.fetch_seconds}
        # agree and check: the cap first (a host that passed it stopped fetching, so its other counts are partial)
        columns = agree_vocabularies(shard, plan, cluster, hps["max_categories"],
                                     lambda name: reader.count_distinct(plan, name))
        rows_per_host = check_totals(shard, plan, cluster, hps["null_target"], share)
        check_classes(columns, hps)
        query_ids = gather(shard.query_ids, cluster, "read: query ids")
        # matrices: in memory, or external memory on every host as soon as one host's would not fit
        outputs = len(columns.classes or []) if hps.multiclass else 1
        choice = choose_matrices(shard.rows, len(columns.features), outputs, cluster, max_bin=hps["max_bin"],
                                 budget_mb=hps["memory_budget_mb"], linear=hps.linear)
        started = time.monotonic()
        dtrain, dvalid = build_matrices(shard.train_path, shard.validation_path, columns, hps["max_bin"],
                                        hps["nthread"], spec.spill_dir / CACHE_DIR if choice.external else None,
                                        linear=hps.linear)
        durations["build_seconds"] = time.monotonic() - started
        # train
        started = time.monotonic()
        trained = train(hps, columns, dtrain, dvalid, cluster, stop, spec.checkpoint_dir, recorder.callback)
        booster, rounds = trained.booster, trained.rounds
        durations["train_seconds"] = time.monotonic() - started
        final = final_metrics(booster, dtrain, dvalid, custom_metric(hps, columns, cluster))
        # every host reaches the same verdict: every host's signal was all-reduced after each round
        interrupted = bool(trained.signalled) and rounds < hps["num_round"]
        if interrupted:  # only the leader knows whether its checkpoint was written
            saved_at = from_leader(lambda: trained.saved_at, cluster, "checkpoint: saved at the stop")
        # evaluate
        report = None if interrupted else evaluate(booster, dvalid, shard.validation_path, columns,
                                                   hps["objective"], cluster)
        started = time.monotonic()
        shap = None if interrupted else shap_importance(booster, shard.validation_path, columns, outputs,
                                                        hps["shap_rows"], cluster)
        if shap is not None:
            durations["shap_seconds"] = time.monotonic() - started
    if interrupted:
        _stop_interrupted(spec, trained, columns, saved_at)
    # save and record
    if cluster.leader:  # the metrics are all-reduced: every host has the same; one line per job
        log.info("%s", final_line(final, rounds))
    embed_plan(booster, columns)
    model_path = _save_model(booster, spec.model_dir) if cluster.leader else None
    recorder.log_rows(rows_per_host)
    recorder.log_durations(durations)
    recorder.log_dataset(lineage_of(creds, plan, columns, shard, query_ids, sum(rows_per_host), hps["read_mode"]))
    if cluster.leader:
        record_evaluation(recorder, booster, report, columns, hps, final, plan.table, cluster.size, sum(rows_per_host),
                          shap)
    recorder.finish(booster, final, columns, shard.example)
    return JobResult(final, rounds, sum(rows_per_host), model_path)


def _log_start(hps: Hyperparameters, cluster: Cluster) -> None:
    """Who this host is; the leader's notes on the hyperparameters."""
    log.info("xgboost %s, project %s, host %s is rank %d of %d", xgb.__version__, __version__,
             cluster.current_host, cluster.rank, cluster.size)
    for note in hps.notes if cluster.leader else ():
        log.warning("%s", note)
    if cluster.leader and hps["tree_method"] != "hist":
        log.warning("tree_method=%s trains as hist: the job builds XGBoost's QuantileDMatrix from the spilled "
                    "shard (bounded memory), which trains with hist only", hps["tree_method"])


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


def _save_model(booster: xgb.Booster, model_dir: Path) -> Path:
    path = write_model(booster, model_dir / MODEL_FILE)
    log.info("model saved to %s", path)
    return path
