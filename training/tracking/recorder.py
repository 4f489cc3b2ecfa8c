"""What the training loop tells the outside world about a run: the :class:`RunRecorder` seam.

The loop (:func:`training.job.run_job`) records the run through this protocol only. Two
implementations meet here: :class:`training.tracking.mlflow_recorder.MlflowRecorder` (rank 0 with tracking on)
and :class:`NoRecorder` (other ranks, or tracking off), so the loop has no "is tracking on?"
branches. "Recorder" is the MLflow side on purpose: "tracker" in this project means XGBoost's
Rabit tracker (:mod:`training.collective.cluster`).

The order of calls, and the promise every implementation keeps::

    recorder.check_reachable()            # before any data is fetched: may raise ConfigError
    recorder.start(params)
    xgb.train(..., callbacks=[..., recorder.callback(rounds_done)])
    recorder.log_rows(...); recorder.log_durations(...); recorder.log_dataset(lineage)
    recorder.log_evaluation(report, importance, title, metrics, shap); recorder.describe(text)
    recorder.finish(booster, final_metrics, column_plan, raw_example_rows)   # or recorder.fail(reason)

After :meth:`~RunRecorder.check_reachable` no method raises into training: losing the record
must never cost the model.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from training.evaluation.report import feature_importance
from training.objectives.metrics import metric_text

if TYPE_CHECKING:
    import pyarrow
    import xgboost

    from training.evaluation.contributions import ShapImportance
    from training.evaluation.report import Report
    from training.hyperparameters import Hyperparameters
    from training.read.columns import ColumnPlan
    from training.tracking.lineage import SnowflakeLineage

log = logging.getLogger(__name__)


class RunRecorder(Protocol):
    """Records one training job's run: parameters, per-round metrics, lineage, the model, the outcome."""

    def check_reachable(self) -> None:
        """Fail fast (ConfigError) if the record cannot be kept and the job requires it."""

    def start(self, params: dict[str, Any]) -> None:
        """Open the run with every effective hyperparameter."""

    def callback(self, offset: int = 0) -> xgboost.callback.TrainingCallback:
        """An XGBoost callback recording each round; ``offset`` is the rounds done before a resume."""

    def log_dataset(self, lineage: SnowflakeLineage) -> None:
        """Record where the training rows came from."""

    def log_rows(self, rows_per_host: list[int]) -> None:
        """Record the rows each host trained on."""

    def log_durations(self, durations: dict[str, float]) -> None:
        """Record how long the phases took (``fetch_seconds``, ...)."""

    def log_evaluation(self, report: Report | None, importance: dict[str, dict[str, float]], title: str,
                       metrics: Mapping[str, float], shap: ShapImportance | None = None) -> None:
        """Record the validation evaluation: its headline ``metrics``, its charts and numbers as files
        (the SHAP importance's too, when the job computed one)."""

    def describe(self, text: str) -> None:
        """Set the run's description (what the run is, in one paragraph)."""

    def finish(self, booster: xgboost.Booster, final_metrics: dict[str, float], plan: ColumnPlan,
               example: pyarrow.Table | None) -> None:
        """Close the run with the final metrics and the model."""

    def fail(self, message: str) -> None:
        """Close the run as failed with the one-line ``message``."""


class NoRecorder:
    """Records nothing: the recorder of hosts other than the leader, and of jobs with tracking off."""

    def check_reachable(self) -> None:
        return None

    def start(self, params: dict[str, Any]) -> None:
        return None

    def callback(self, offset: int = 0) -> xgboost.callback.TrainingCallback:
        """XGBoost's base callback, which does nothing each round."""
        import xgboost as xgb

        return xgb.callback.TrainingCallback()

    def log_dataset(self, lineage: SnowflakeLineage) -> None:
        return None

    def log_rows(self, rows_per_host: list[int]) -> None:
        return None

    def log_durations(self, durations: dict[str, float]) -> None:
        return None

    def log_evaluation(self, report: Report | None, importance: dict[str, dict[str, float]], title: str,
                       metrics: Mapping[str, float], shap: ShapImportance | None = None) -> None:
        return None

    def describe(self, text: str) -> None:
        return None

    def finish(self, booster: xgboost.Booster, final_metrics: dict[str, float], plan: ColumnPlan,
               example: pyarrow.Table | None) -> None:
        return None

    def fail(self, message: str) -> None:
        return None


NO_RECORDER = NoRecorder()
"""The shared do-nothing recorder (it holds no state)."""


def record_evaluation(recorder: RunRecorder, booster: xgboost.Booster, report: Report | None,
                      columns: ColumnPlan, hps: Hyperparameters, final: dict[str, float], table: str, hosts: int,
                      rows: int, shap: ShapImportance | None = None) -> None:
    """The leader's record of the evaluation (headline metrics, charts, importance by gain and by SHAP) and
    the run's description."""
    headline = {f"validation-{k}": v for k, v in (report.scalars if report else {}).items()
                if f"validation-{k}" not in final and math.isfinite(v)}
    if headline:
        log.info("evaluation: %s", ", ".join(f"{k} {metric_text(v)}" for k, v in headline.items()))
    importance = feature_importance(booster, columns.xgboost_feature_names, columns.feature_names, linear=hps.linear)
    title = f"{table}, {hps['objective']}, {hosts} host(s)"
    recorder.log_evaluation(report, importance, title, headline, shap)
    first = f"validation-{hps.eval_metrics[0]}"
    best = f"{first} {metric_text(final[first])}" if first in final else ""
    recorder.describe(f"XGBoost {hps['objective']} on Snowflake table {table}: {rows:,} rows read by {hosts} "
                      f"host(s), {booster.num_boosted_rounds()} rounds" + (f"; {best}" if best else "") + ".")
