"""One parent run per tuning job, elected by its trials, and the best trial written to it.

No launcher may be around to create the parent (a SageMaker Pipeline can start the tuning job),
and trials start in parallel, so the trials agree among themselves through the tracking store:

1. :func:`elect_parent` (when a trial starts): search for the parent by tag; if there is none,
   create one, wait :data:`PARENT_SETTLE_SECONDS` and search again. Every trial keeps the oldest
   candidate (ties broken by run id); a trial whose own candidate lost deletes it.
2. :func:`update_parent` (when a trial finishes): check the winner again and re-parent this run
   if it raced onto a duplicate anyway, then recompute the best child from all children and
   write it to the parent. Recomputing (instead of compare-and-set) makes concurrent finishes
   converge: the last trial to finish sees every child.

:func:`best_trial` is the one definition of "best" (highest for ``auc``-like metrics, lowest
otherwise); ``launch/registry.py`` uses it to register a tuning job's best model. Every function
takes an ``MlflowClient``; mlflow itself is imported only inside functions.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from training import __version__
from training.objectives.metrics import maximized
from training.tracking.mlflow_client import (
    PARENT_RUN_TAG,
    RUN_NAME_TAG,
    TAG_JOB_NAME,
    TAG_TUNING_JOB,
    TrackingError,
    quote,
    xgboost_metric_name,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

_logger = logging.getLogger(__name__)

TAG_TUNING_PARENT = "sagemaker.tuning_parent"
"""On the tuning parent run only: the tuning job's name (how trials find their parent)."""
TAG_BEST_RUN_ID = "best_trial_run_id"
TAG_BEST_JOB_NAME = "best_trial_job_name"
TAG_OBJECTIVE_METRIC = "objective_metric"
"""On the parent: the metric that picked the best trial (e.g. ``validation-rmse``)."""
PARENT_SETTLE_SECONDS = 2.0
"""How long a trial that created a tuning parent waits before checking for duplicates; must exceed
the time between a trial's search and its create (milliseconds) for parallel trials to agree."""
def best_trial(runs: Iterable[Run], metric: str) -> Run | None:
    """The run with the best value of ``metric``, among those that logged it; None if none did."""
    scored = [run for run in runs if metric in run.data.metrics]
    if not scored:
        return None
    pick = max if maximized(xgboost_metric_name(metric)) else min
    return pick(scored, key=lambda run: run.data.metrics[metric])


def find_parent(client: MlflowClient, experiment_id: str, tuning_job: str) -> Run | None:
    """The parent run every trial agrees on (the oldest candidate), or None if there is none yet."""
    candidates = _candidates(client, experiment_id, tuning_job)
    return _oldest(candidates) if candidates else None


def trials(client: MlflowClient, experiment_id: str, parent_run_id: str, *, finished_only: bool = False) -> list[Run]:
    """The child runs of ``parent_run_id`` (only FINISHED ones if ``finished_only``)."""
    status = " and attributes.status = 'FINISHED'" if finished_only else ""
    return list(client.search_runs([experiment_id], max_results=5000,
                                   filter_string=f"tags.`{PARENT_RUN_TAG}` = '{quote(parent_run_id)}'{status}"))


def elect_parent(client: MlflowClient, experiment_id: str, tuning_job: str) -> str:
    """The run id of the one parent run of ``tuning_job``, created by whichever trial gets there first."""
    candidates = _candidates(client, experiment_id, tuning_job)
    if candidates:
        return _settled_winner(client, experiment_id, tuning_job, candidates, created=None)
    created = _create_parent(client, experiment_id, tuning_job)
    return _settled_winner(client, experiment_id, tuning_job, [], created=created)


def update_parent(client: MlflowClient, experiment_id: str, tuning_job: str, run_id: str, parent_run_id: str,
                  metric: str) -> str:
    """Re-parent ``run_id`` if needed, then point the parent at its best child so far; return the parent's id.

    The metric ``best-<metric>`` is logged with step = the number of trials compared, so MLflow's
    "latest value" is the most complete one whatever order concurrent writes land in.
    """
    parent = _reconcile(client, experiment_id, tuning_job, run_id, parent_run_id)
    children = trials(client, experiment_id, parent)
    best = best_trial(children, metric)
    if best is not None:
        compared = sum(metric in run.data.metrics for run in children)
        _log_best(client, parent, metric, best, compared)
    return parent


def _candidates(client: MlflowClient, experiment_id: str, tuning_job: str) -> list[Run]:
    return list(client.search_runs([experiment_id], max_results=100,
                                   filter_string=f"tags.`{TAG_TUNING_PARENT}` = '{quote(tuning_job)}'"))


def _settled_winner(client: MlflowClient, experiment_id: str, tuning_job: str, seen: list[Run],
                    created: str | None) -> str:
    """Wait until the newest candidate is :data:`PARENT_SETTLE_SECONDS` old, then keep the oldest."""
    newest = max((r.info.start_time for r in seen), default=0)
    wait = PARENT_SETTLE_SECONDS - (time.time() * 1000 - newest) / 1000 if seen else PARENT_SETTLE_SECONDS
    if created is not None or wait > 0:
        time.sleep(max(0.0, wait))
        seen = _candidates(client, experiment_id, tuning_job)
    winner = str(_oldest(seen).info.run_id) if seen else created
    if created is not None and winner != created:
        client.delete_run(created)
        _logger.info("tuning parent %s already created by another trial; removed duplicate %s", winner, created)
    if winner is None:
        raise TrackingError("the tuning parent run vanished while it was being created")
    return winner


def _oldest(runs: list[Run]) -> Run:
    return min(runs, key=lambda r: (r.info.start_time, r.info.run_id))


def _create_parent(client: MlflowClient, experiment_id: str, tuning_job: str) -> str:
    tags = {RUN_NAME_TAG: tuning_job, TAG_TUNING_PARENT: tuning_job, TAG_TUNING_JOB: tuning_job,
            "version.training": __version__}
    run = client.create_run(experiment_id, tags=tags, run_name=tuning_job)
    return str(run.info.run_id)


def _reconcile(client: MlflowClient, experiment_id: str, tuning_job: str, run_id: str, parent_run_id: str) -> str:
    """The parent every trial agrees on now; re-parents ``run_id`` if it raced onto a duplicate."""
    found = find_parent(client, experiment_id, tuning_job)
    winner = str(found.info.run_id) if found is not None else parent_run_id
    if winner != parent_run_id:
        client.set_tag(run_id, PARENT_RUN_TAG, winner)
    return winner


def _log_best(client: MlflowClient, parent: str, metric: str, best: Run, compared: int) -> None:
    from mlflow.entities import Metric, RunTag

    now = int(time.time() * 1000)
    client.log_batch(
        parent,
        metrics=[Metric(f"best-{metric}", best.data.metrics[metric], now, compared)],
        tags=[RunTag(TAG_BEST_RUN_ID, best.info.run_id),
              RunTag(TAG_BEST_JOB_NAME, best.data.tags.get(TAG_JOB_NAME, "")),
              RunTag(TAG_OBJECTIVE_METRIC, metric)],
    )
    client.set_terminated(parent, "FINISHED")
