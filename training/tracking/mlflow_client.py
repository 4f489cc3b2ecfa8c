"""The MLflow client as the job uses it: set-up, safe URIs, retries, per-round metrics off the training thread.

Shared by the job's run (:mod:`training.tracking.mlflow_recorder`), the tuning parent (:mod:`training.tracking.tuning_parent`)
and ``launch/registry.py``. Nothing here imports ``mlflow`` at import time: it takes seconds, and
a job with tracking off never needs it.

The contract with training: once the server has been reached at start, a tracking store that
fails is retried with back-off by :class:`RetryGuard`, then reported once, and everything after
is skipped. Only the errors a store really raises count as "lost" (:func:`store_errors`); any
other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Mapping
from importlib import metadata
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import xgboost
    from mlflow import MlflowClient

_logger = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_DELAYS_S = (0.5, 1.0, 2.0)
"""Back-off between attempts of one MLflow write before the server is considered lost."""
METRIC_FLUSH_S = 2.0
"""Per-round metrics are batched and written at most this often, off the training thread."""
FLUSH_TIMEOUT_S = 30.0
"""The longest :meth:`MetricWriter.close` waits for the background metric writes."""
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}
"""MLflow's own HTTP retries (default 7, factor 2, 120 s timeout) could stall a job for minutes
on a dead server; these bound one request to seconds unless the job's environment sets them."""

TAG_JOB_NAME = "sagemaker.job_name"
"""The SageMaker job name on each job's run (how a restarted job finds its run again)."""
TAG_TUNING_JOB = "sagemaker.tuning_job_name"
PARENT_RUN_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"

