"""MLflow tracking for one training job: one run, written by rank 0 only, that never costs a model.

:class:`MlflowRecorder` is the MLflow implementation of :class:`training.tracking.recorder.RunRecorder`;
the training loop calls it on rank 0 only, so other hosts never talk to MLflow. Nothing happens
at import time and ``mlflow`` (seconds to import) is imported only once tracking is on::

    recorder = MlflowRecorder.from_settings(env.tracking, env.job_info())   # NoRecorder when tracking is off

(``env``: the container's :class:`container.env.TrainingEnv`, which reads the job's environment.)

Once :meth:`MlflowRecorder.check_reachable` has passed, no method raises into training: a lost
server is retried with back-off, then logged once, and everything after that is skipped, so
the loop still writes its model file and exits 0 (:mod:`training.tracking.mlflow_client`). Trials of a
tuning job become children of one parent run (:mod:`training.tracking.tuning_parent`). The tracking URI
may be an ``http(s)://`` server, a ``sqlite:``/``file:`` store or a SageMaker managed MLflow ARN
(tracking server or MLflow app; ``sagemaker-mlflow`` signs the requests). See docs/tracking.md.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from training import __version__
from training.contract import (
    MLFLOW_EXPERIMENT,
    MLFLOW_MODEL_NAME,
    REQUIRE_TRACKING_ENV,
    TRACKING_URI_ENV,
)
from training.errors import ConfigError
from training.tracking import tuning_parent
from training.tracking.mlflow_client import (
    PARENT_RUN_TAG,
    RUN_NAME_TAG,
    TAG_JOB_NAME,
    TAG_TUNING_JOB,
    MetricWriter,
    RetryGuard,
    configure_client,
    describe_error,
    mlflow_metric_name,
    package_version,
    quote,
    round_callback,
    round_metrics,
    safe_uri,
    store_errors,
)
from training.tracking.recorder import NO_RECORDER, NoRecorder

if TYPE_CHECKING:
    import pyarrow
    import xgboost
    from mlflow import MlflowClient

    from training.evaluation.contributions import ShapImportance
    from training.evaluation.report import Report
    from training.read.columns import ColumnPlan
    from training.tracking.lineage import SnowflakeLineage

_logger = logging.getLogger(__name__)

OBJECTIVE_HYPERPARAMETER = "_tuning_objective_metric"
"""Added to a tuning trial's hyperparameters by SageMaker tuning (e.g. ``validation:rmse``)."""

TAG_INSTANCE_TYPE = "sagemaker.instance_type"
TAG_INSTANCE_COUNT = "sagemaker.instance_count"
TAG_IMAGE = "sagemaker.image"
TAG_FAILURE = "failure_reason"
DESCRIPTION_TAG = "mlflow.note.content"
SOURCE_NAME_TAG, SOURCE_TYPE_TAG = "mlflow.source.name", "mlflow.source.type"
"""What the MLflow UI shows as the run's "Source": the image the job ran, or ``local``."""
EVALUATION_ARTIFACTS = "evaluation"
"""The run's artifact folder of evaluation charts and numbers (:mod:`training.evaluation.files`)."""

_TRIAL_NAME = re.compile(r"^(?P<tuning>[A-Za-z0-9](?:[A-Za-z0-9-]{0,31}))-\d{3}-[0-9a-f]{8}$")
"""SageMaker names a tuning trial ``<tuning-job-name>-<NNN>-<8 hex>``."""


