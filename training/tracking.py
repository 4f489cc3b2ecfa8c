"""MLflow tracking for one training job: one run, written by rank 0 only, that never costs a model.

The training loop calls this module on rank 0 only; other hosts never talk to MLflow. Nothing
happens at import time and ``mlflow`` (seconds to import) is imported only once tracking is on.

Contract, in the order the loop calls it::

    job = JobInfo.from_env(os.environ, resource_config, hyperparameters_raw)
    tracker = RunTracker.from_env(os.environ, job)   # None: tracking is off (logged once)
    tracker.check_reachable()                         # before any data is fetched: ConfigError or off
    tracker.start(params)                             # the run (a child of the tuning parent on trials)
    xgb.train(..., callbacks=[tracker.callback()])    # per-round metrics, written in the background
    tracker.log_dataset(lineage); tracker.log_rows(...); tracker.log_durations(...)
    tracker.finish(booster, final_metrics, column_plan, raw_example_rows)   # or tracker.fail(reason)

Once :meth:`RunTracker.check_reachable` has passed, no method raises into training: a lost
server is retried with back-off, then logged once, and everything after that is skipped, so
the loop still writes its model file and exits 0. The tracking URI may be an ``http(s)://``
server, a ``sqlite:``/``file:`` store or a SageMaker managed MLflow ARN (tracking server or
MLflow app; ``sagemaker-mlflow`` signs the requests). See docs/tracking.md.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from training.contract import (
    EXPERIMENT_ENV,
    IMAGE_ENV,
    JOB_NAME_ENV,
    MODEL_FILE,
    REQUIRE_TRACKING_ENV,
    TRACKING_URI_ENV,
    TUNING_JOB_ENV,
)
from training.errors import ConfigError

if TYPE_CHECKING:
    import pyarrow
    import xgboost
    from mlflow import MlflowClient
    from mlflow.entities import Run

    from training.columns import ColumnPlan
    from training.lineage import SnowflakeLineage

_logger = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_EXPERIMENT = "snowflake-xgboost"
OBJECTIVE_HYPERPARAMETER = "_tuning_objective_metric"
"""Added to a tuning trial's hyperparameters by SageMaker tuning (e.g. ``validation:rmse``)."""

TAG_JOB_NAME = "sagemaker.job_name"
TAG_INSTANCE_TYPE = "sagemaker.instance_type"
TAG_INSTANCE_COUNT = "sagemaker.instance_count"
TAG_IMAGE = "sagemaker.image"
TAG_TUNING_JOB = "sagemaker.tuning_job_name"
TAG_TUNING_PARENT = "sagemaker.tuning_parent"
"""On the tuning parent run only: the tuning job's name (how trials find their parent)."""
TAG_BEST_RUN_ID = "best_trial_run_id"
TAG_BEST_JOB_NAME = "best_trial_job_name"
TAG_FAILURE = "failure_reason"
PARENT_RUN_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"
MODEL_NAME = "model"
"""Name of the logged model in each run (what ``launch/register.py`` registers)."""

PARENT_SETTLE_SECONDS = 2.0
"""How long a trial that created a tuning parent waits before checking for duplicates; must exceed
the time between a trial's search and its create (milliseconds) for parallel trials to agree."""
RETRY_DELAYS_S = (0.5, 1.0, 2.0)
"""Back-off between attempts of one MLflow write before the server is considered lost."""
METRIC_FLUSH_S = 2.0
"""Per-round metrics are batched and written at most this often, off the training thread."""
FLUSH_TIMEOUT_S = 30.0
"""The longest :meth:`RunTracker.finish` waits for the background metric writes."""
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}
"""MLflow's own HTTP retries (default 7, factor 2, 120 s timeout) could stall a job for minutes
on a dead server; these bound one request to seconds unless the job's environment sets them."""