_ARN = re.compile(r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:(mlflow-tracking-server|mlflow-app)/\S+$")
_SPURIOUS_HEADER_WARNING = "Encountered unexpected error during resolving request headers"
_HEADER_REGISTRY_LOGGER = "mlflow.tracking.request_header.registry"
_SHORT_CAUSES = (
    ("Connection refused", "connection refused"), ("timed out", "timed out"),
    ("NameResolutionError", "host name not found"), ("Name or service not known", "host name not found"),
)
_OPTIONAL_STORE_ERRORS = (
    ("sqlalchemy.exc", "SQLAlchemyError"),  # sqlite: stores (full mlflow only), e.g. a path it cannot open
    ("botocore.exceptions", "BotoCoreError"),  # S3 artifact stores (managed MLflow): credentials, endpoint
    ("botocore.exceptions", "ClientError"),  # S3 refused the upload (AccessDenied, NoSuchBucket)
    ("boto3.exceptions", "Boto3Error"),  # S3UploadFailedError
)


class TrackingError(Exception):
    """The store answered, but not as the protocol expects (e.g. a run vanished while it was being made)."""


@functools.cache
def store_errors() -> tuple[type[BaseException], ...]:
    """The exceptions by which a tracking or artifact store says it cannot do what was asked.

    MLflow's REST client turns every request failure into ``MlflowException``; artifact uploads
    over HTTP raise ``requests`` errors (``OSError`` subclasses), file stores and the model's
    temporary files ``OSError``; a ``sqlite:`` store SQLAlchemy's errors; an S3 artifact store
    botocore's and boto3's. Those that are not installed cannot be raised. Imports mlflow.
    """
    from mlflow.exceptions import MlflowException
    from urllib3.exceptions import HTTPError as Urllib3Error

    errors: list[type[BaseException]] = [MlflowException, OSError, Urllib3Error, TrackingError]
    for module, name in _OPTIONAL_STORE_ERRORS:
        try:
            errors.append(getattr(importlib.import_module(module), name))
        except ImportError:
            continue
    return tuple(errors)


def safe_uri(uri: str) -> str:
    """The URI without user, password, query or fragment: what may appear in logs and messages.

    Written back as ``scheme://netloc path`` by hand: ``urlunsplit`` drops the empty authority of
    ``sqlite:////abs/path.db`` (giving ``sqlite://abs/path.db``, another file)."""
    if _ARN.match(uri) or "://" not in uri:
        return uri
    parts = urlsplit(uri)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return f"{parts.scheme}://{netloc}{parts.path}"


def is_arn(uri: str) -> bool:
    """Whether ``uri`` is a SageMaker managed MLflow ARN (tracking server or MLflow app)."""
    return bool(_ARN.match(uri))


def describe_error(err: BaseException, uri: str) -> str:
    """A short, credential-free cause for a log line or error message (MLflow's own are paragraphs)."""
    text = " ".join(str(err).split())
    for needle, short in _SHORT_CAUSES:
        if needle in text:
            return short
    return f"{type(err).__name__}: {text.replace(uri, safe_uri(uri))[:200]}"


def package_version(distribution: str) -> str:
    """The installed version of ``distribution`` (recorded in run tags and model requirements)."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def quote(value: str) -> str:
    """Escape a value for an MLflow search filter's single-quoted string."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


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

    A lost server is reported once by :class:`RetryGuard`; urllib3 would add a line per HTTP retry.
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
    global tracking URI, and ``Model.log`` uses it too. Bounded HTTP retries
    (:data:`HTTP_DEFAULTS`) apply unless the environment already sets them.
    """
    for name, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    install_warning_filter()
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


class RetryGuard:
    """Runs MLflow calls with retries; after the last failed attempt logs once and refuses all later calls.

    Shared by the training thread and the metric writer, so a lost server costs one log line and
    at most one round of retries, not one per round. Only :func:`store_errors` are retried; any
    other exception is a bug: its traceback is logged once and tracking stops, but training goes on
    (the recorder's promise: once reachable, tracking never costs the model).
    """

    def __init__(self, uri: str, delays: tuple[float, ...] = RETRY_DELAYS_S) -> None:
        self.uri = uri
        self.delays = delays
        self.lost = threading.Event()
        self._lock = threading.Lock()

    def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        """``fn(*args, **kwargs)``, retried; None if tracking is (or now becomes) lost."""
        errors = store_errors()
        for attempt in range(len(self.delays) + 1):
            if self.lost.is_set():
                return None
            try:
                return fn(*args, **kwargs)
            except errors as err:
                _logger.debug("MLflow call failed while %s (attempt %d)", what, attempt + 1, exc_info=True)
                last = err
                if attempt < len(self.delays):
                    time.sleep(self.delays[attempt])
            except Exception as err:  # not the store's: a bug, shown with its traceback, never retried
                _logger.exception("MLflow call raised an unexpected error while %s", what)
                self.give_up(what, err)  # ...and, as the recorder promises, it never costs the model
                return None
        self.give_up(what, last)
        return None

    def give_up(self, what: str, err: BaseException) -> None:
        """Mark tracking lost and say so once, whichever thread gets here first."""
        with self._lock:
            if self.lost.is_set():
                return
            self.lost.set()
        _logger.warning("MLflow tracking lost while %s at %s (%s); the job continues, nothing more is "
                        "sent to MLflow for this run", what, safe_uri(self.uri), describe_error(err, self.uri))


class MetricWriter:
    """Writes per-round metrics in batches from a background thread, so training never waits on MLflow."""

    def __init__(self, client: MlflowClient, run_id: str, guard: RetryGuard) -> None:
        self._client, self._run_id, self._guard = client, run_id, guard
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="mlflow-metrics", daemon=True)
        self._thread.start()

    def put(self, metrics: list[Any]) -> None:
        """Queue ``mlflow.entities.Metric`` values for the next batch (dropped once tracking is lost)."""
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


AT = "_at_"
"""What ``@`` becomes in a metric's MLflow name: MLflow allows letters, digits and ``_ - . / :`` and
space only, and XGBoost names metrics with an argument ``ndcg@5``, ``error@0.6``, ``tweedie-nloglik@1.5``."""


def mlflow_metric_name(name: str) -> str:
    """``name`` as MLflow stores it: ``validation-ndcg@5`` -> ``validation-ndcg_at_5``."""
    return name.replace("@", AT)


def xgboost_metric_name(name: str) -> str:
    """The metric's name as XGBoost writes it: ``validation-ndcg_at_5`` -> ``validation-ndcg@5``."""
    return name.replace(AT, "@")


def round_metrics(epoch: int, evals_log: Mapping[str, Mapping[str, Any]]) -> list[Any]:
    """One round's evaluation results as MLflow metrics at ``step`` = ``epoch``.

    ``evals_log`` keys ``train``/``validation`` and metric ``rmse`` become ``train-rmse`` and
    ``validation-rmse`` (XGBoost's own console names, ``@`` written as :data:`AT`).
    """
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [Metric(mlflow_metric_name(f"{data}-{name}"), _last_value(history), now, epoch)
            for data, by_metric in evals_log.items() for name, history in by_metric.items() if history]


def _last_value(history: Any) -> float:
    value = history[-1]
    return float(value[0] if isinstance(value, tuple) else value)


def round_callback(record: Callable[[int, Mapping[str, Mapping[str, Any]]], None],
                   offset: int) -> xgboost.callback.TrainingCallback:
    """An XGBoost callback calling ``record(offset + epoch, evals_log)`` after each round; never raises.

    ``record`` only queues (the :class:`MetricWriter` thread does the I/O), so a failure there is
    a bug: its traceback is logged once and later rounds are not recorded, but training goes on.
    """
    return _round_callback_class()(record, offset)


@functools.cache
def _round_callback_class() -> type:
    """Built on first use so that importing this module does not import xgboost."""
    import xgboost as xgb

    class MlflowMetricsCallback(xgb.callback.TrainingCallback):
        def __init__(self, record: Callable[[int, Any], None], offset: int) -> None:
            super().__init__()
            self.record, self.offset, self.broken = record, offset, False

        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            if self.broken:
                return False
            try:
                self.record(self.offset + epoch, evals_log)
            except Exception:  # a bug must not stop training: log it once, with its traceback
                self.broken = True
                _logger.warning("recording round %d for MLflow failed; later rounds are not recorded",
                                self.offset + epoch, exc_info=True)
            return False  # never ask XGBoost to stop

    return MlflowMetricsCallback