@dataclass(frozen=True)
class JobInfo:
    """What the run's tags say about the job, read once from what SageMaker gives the container."""

    job_name: str
    instance_type: str
    instance_count: int
    image: str
    tuning_job_name: str | None
    objective_metric: str | None = None  # the tuning objective as a metric name, e.g. "validation-rmse"

    @classmethod
    def of(cls, job_name: str = "", image: str = "", tuning_job_name: str = "",
           resource_config: Mapping[str, Any] | None = None,
           hyperparameters_raw: Mapping[str, Any] | None = None) -> JobInfo:
        """Build from the job's environment's values, ``resourceconfig.json`` and the raw ``hyperparameters.json``.

        A trial of a SageMaker tuning job is recognised by its name ``<tuning-job>-NNN-xxxxxxxx``
        (the service's naming, also when a Pipeline starts the tuning job); local tuning sets
        ``TUNING_JOB_NAME`` explicitly, which wins.
        """
        resources, raw = resource_config or {}, hyperparameters_raw or {}
        job_name = job_name or "local-" + datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        objective = _metric_name(str(raw.get(OBJECTIVE_HYPERPARAMETER, "")).strip('"'))
        return cls(
            job_name=job_name,
            instance_type=str(resources.get("current_instance_type") or "local"),
            instance_count=max(1, len(resources.get("hosts") or [])),
            image=image,
            tuning_job_name=tuning_job_name or _tuning_job_from_name(job_name),
            objective_metric=objective or None,
        )


@dataclass(frozen=True)
class TrackingSettings:
    """Where the run goes: the tracking URI (empty: tracking off), its experiment, and whether an
    unreachable server at start fails the job (``MLFLOW_REQUIRED``, default true)."""

    uri: str = ""
    experiment: str = ""
    required: bool = True


def _tuning_job_from_name(job_name: str) -> str | None:
    match = _TRIAL_NAME.match(job_name)
    return match.group("tuning") if match else None


def _metric_name(name: str) -> str:
    """The run's name of a SageMaker metric: ``validation:ndcg@5`` -> ``validation-ndcg_at_5`` (XGBoost's
    evals log uses ``-``; MLflow refuses ``@``)."""
    return mlflow_metric_name(name.replace(":", "-"))


def _param_values(params: Mapping[str, Any]) -> dict[str, str]:
    """Params as MLflow stores them: strings, cut to its 6,000-character limit."""
    return {str(k): str(v)[:6000] for k, v in params.items()}


