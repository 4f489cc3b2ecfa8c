"""What happens after each boosting round, on every host, in one fixed order: the one callback.

XGBoost 3.0 keeps its callbacks in a ``set`` (``CallbackContainer``), so their order each round
follows object addresses and differs from one process to the next; and it stops calling them
in a round as soon as one returns True. Two callbacks that each talk to the collective would
therefore pair the hosts' calls wrongly (one host's early-stopping verdict reduced with
another's stop flag). So ``xgb.train`` gets exactly one callback, :class:`RoundOwner`, which
does a round's steps itself, always in this order:

1. record the round's metrics (the run recorder: MLflow on the leader);
2. log the round line (the leader; the metrics are all-reduced, so every host has the same);
3. XGBoost's own early stopping judges the round, on this host alone (no collective call);
4. **one** all-reduce of every host's view: the early-stopping verdict and, per host, whether
   it received SIGTERM. Every host branches on that shared answer only;
5. the leader writes a checkpoint (every ``checkpoint_interval`` rounds, and when stopping on a
   signal).

Before it, in the same round and in a fixed order, XGBoost all-reduces each evaluation metric
(``xgboost.callback._allreduce_metric``), and the job's own metrics all-reduce inside
``custom_metric``: both are recorded in the collective ledger (:mod:`training.collective.ledger`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

from training.collective.cluster import Cluster, allreduce_max
from training.model.booster import embed_plan
from training.objectives.metrics import metric_text
from training.read.columns import ColumnPlan
from training.train.checkpoints import StopFlag, save_checkpoint

log = logging.getLogger(__name__)

TRAIN, VALIDATION = "train", "validation"
"""The evaluation sets' names: the round lines' ``train-rmse``/``validation-rmse`` that tuning reads."""


@dataclass(frozen=True)
class EarlyStop:
    """Early stopping's settings: stop once ``metric`` on ``data`` has not improved for ``rounds`` rounds."""

    rounds: int
    metric: str
    maximize: bool
    data: str = VALIDATION


def log_round(round_number: int, evals_log: Any) -> None:
    """``[round]\\ttrain-rmse:...\\tvalidation-rmse:...``: the line the tuner's regexes read."""
    parts = [f"{data}-{metric}:{metric_text(values[-1])}" for data, metrics in evals_log.items()
             for metric, values in metrics.items()]
    log.info("[%d]\t%s", round_number, "\t".join(parts))


class RoundOwner(xgb.callback.TrainingCallback):
    """The only callback ``xgb.train`` gets: each round's steps in a fixed order (see the module docstring).

    After training, :attr:`stopped_at` is the round a signal stopped training after (None if none
    did) and :attr:`signalled` the hosts that received it: the same on every host. A signal in the
    round early stopping ends training counts for nothing: training is complete. :attr:`saved_at`
    is the last round the leader saved a checkpoint after (None on other hosts).
    """

    def __init__(self, cluster: Cluster, stop: StopFlag, columns: ColumnPlan, offset: int,
                 checkpoint_dir: Path | None, checkpoint_interval: int, record: xgb.callback.TrainingCallback,
                 early_stop: EarlyStop | None = None) -> None:
        super().__init__()
        self.cluster, self.stop, self.columns, self.offset = cluster, stop, columns, offset
        self.checkpoint_dir, self.checkpoint_interval, self.record = checkpoint_dir, checkpoint_interval, record
        self.early = None if early_stop is None else xgb.callback.EarlyStopping(
            rounds=early_stop.rounds, metric_name=early_stop.metric, data_name=early_stop.data,
            maximize=early_stop.maximize)
        self.stopped_at: int | None = None
        self.signalled: tuple[str, ...] = ()
        self.saved_at: int | None = None

    def before_training(self, model: Any) -> Any:
        embed_plan(model, self.columns)  # before the first round: every checkpoint carries the plan
        model = self.record.before_training(model)
        return self.early.before_training(model) if self.early else model

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        rounds = self.offset + epoch + 1
        self.record.after_iteration(model, epoch, evals_log)  # it never asks to stop
        if self.cluster.leader:
            log_round(self.offset + epoch, evals_log)
        judged = bool(self.early.after_iteration(model, epoch, evals_log)) if self.early else False
        early, signalled = self._agree(judged, rounds)
        if signalled and not early:
            self.signalled, self.stopped_at = signalled, rounds
        if self.checkpoint_dir is not None and self.cluster.leader and (
                self.stopped_at == rounds or rounds % self.checkpoint_interval == 0):
            self._checkpoint(model, rounds)
        return early or self.stopped_at == rounds

    def _checkpoint(self, model: Any, rounds: int) -> None:
        """The leader's checkpoint; a failure to write it is a warning, never the leader leaving alone
        (the other hosts would wait in the next round's collective calls until the timeout)."""
        try:
            path = save_checkpoint(model, self.checkpoint_dir, rounds)  # type: ignore[arg-type]
        except OSError as err:
            log.warning("could not save the checkpoint after round %d (%s: %s): training goes on; a restart "
                        "resumes from the last checkpoint saved", rounds, type(err).__name__, err.strerror or err)
            return
        self.saved_at = rounds
        log.info("checkpoint saved after round %d: %s", rounds, path.name)

    def after_training(self, model: Any) -> Any:
        model = self.early.after_training(model) if self.early else model
        return self.record.after_training(model)

    def _agree(self, judged: bool, rounds: int) -> tuple[bool, tuple[str, ...]]:
        """Every host's early-stopping verdict and signal in one all-reduce: (stop early, hosts signalled).

        The ledger names the call with its round, so a host a round ahead of the others shows there.
        """
        view = np.zeros(1 + self.cluster.size, dtype=np.int32)
        view[0] = int(judged)
        view[1 + self.cluster.rank] = int(self.stop.is_set())
        agreed = allreduce_max(view, self.cluster, f"round {rounds}: stop verdict")
        return bool(agreed[0]), tuple(host for host, flag in zip(self.cluster.hosts, agreed[1:], strict=True) if flag)