_TRIAL_NAME = re.compile(r"^(?P<tuning>[A-Za-z0-9](?:[A-Za-z0-9-]{0,31}))-\d{3}-[0-9a-f]{8}$")
"""SageMaker names a tuning trial ``<tuning-job-name>-<NNN>-<8 hex>``."""
_ARN = re.compile(r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:(mlflow-tracking-server|mlflow-app)/\S+$")
_SPURIOUS_HEADER_WARNING = "Encountered unexpected error during resolving request headers"
_HEADER_REGISTRY_LOGGER = "mlflow.tracking.request_header.registry"
_MAXIMIZED = ("auc", "aucpr", "map", "ndcg", "pre")


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
    def from_env(cls, environ: Mapping[str, str], resource_config: dict[str, Any],
                 hyperparameters_raw: dict[str, Any]) -> JobInfo:
        """Build from the environment, ``resourceconfig.json`` and the raw ``hyperparameters.json``.

        A trial of a SageMaker tuning job is recognised by its name ``<tuning-job>-NNN-xxxxxxxx``
        (the service's naming, also when a Pipeline starts the tuning job); local tuning sets
        ``TUNING_JOB_NAME`` explicitly, which wins.
        """
        job_name = environ.get(JOB_NAME_ENV) or "local-" + datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        objective = _metric_name(str(hyperparameters_raw.get(OBJECTIVE_HYPERPARAMETER, "")).strip('"'))
        return cls(
            job_name=job_name,
            instance_type=str(resource_config.get("current_instance_type") or "local"),
            instance_count=max(1, len(resource_config.get("hosts") or [])),
            image=environ.get(IMAGE_ENV, ""),
            tuning_job_name=environ.get(TUNING_JOB_ENV) or _tuning_job_from_name(job_name),
            objective_metric=objective or None,
        )


def _tuning_job_from_name(job_name: str) -> str | None:
    match = _TRIAL_NAME.match(job_name)
    return match.group("tuning") if match else None


def _metric_name(name: str) -> str:
    """SageMaker metric names use ``:`` (``validation:rmse``); XGBoost's evals log uses ``-``."""
    return name.replace(":", "-")


def safe_uri(uri: str) -> str:
    """The URI without user, password, query or fragment: what may appear in logs and messages."""
    if _ARN.match(uri) or "://" not in uri:
        return uri
    parts = urlsplit(uri)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def is_arn(uri: str) -> bool:
    """Whether ``uri`` is a SageMaker managed MLflow ARN (tracking server or MLflow app)."""
    return bool(_ARN.match(uri))


class _SpuriousHeaderWarningFilter(logging.Filter):
    """Drops the per-request warning sagemaker-mlflow causes on non-ARN URIs.

    sagemaker-mlflow registers a request-header provider that parses every tracking URI as an
    ARN; on ``http://`` it raises and MLflow logs "Encountered unexpected error during resolving
    request headers: list index out of range" on *every* request (an open upstream issue). On an
    ARN URI the same message would be real, so it is kept there.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(_SPURIOUS_HEADER_WARNING):
            return True
        import mlflow

        return is_arn(mlflow.get_tracking_uri())


class _RetryNoiseFilter(logging.Filter):
    """Drops urllib3's per-attempt "Retrying (...)" warnings for requests to MLflow.

    A lost server is reported once by this module; urllib3 would add a line per HTTP retry.
    Other hosts' retries (Snowflake, AWS) are left alone.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not (str(record.msg).startswith("Retrying (") and "/mlflow" in record.getMessage())


def install_warning_filter() -> None:
    """Install :class:`_SpuriousHeaderWarningFilter` and :class:`_RetryNoiseFilter` once (idempotent)."""
    for name, kind in ((_HEADER_REGISTRY_LOGGER, _SpuriousHeaderWarningFilter),
                       ("urllib3.connectionpool", _RetryNoiseFilter)):
        target = logging.getLogger(name)
        if not any(isinstance(f, kind) for f in target.filters):
            target.addFilter(kind())


def configure_client(uri: str) -> MlflowClient:
    """Point this process's MLflow at ``uri`` and return a client for it.

    The URI is set process-wide on purpose: sagemaker-mlflow's signer and routing header read the
    global tracking URI, and ``mlflow.xgboost.log_model`` uses it too.
    """
    for name, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    install_warning_filter()
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def _parse_required(environ: Mapping[str, str]) -> bool:
    raw = environ.get(REQUIRE_TRACKING_ENV, "true").strip().lower()
    if raw in ("true", "1", "yes"):
        return True
    if raw in ("false", "0", "no"):
        return False
    raise ConfigError(f"{REQUIRE_TRACKING_ENV}={raw!r} is not a boolean: set it to true (fail if MLflow is "
                      "unreachable at start, the default) or false (train without tracking)")


_SHORT_CAUSES = (
    ("Connection refused", "connection refused"), ("timed out", "timed out"),
    ("NameResolutionError", "host name not found"), ("Name or service not known", "host name not found"),
)


def _describe(err: BaseException, uri: str) -> str:
    """A short, credential-free cause for a log line or error message (MLflow's own are paragraphs)."""
    text = " ".join(str(err).split())
    for needle, short in _SHORT_CAUSES:
        if needle in text:
            return short
    return f"{type(err).__name__}: {text.replace(uri, safe_uri(uri))[:200]}"


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


class _Guard:
    """Runs MLflow calls with retries; after the last failed attempt logs once and refuses all later calls.

    Shared by the training thread and the metric writer, so a lost server costs one log line and
    at most one round of retries, not one per round.
    """

    def __init__(self, uri: str, delays: tuple[float, ...] = RETRY_DELAYS_S) -> None:
        self.uri = uri
        self.delays = delays
        self.lost = threading.Event()
        self._lock = threading.Lock()

    def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        """``fn(*args, **kwargs)``, retried; None if tracking is (or now becomes) lost."""
        for attempt in range(len(self.delays) + 1):
            if self.lost.is_set():
                return None
            try:
                return fn(*args, **kwargs)
            except Exception as err:  # any client or network error: training must go on
                _logger.debug("MLflow call failed while %s (attempt %d)", what, attempt + 1, exc_info=True)
                last = err
                if attempt < len(self.delays):
                    time.sleep(self.delays[attempt])
        self.give_up(what, last)
        return None

    def give_up(self, what: str, err: BaseException) -> None:
        with self._lock:
            if self.lost.is_set():
                return
            self.lost.set()
        _logger.warning("MLflow tracking lost while %s at %s (%s); training continues, nothing more is "
                        "sent to MLflow for this run", what, safe_uri(self.uri), _describe(err, self.uri))


class _MetricWriter:
    """Writes per-round metrics in batches from a background thread, so training never waits on MLflow."""

    def __init__(self, client: MlflowClient, run_id: str, guard: _Guard) -> None:
        self._client, self._run_id, self._guard = client, run_id, guard
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="mlflow-metrics", daemon=True)
        self._thread.start()

    def put(self, metrics: list[Any]) -> None:
        if not self._guard.lost.is_set():
            self._queue.put(metrics)

    def close(self, timeout: float = FLUSH_TIMEOUT_S) -> None:
        """Write what is queued and stop; waits at most ``timeout`` seconds."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _loop(self) -> None:
        done = False
        while not done:
            batch, done = self._drain()
            if batch:
                self._guard.call("logging metrics", self._client.log_batch, self._run_id, metrics=batch)

    def _drain(self) -> tuple[list[Any], bool]:
        batch: list[Any] = []
        deadline = time.monotonic() + METRIC_FLUSH_S
        while (left := deadline - time.monotonic()) > 0:
            try:
                item = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.extend(item)
        return batch, False


class RunTracker:
    """The job's MLflow run. Create with :meth:`from_env`; every method is a no-op once tracking is off."""

    def __init__(self, uri: str, experiment: str, job: JobInfo, required: bool) -> None:
        self.uri, self.experiment, self.job, self.required = uri, experiment, job, required
        self.enabled = True
        self.run_id: str | None = None
        self.parent_run_id: str | None = None
        self.experiment_id: str | None = None
        self.last_step = -1
        self.model_uri: str | None = None  # models:/<model id> once finish() logged the model
        self._client: MlflowClient | None = None
        self._guard = _Guard(uri)
        self._writer: _MetricWriter | None = None
        self._params: dict[str, Any] = {}

    # --- set-up -------------------------------------------------------------------------------------

    @classmethod
    def from_env(cls, environ: Mapping[str, str], job: JobInfo) -> RunTracker | None:
        """The tracker the job's environment asks for, or None (logged once) when no URI is set."""
        uri = environ.get(TRACKING_URI_ENV, "").strip()
        if not uri:
            _logger.info("MLflow tracking is off: set %s (an http(s) server, a sqlite:/file store or a SageMaker "
                         "MLflow ARN) to record this job", TRACKING_URI_ENV)
            return None
        experiment = environ.get(EXPERIMENT_ENV, "").strip() or DEFAULT_EXPERIMENT
        return cls(uri, experiment, job, _parse_required(environ))

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = configure_client(self.uri)
        return self._client

    def check_reachable(self) -> None:
        """Reach the server and make sure the experiment exists; call before any data is fetched.

        Raises ConfigError (one line: the URI without credentials, the cause and the fix) unless
        ``MLFLOW_REQUIRED=false``, in which case it logs once and turns tracking off.
        """
        try:
            self.experiment_id = self._ensure_experiment()
        except Exception as err:
            cause = _describe(err, self.uri)
            if self.required:
                raise ConfigError(
                    f"MLflow tracking at {safe_uri(self.uri)} cannot be reached ({cause}): start the server or "
                    f"fix {TRACKING_URI_ENV} (a managed MLflow ARN needs sagemaker-mlflow:* permissions on the "
                    f"job's role), or set {REQUIRE_TRACKING_ENV}=false to train without tracking") from err
            _logger.warning("MLflow tracking at %s cannot be reached (%s); training without tracking because "
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

    def start(self, params: dict[str, Any]) -> None:
        """Create the run (under the tuning parent on trials) with every effective hyperparameter and the job tags.

        Params come only from ``params`` and tags only from :class:`JobInfo` and package versions,
        so nothing from the environment (e.g. a secret) can reach the run.
        """
        if not self.enabled:
            return
        if self.experiment_id is None:
            self.check_reachable()
            if not self.enabled:
                return
        self._params = dict(params)
        if self.job.tuning_job_name:
            self.parent_run_id = self._guard.call("finding the tuning parent run", self._resolve_parent)
        self.run_id = self._guard.call("creating the run", self._create_or_resume_run)
        if self.run_id is None:
            return
        self._guard.call("logging params", self._log_params, params)
        self._writer = _MetricWriter(self.client, self.run_id, self._guard)
        _logger.info("MLflow run %s (%s) in experiment %r%s", self.run_id, self.job.job_name, self.experiment,
                     f", child of tuning parent {self.parent_run_id}" if self.parent_run_id else "")

    def _run_tags(self) -> dict[str, str]:
        job = self.job
        tags = {
            RUN_NAME_TAG: job.job_name, TAG_JOB_NAME: job.job_name, TAG_INSTANCE_TYPE: job.instance_type,
            TAG_INSTANCE_COUNT: str(job.instance_count), TAG_IMAGE: job.image,
            "version.xgboost": _version("xgboost"),
            "version.snowflake-connector-python": _version("snowflake-connector-python"),
            "version.training": _project_version(),
        }
        if job.tuning_job_name:
            tags[TAG_TUNING_JOB] = job.tuning_job_name
        if self.parent_run_id:
            tags[PARENT_RUN_TAG] = self.parent_run_id
        return tags

    def _create_or_resume_run(self) -> str:
        """A restarted job (spot interruption, retry) resumes its unfinished run: one run per job."""
        tags = self._run_tags()
        previous = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{TAG_JOB_NAME}` = '{_quote(self.job.job_name)}'",
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

        self.client.log_batch(self.run_id, params=[Param(str(k), str(v)[:6000]) for k, v in params.items()])

    # --- tuning parent ---------------------------------------------------------------------------------

    def _resolve_parent(self) -> str:
        """The one parent run of this tuning job, created by whichever trial gets there first.

        No launcher may be around to create it (a Pipeline starts the tuning job), and trials start
        in parallel. Each trial searches for the parent by tag; if none exists it creates one, waits
        :data:`PARENT_SETTLE_SECONDS` and searches again; all trials then agree on the oldest
        candidate (ties broken by run id) and a trial whose own candidate lost deletes it.
        :meth:`finish` checks again, so a trial that raced anyway still ends under the winner.
        """
        candidates = self._parent_candidates()
        if candidates:
            return self._settled_winner(candidates, created=None)
        created = self._create_parent()
        return self._settled_winner([], created=created)

    def _settled_winner(self, seen: list[Run], created: str | None) -> str:
        newest = max((r.info.start_time for r in seen), default=0)
        wait = PARENT_SETTLE_SECONDS - (time.time() * 1000 - newest) / 1000 if seen else PARENT_SETTLE_SECONDS
        if created is not None or wait > 0:
            time.sleep(max(0.0, wait))
            seen = self._parent_candidates()
        winner = _oldest(seen) if seen else created
        if created is not None and winner != created:
            self.client.delete_run(created)
            _logger.info("tuning parent %s already created by another trial; removed duplicate %s", winner, created)
        if winner is None:
            raise RuntimeError("the tuning parent run vanished while it was being created")
        return winner

    def _parent_candidates(self) -> list[Run]:
        assert self.job.tuning_job_name is not None
        return list(self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{TAG_TUNING_PARENT}` = '{_quote(self.job.tuning_job_name)}'",
            max_results=100))

    def _create_parent(self) -> str:
        name = str(self.job.tuning_job_name)
        tags = {RUN_NAME_TAG: name, TAG_TUNING_PARENT: name, TAG_TUNING_JOB: name,
                "version.training": _project_version()}
        run = self.client.create_run(self.experiment_id, tags=tags, run_name=name)
        return str(run.info.run_id)

    # --- per-round metrics --------------------------------------------------------------------------------

    def callback(self, offset: int = 0) -> xgboost.callback.TrainingCallback:
        """An XGBoost callback logging every evaluation metric each round, ``step`` = round.

        ``offset`` is the rounds a resumed job had done before (XGBoost's epoch restarts at 0).

        ``evals_log`` keys ``train``/``validation`` and metric ``rmse`` become ``train-rmse`` and
        ``validation-rmse`` (XGBoost's own console names). Writes happen in the background in
        batches; a lost server is retried, logged once, then ignored: it never stops training.
        """
        return _metrics_callback_class()(self, offset)

    def _record_round(self, epoch: int, evals_log: Mapping[str, Mapping[str, Any]]) -> None:
        if self._writer is None:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(f"{data}-{name}", _last_value(history), now, epoch)
                   for data, by_metric in evals_log.items() for name, history in by_metric.items() if history]
        self.last_step = max(self.last_step, epoch)
        self._writer.put(metrics)

    # --- lineage, rows, durations ------------------------------------------------------------------------

    def log_dataset(self, lineage: SnowflakeLineage) -> None:
        """Record the Snowflake read as the run's training dataset input (no data is read)."""
        if not self._active():
            return
        from mlflow.entities import DatasetInput, InputTag

        from training.lineage import snowflake_dataset

        entity = snowflake_dataset(lineage)._to_mlflow_entity()
        dataset_input = DatasetInput(entity, tags=[InputTag("mlflow.data.context", "training")])
        self._guard.call("logging the dataset", self.client.log_inputs, self.run_id, datasets=[dataset_input])

    def log_rows(self, rows_per_host: list[int]) -> None:
        """Metrics ``rows_host_<rank>`` for each host and ``rows_total``."""
        metrics = {f"rows_host_{rank}": float(n) for rank, n in enumerate(rows_per_host)}
        metrics["rows_total"] = float(sum(rows_per_host))
        self._log_metrics("logging row counts", metrics, step=0)

    def log_durations(self, durations: dict[str, float]) -> None:
        """Metrics as given, e.g. ``fetch_seconds``, ``build_seconds``, ``train_seconds``."""
        self._log_metrics("logging durations", durations, step=0)

    def _log_metrics(self, what: str, values: Mapping[str, float], step: int) -> None:
        if not self._active():
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, step) for k, v in values.items()]
        self._guard.call(what, self.client.log_batch, self.run_id, metrics=metrics)

    def _active(self) -> bool:
        return self.enabled and self.run_id is not None and not self._guard.lost.is_set()

    # --- the end -----------------------------------------------------------------------------------------

    def finish(self, booster: xgboost.Booster, final_metrics: dict[str, float], plan: ColumnPlan,
               example: pyarrow.Table | None, status: str = "FINISHED") -> None:
        """Final metrics, the model (signature and input example), the tuning parent's best; never raises.

        Final metrics are logged under the names given at ``step`` = the last round, so they are
        the run's latest values. The model is logged as ``model``: a pyfunc that scores rows as
        the table has them (:mod:`training.pyfunc`), with ``example``'s raw rows as input example.
        """
        try:
            self._flush()
            if not self._active():
                return
            self._log_metrics("logging final metrics", final_metrics, step=max(self.last_step, 0))
            self._guard.call("logging the model", self._log_model, booster, plan, example)
            if self.parent_run_id:
                self._guard.call("updating the tuning parent", self._update_parent)
            self._guard.call("ending the run", self.client.set_terminated, self.run_id, status)
        except Exception as err:  # a bug here must not cost the model file either
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
        except Exception as err:
            _logger.warning("MLflow run %s not marked failed: %s: %s", self.run_id, type(err).__name__, err)

    def _flush(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _log_model(self, booster: xgboost.Booster, plan: ColumnPlan, example: pyarrow.Table | None) -> None:
        import tempfile

        import mlflow.pyfunc
        from mlflow.models import Model

        from training import pyfunc
        from training.model import embed_plan, predict_rows

        embed_plan(booster, plan)
        # log_model files the logged model under the *active* experiment, not the run's: set it.
        mlflow.set_experiment(experiment_id=self.experiment_id)
        frame = pyfunc.example_frame(plan, example) if example is not None and example.num_rows else None
        outputs = predict_rows(booster, plan, frame) if frame is not None else None
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            # The signature is given; MLflow's advice to add type hints to predict() does not apply.
            warnings.filterwarnings("ignore", message=".*type hints to the `predict` method")
            path = Path(tmp) / MODEL_FILE
            path.write_bytes(booster.save_raw("ubj"))
            # Model.log, as mlflow.pyfunc.log_model does, but for this run (not an active run).
            info = Model.log(
                artifact_path=None, name=MODEL_NAME, flavor=mlflow.pyfunc, run_id=self.run_id,
                python_model=str(pyfunc.CODE_FILE), artifacts={pyfunc.ARTIFACT: str(path)},
                code_paths=[str(pyfunc.PACKAGE_DIR)], input_example=frame,
                signature=pyfunc.signature(plan, frame, outputs) if outputs is not None else None,
                pip_requirements=[f"xgboost=={_version('xgboost')}", f"mlflow=={_version('mlflow-skinny')}",
                                  f"pyarrow=={_version('pyarrow')}", f"pandas=={_version('pandas')}"],
            )
        self.model_uri = info.model_uri

    def _update_parent(self) -> None:
        """Point the parent at the best finished trial so far, recomputed from all its children.

        Recomputing (instead of compare-and-set) makes concurrent finishes converge: the last
        trial to finish sees every child. The metric's step is the number of trials compared, so
        MLflow's "latest value" is the most complete one whatever order the writes land in.
        """
        parent = self._reconcile_parent()
        metric = self._objective_metric()
        children = self._children(parent)
        scored = [r for r in children if metric in r.data.metrics]
        if not scored:
            return
        pick = max if _maximized(metric) else min
        best = pick(scored, key=lambda r: r.data.metrics[metric])
        self._log_parent_best(parent, metric, best, len(scored))

    def _reconcile_parent(self) -> str:
        """The parent every trial agrees on now; re-parents this run if it raced onto a duplicate."""
        assert self.parent_run_id is not None
        candidates = self._parent_candidates()
        winner = _oldest(candidates) if candidates else self.parent_run_id
        if winner != self.parent_run_id:
            self.client.set_tag(self.run_id, PARENT_RUN_TAG, winner)
            self.parent_run_id = winner
        return winner

    def _children(self, parent: str) -> list[Run]:
        return list(self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{PARENT_RUN_TAG}` = '{parent}'", max_results=5000))

    def _log_parent_best(self, parent: str, metric: str, best: Run, compared: int) -> None:
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        self.client.log_batch(
            parent,
            metrics=[Metric(f"best-{metric}", best.data.metrics[metric], now, compared)],
            tags=[RunTag(TAG_BEST_RUN_ID, best.info.run_id),
                  RunTag(TAG_BEST_JOB_NAME, best.data.tags.get(TAG_JOB_NAME, "")),
                  RunTag("objective_metric", metric)],
        )
        self.client.set_terminated(parent, "FINISHED")

    def _objective_metric(self) -> str:
        if self.job.objective_metric:
            return self.job.objective_metric
        first = str(self._params.get("eval_metric", "rmse")).split(",")[0].strip() or "rmse"
        return f"validation-{first}"


def _metrics_callback_class() -> type:
    """The callback class, built on first use so that importing this module does not import xgboost."""
    global _CALLBACK_CLASS
    if _CALLBACK_CLASS is None:
        import xgboost as xgb

        class MlflowMetricsCallback(xgb.callback.TrainingCallback):
            """Hands each round's evaluation results to the tracker; never raises into training."""

            def __init__(self, tracker: RunTracker, offset: int) -> None:
                super().__init__()
                self.tracker, self.offset = tracker, offset

            def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
                try:
                    self.tracker._record_round(self.offset + epoch, evals_log)
                except Exception:
                    _logger.debug("recording round %d for MLflow failed", epoch, exc_info=True)
                return False  # never ask XGBoost to stop

        _CALLBACK_CLASS = MlflowMetricsCallback
    return _CALLBACK_CLASS


_CALLBACK_CLASS: type | None = None


def _last_value(history: Any) -> float:
    value = history[-1]
    return float(value[0] if isinstance(value, tuple) else value)


def _oldest(runs: list[Run]) -> str:
    return str(min(runs, key=lambda r: (r.info.start_time, r.info.run_id)).info.run_id)


def _maximized(metric: str) -> bool:
    base = metric.split("-", 1)[-1]
    return base.startswith(_MAXIMIZED)


def _quote(value: str) -> str:
    """Escape a value for an MLflow search filter's single-quoted string."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _project_version() -> str:
    import training

    return str(training.__version__)