class MlflowRecorder:
    """The job's MLflow run. Create with :meth:`from_settings`; every method is a no-op once tracking is off."""

    def __init__(self, uri: str, experiment: str, job: JobInfo, required: bool) -> None:
        self.uri, self.experiment, self.job, self.required = uri, experiment, job, required
        self.enabled = True
        self.run_id: str | None = None
        self.parent_run_id: str | None = None
        self.experiment_id: str | None = None
        self.last_step = -1
        self.model_uri: str | None = None  # models:/<model id> once finish() logged the model
        self._client: MlflowClient | None = None
        self._guard = RetryGuard(uri)
        self._writer: MetricWriter | None = None
        self._params: dict[str, Any] = {}
        self._tags: dict[str, str] = {}

    # --- set-up -------------------------------------------------------------------------------------

    @classmethod
    def from_settings(cls, settings: TrackingSettings, job: JobInfo) -> MlflowRecorder | NoRecorder:
        """The recorder the job's settings ask for; :class:`NoRecorder` (logged once) when no URI is set."""
        uri = settings.uri.strip()
        if not uri:
            _logger.info("MLflow tracking is off: set %s (an http(s) server, a sqlite:/file store or a SageMaker "
                         "MLflow ARN) to record this job", TRACKING_URI_ENV)
            return NO_RECORDER
        return cls(uri, settings.experiment.strip() or MLFLOW_EXPERIMENT, job, settings.required)

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = configure_client(self.uri)
        return self._client

    def check_reachable(self) -> None:
        """Reach the server and make sure the experiment exists; call before any data is fetched.

        Raises ConfigError (one line: the URI without credentials, the cause and the fix) unless
        ``MLFLOW_REQUIRED=false``, in which case it logs once and turns tracking off. Only the
        errors a store raises count (:func:`~training.tracking.mlflow_client.store_errors`); others are bugs.
        """
        try:
            self.experiment_id = self._ensure_experiment()
        except store_errors() as err:
            cause = describe_error(err, self.uri)
            if self.required:
                raise ConfigError(
                    f"MLflow tracking at {safe_uri(self.uri)} cannot be reached ({cause}): start the server or "
                    f"fix {TRACKING_URI_ENV} (a managed MLflow ARN needs sagemaker-mlflow:* permissions on the "
                    f"job's role), or set {REQUIRE_TRACKING_ENV}=false to run the job without tracking") from err
            _logger.warning("MLflow tracking at %s cannot be reached (%s); the job runs without tracking because "
                            "%s=false", safe_uri(self.uri), cause, REQUIRE_TRACKING_ENV)
            self.enabled = False
            return
        _logger.info("MLflow tracking to %s, experiment %r", safe_uri(self.uri), self.experiment)

    def _ensure_experiment(self) -> str:
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(self.experiment)
        if found is not None:
            return str(found.experiment_id)
        try:
            return str(self.client.create_experiment(self.experiment))
        except MlflowException:  # a parallel trial created it first
            found = self.client.get_experiment_by_name(self.experiment)
            if found is None:
                raise
            return str(found.experiment_id)

    # --- the run --------------------------------------------------------------------------------------

    def start(self, params: dict[str, Any], tags: Mapping[str, str] | None = None) -> None:
        """Create the run (under the tuning parent on trials) with every effective hyperparameter and the job tags.

        Params come only from ``params`` and tags only from :class:`JobInfo`, package versions and
        ``tags`` (what the caller knows of the job: a scoring job's tables and model), so nothing from
        the environment (e.g. a secret) can reach the run.
        """
        if not self.enabled:
            return
        if self.experiment_id is None:
            self.check_reachable()
            if not self.enabled:
                return
        self._params, self._tags = dict(params), dict(tags or {})
        if self.job.tuning_job_name:
            self.parent_run_id = self._guard.call("finding the tuning parent run", tuning_parent.elect_parent,
                                                  self.client, self.experiment_id, self.job.tuning_job_name)
        self.run_id = self._guard.call("creating the run", self._create_or_resume_run)
        if self.run_id is None:
            return
        self._guard.call("logging params", self._log_params, params)
        self._writer = MetricWriter(self.client, self.run_id, self._guard)
        _logger.info("MLflow run %s (%s) in experiment %r%s", self.run_id, self.job.job_name, self.experiment,
                     f", child of tuning parent {self.parent_run_id}" if self.parent_run_id else "")

    def _run_tags(self) -> dict[str, str]:
        job = self.job
        tags = {
            RUN_NAME_TAG: job.job_name, TAG_JOB_NAME: job.job_name, TAG_INSTANCE_TYPE: job.instance_type,
            TAG_INSTANCE_COUNT: str(job.instance_count), TAG_IMAGE: job.image,
            "version.xgboost": package_version("xgboost"),
            "version.snowflake-connector-python": package_version("snowflake-connector-python"),
            "version.training": __version__,
            SOURCE_NAME_TAG: job.image or "local", SOURCE_TYPE_TAG: "JOB",
        }
        if job.tuning_job_name:
            tags[TAG_TUNING_JOB] = job.tuning_job_name
        if self.parent_run_id:
            tags[PARENT_RUN_TAG] = self.parent_run_id
        return {**tags, **self._tags}

    def _create_or_resume_run(self) -> str:
        """A restarted job (spot interruption, retry) resumes its unfinished run: one run per job."""
        tags = self._run_tags()
        previous = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{TAG_JOB_NAME}` = '{quote(self.job.job_name)}'",
            max_results=1)
        if previous and previous[0].info.status != "FINISHED":
            run_id = str(previous[0].info.run_id)
            self.client.update_run(run_id, status="RUNNING")
            _logger.info("resuming MLflow run %s of job %s", run_id, self.job.job_name)
            return run_id
        run = self.client.create_run(self.experiment_id, tags=tags, run_name=self.job.job_name)
        return str(run.info.run_id)

    def _log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        self.client.log_batch(self.run_id, params=[Param(k, v) for k, v in _param_values(params).items()])

    # --- per-round metrics --------------------------------------------------------------------------------

    def callback(self, offset: int = 0) -> xgboost.callback.TrainingCallback:
        """An XGBoost callback logging every evaluation metric each round, ``step`` = round.

        ``offset`` is the rounds a resumed job had done before (XGBoost's epoch restarts at 0).

        ``evals_log`` keys ``train``/``validation`` and metric ``rmse`` become ``train-rmse`` and
        ``validation-rmse`` (XGBoost's own console names). Writes happen in the background in
        batches; a lost server is retried, logged once, then ignored: it never stops training.
        """
        return round_callback(self.record_round, offset)

    def record_round(self, epoch: int, evals_log: Mapping[str, Mapping[str, Any]]) -> None:
        """Queue one round's evaluation results for the background writer (what the callback calls)."""
        if self._writer is None:
            return
        self.last_step = max(self.last_step, epoch)
        self._writer.put(round_metrics(epoch, evals_log))

    # --- lineage, rows, durations ------------------------------------------------------------------------

    def log_dataset(self, lineage: SnowflakeLineage, context: str = "training") -> None:
        """Record the Snowflake read as the run's dataset input, used for ``context`` (no data is read)."""
        if not self._active():
            return
        from mlflow.entities import DatasetInput, InputTag

        from training.tracking.lineage import snowflake_dataset

        entity = snowflake_dataset(lineage)._to_mlflow_entity()
        dataset_input = DatasetInput(entity, tags=[InputTag("mlflow.data.context", context)])
        self._guard.call("logging the dataset", self.client.log_inputs, self.run_id, datasets=[dataset_input])

    def log_model_input(self, model_id: str) -> None:
        """Record an MLflow 3 logged model (``models:/<model_id>``) as an input of the run: the model it used."""
        if not self._active():
            return
        from mlflow.entities import LoggedModelInput

        self._guard.call("linking the model", self.client.log_inputs, self.run_id,
                         models=[LoggedModelInput(model_id)])

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Tags learnt once the run is open (a scoring job's query id and outcome)."""
        if not self._active():
            return
        from mlflow.entities import RunTag

        self._guard.call("tagging the run", self.client.log_batch, self.run_id,
                         tags=[RunTag(k, str(v)[:5000]) for k, v in tags.items()])

    def log_rows(self, rows_per_host: list[int]) -> None:
        """Metrics ``rows_host_<rank>`` for each host and ``rows_total``."""
        metrics = {f"rows_host_{rank}": float(n) for rank, n in enumerate(rows_per_host)}
        metrics["rows_total"] = float(sum(rows_per_host))
        self._log_metrics("logging row counts", metrics, step=0)

    def log_durations(self, durations: dict[str, float]) -> None:
        """Metrics as given, e.g. ``fetch_seconds``, ``build_seconds``, ``train_seconds``."""
        self._log_metrics("logging durations", durations, step=0)

    def log_evaluation(self, report: Report | None, importance: dict[str, dict[str, float]], title: str,
                       metrics: Mapping[str, float], shap: ShapImportance | None = None) -> None:
        """``metrics`` (the evaluation's headline scalars) and the charts and numbers under the run's
        ``evaluation/`` artifacts."""
        if not self._active():
            return
        self._log_metrics("logging the evaluation's metrics", metrics, step=max(self.last_step, 0))
        self._guard.call("logging the evaluation's charts", self._log_evaluation_files, report, importance, title,
                         shap)

    def _log_evaluation_files(self, report: Report | None, importance: dict[str, dict[str, float]],
                              title: str, shap: ShapImportance | None = None) -> None:
        import tempfile
        from pathlib import Path

        from training.evaluation.files import write_evaluation

        with tempfile.TemporaryDirectory() as tmp:
            write_evaluation(report, importance, Path(tmp), title, shap)
            self.client.log_artifacts(self.run_id, tmp, EVALUATION_ARTIFACTS)

    def describe(self, text: str) -> None:
        """The run's description (MLflow's ``mlflow.note.content``: the UI's "Description")."""
        if self._active():
            self._guard.call("describing the run", self.client.set_tag, self.run_id, DESCRIPTION_TAG, text)

    def _log_metrics(self, what: str, values: Mapping[str, float], step: int) -> None:
        if not self._active():
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(mlflow_metric_name(k), float(v), now, step) for k, v in values.items()]
        self._guard.call(what, self.client.log_batch, self.run_id, metrics=metrics)

    def _active(self) -> bool:
        return self.enabled and self.run_id is not None and not self._guard.lost.is_set()

    # --- the end -----------------------------------------------------------------------------------------

    def finish(self, booster: xgboost.Booster, final_metrics: dict[str, float], plan: ColumnPlan,
               example: pyarrow.Table | None, status: str = "FINISHED") -> None:
        """Final metrics, the model (signature and input example), the tuning parent's best; never raises.

        Final metrics are logged under the names given at ``step`` = the last round, so they are
        the run's latest values. The model is logged as ``model``: a pyfunc that scores rows as
        the table has them (:mod:`training.tracking.pyfunc`), with ``example``'s raw rows as input example,
        both as an MLflow 3 logged model and as the run's artifacts ``model/``.
        A bug here is logged with its traceback but does not fail the job: the model file is
        already written.
        """
        try:
            self._flush()
            if not self._active():
                return
            self._log_metrics("logging final metrics", final_metrics, step=max(self.last_step, 0))
            self._guard.call("logging the model", self._log_model, booster, plan, example)
            if self.parent_run_id:
                self._guard.call("updating the tuning parent", self._update_parent, final_metrics)
            self._guard.call("ending the run", self.client.set_terminated, self.run_id, status)
        except Exception as err:  # a bug: keep its traceback, but it must not cost the model file
            _logger.warning("MLflow run %s not completed: %s: %s", self.run_id, type(err).__name__, err,
                            exc_info=True)

    def end(self) -> None:
        """End the run FINISHED (a run without a model: a scoring job's); never raises."""
        try:
            self._flush()
            if self._active():
                self._guard.call("ending the run", self.client.set_terminated, self.run_id, "FINISHED")
        except Exception as err:  # a bug: keep its traceback; the job's own outcome is what counts
            _logger.warning("MLflow run %s not completed: %s: %s", self.run_id, type(err).__name__, err,
                            exc_info=True)

    def fail(self, message: str) -> None:
        """End the run FAILED with the one-line ``message`` as tag ``failure_reason``; never raises."""
        try:
            self._flush()
            if not self._active():
                return
            reason = " ".join(message.split())[:5000]
            self._guard.call("recording the failure", self.client.set_tag, self.run_id, TAG_FAILURE, reason)
            self._guard.call("ending the run", self.client.set_terminated, self.run_id, "FAILED")
        except Exception as err:  # a bug: keep its traceback; the job's own failure is what counts
            _logger.warning("MLflow run %s not marked failed: %s: %s", self.run_id, type(err).__name__, err,
                            exc_info=True)

    def _flush(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _log_model(self, booster: xgboost.Booster, plan: ColumnPlan, example: pyarrow.Table | None) -> None:
        from training.tracking import pyfunc

        self.model_uri = pyfunc.log_model(self.client, str(self.run_id), str(self.experiment_id), MLFLOW_MODEL_NAME,
                                          booster, plan, example, _param_values(self._params))

    def _update_parent(self, final_metrics: Mapping[str, float]) -> None:
        assert self.parent_run_id is not None and self.run_id is not None and self.job.tuning_job_name
        self.parent_run_id = tuning_parent.update_parent(self.client, str(self.experiment_id),
                                                         self.job.tuning_job_name, self.run_id,
                                                         self.parent_run_id, self._objective_metric(final_metrics))

    def _objective_metric(self, final_metrics: Mapping[str, float]) -> str:
        """The tuning objective's run metric; without one, the first validation metric (the first
        ``eval_metric``, else the objective's default: XGBoost reports them in that order)."""
        if self.job.objective_metric:
            return self.job.objective_metric
        first = next((name for name in final_metrics if name.startswith("validation-")), "validation-rmse")
        return mlflow_metric_name(first)
