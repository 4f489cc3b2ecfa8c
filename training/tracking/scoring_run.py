"""What a batch scoring job tells MLflow: one run per job, written by the leader only, linked to its model.

The scoring job (:func:`training.scoring.job.run_scoring`) records its run through
:class:`ScoringRecorder`. :class:`ScoringRun` is the MLflow implementation, built on the training job's
:class:`~training.tracking.mlflow_recorder.MlflowRecorder`: the same tracking settings
(``MLFLOW_TRACKING_URI``, ``MLFLOW_EXPERIMENT_NAME``, an ARN works), the same experiment as training, the
same ``MLFLOW_REQUIRED`` semantics (an unreachable server fails the job before any row is read, or is
logged once and ignored), the same retries, and the same promise: once the run is open, nothing here raises
into the job. Other hosts, and jobs with tracking off, get :data:`NO_SCORING_RECORDER`.

The order of calls, and where MLflow is talked to::

    recorder.start(options, hosts)     # MLflow: before the hosts join, before any row is read
    recorder.queried(lineage)          # memory only (inside the collective): the leader's one query
    recorder.finish(rows_per_host, outcome, durations)   # MLflow: after the hosts have left the collective
    recorder.fail(message)             # MLflow: the container, when the job failed

So a slow or lost server can neither delay a host's collective call nor put the hosts out of step.

What the run holds (docs/scoring.md, "The MLflow run"): the job's tags (as a training run's), tag
``job_kind`` = ``scoring``; params: the effective scoring settings; the source table as a dataset input
(context ``scoring``, source type ``snowflake`` with the query id); the model: tags ``scoring.model_name``,
``scoring.model_version``, ``scoring.training_run_id`` and, when the version is in this server's registry
and was made from a logged model, that logged model as a model input; the target: tags
``scoring.target_table``, ``scoring.outcome``; metrics ``rows_host_<rank>``, ``rows_total``,
``query_seconds``, ``score_seconds``, ``publish_seconds``, ``total_seconds``; a description; FINISHED, or
FAILED with tag ``failure_reason``.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Protocol

from training.tracking.mlflow_client import describe_error, safe_uri, store_errors
from training.tracking.mlflow_recorder import JobInfo, MlflowRecorder, TrackingSettings

if TYPE_CHECKING:
    from training.scoring.options import ScoreOptions
    from training.tracking.lineage import SnowflakeLineage

log = logging.getLogger(__name__)

JOB_KIND_TAG, JOB_KIND = "job_kind", "scoring"
"""Tells a scoring job's run from the training runs of the same experiment (``tags.job_kind = 'scoring'``)."""
TAG_SOURCE, TAG_QUERY_ID, TAG_TARGET, TAG_OUTCOME = ("scoring.source_table", "scoring.query_id",
                                                     "scoring.target_table", "scoring.outcome")
TAG_MODEL_NAME, TAG_MODEL_VERSION, TAG_TRAINING_RUN = ("scoring.model_name", "scoring.model_version",
                                                       "scoring.training_run_id")
TAG_MODEL_ID = "scoring.model_id"
"""The registered version's MLflow 3 logged model (``models:/<id>``), also the run's model input."""
LOGGED_MODEL_SCHEME = "models:/"
DATASET_CONTEXT = "scoring"
"""``mlflow.data.context`` of the source table's dataset input."""


class ScoringRecorder(Protocol):
    """Records one scoring job's run: settings and model, the query, rows and durations, the outcome."""

    def start(self, options: ScoreOptions, hosts: int) -> None:
        """Open the run; may raise ConfigError (tracking required but unreachable): call before any row is read."""

    def queried(self, lineage: SnowflakeLineage) -> None:
        """Note the leader's one query (kept in memory: called between collective calls)."""

    def finish(self, rows_per_host: list[int], outcome: str, durations: dict[str, float]) -> None:
        """Close the run FINISHED with the rows each host wrote, the target's outcome and the phases' durations."""

    def fail(self, message: str) -> None:
        """Close the run FAILED with the one-line ``message``."""


class NoScoringRecorder:
    """Records nothing: the recorder of hosts other than the leader, and of jobs with tracking off."""

    def start(self, options: ScoreOptions, hosts: int) -> None:
        return None

    def queried(self, lineage: SnowflakeLineage) -> None:
        return None

    def finish(self, rows_per_host: list[int], outcome: str, durations: dict[str, float]) -> None:
        return None

    def fail(self, message: str) -> None:
        return None


NO_SCORING_RECORDER = NoScoringRecorder()
"""The shared do-nothing recorder (it holds no state)."""


class ScoringRun:
    """The scoring job's MLflow run, kept through the training job's recorder (one MLflow client, one set of
    rules). Create with :meth:`from_settings`."""

    def __init__(self, recorder: MlflowRecorder) -> None:
        self.recorder = recorder
        self.source: SnowflakeLineage | None = None
        self._options: ScoreOptions | None = None
        self._hosts = 1

    @classmethod
    def from_settings(cls, settings: TrackingSettings, job: JobInfo) -> ScoringRun | NoScoringRecorder:
        """The recorder the job's settings ask for; :data:`NO_SCORING_RECORDER` (logged once) when no URI is set."""
        recorder = MlflowRecorder.from_settings(settings, job)
        return cls(recorder) if isinstance(recorder, MlflowRecorder) else NO_SCORING_RECORDER

    @property
    def run_id(self) -> str | None:
        return self.recorder.run_id

    def start(self, options: ScoreOptions, hosts: int) -> None:
        self._options, self._hosts = options, hosts
        recorder = self.recorder
        recorder.check_reachable()
        params = {k: ",".join(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(options).items()}
        recorder.start(params, {JOB_KIND_TAG: JOB_KIND, TAG_SOURCE: options.source_sql, TAG_TARGET: options.target_sql,
                                **_model_tags(options)})
        model_id = self._model_id(options)
        if model_id:
            recorder.set_tags({TAG_MODEL_ID: model_id})
            recorder.log_model_input(model_id)

    def queried(self, lineage: SnowflakeLineage) -> None:
        self.source = lineage

    def finish(self, rows_per_host: list[int], outcome: str, durations: dict[str, float]) -> None:
        """Never raises: the target is already written."""
        try:
            self._log_source()
            self.recorder.log_rows(rows_per_host)
            self.recorder.log_durations(durations)
            self.recorder.set_tags({TAG_OUTCOME: outcome})
            self.recorder.describe(self._description(sum(rows_per_host), outcome))
        except Exception as err:  # a bug: keep its traceback, but it must not fail a job whose target is written
            log.warning("MLflow run %s not completed: %s: %s", self.run_id, type(err).__name__, err, exc_info=True)
        self.recorder.end()

    def fail(self, message: str) -> None:
        """Never raises: the job's own failure is what counts."""
        try:
            self._log_source()  # what was read, when the query ran before the failure
        except Exception as err:  # a bug: keep its traceback
            log.warning("MLflow run %s: the source not recorded: %s: %s", self.run_id, type(err).__name__, err,
                        exc_info=True)
        self.recorder.fail(message)

    def _log_source(self) -> None:
        if self.source is not None:
            self.recorder.set_tags({TAG_QUERY_ID: ",".join(self.source.query_ids)})
            self.recorder.log_dataset(self.source, DATASET_CONTEXT)

    def _model_id(self, options: ScoreOptions) -> str | None:
        """The registered version's logged model id, when this server's registry has the version (a version
        registered elsewhere, or from a copied run's artifacts, is named by the tags only)."""
        recorder = self.recorder
        if not (options.model_name and options.model_version and recorder.run_id and recorder.enabled):
            return None
        try:
            found = recorder.client.get_model_version(options.model_name, options.model_version)
            # a tracking server's REST answer leaves ``model_id`` out; the version's source names the logged model
            model_id = getattr(found, "model_id", None) or _logged_model_id(str(found.source or ""))
            return str(recorder.client.get_logged_model(model_id).model_id) if model_id else None
        except store_errors() as err:
            log.warning("model %s version %s or its logged model is not on the MLflow server at %s (%s): the run "
                        "names the version in tags only", options.model_name, options.model_version,
                        safe_uri(recorder.uri), describe_error(err, recorder.uri))
            return None

    def _description(self, rows: int, outcome: str) -> str:
        options = self._options
        assert options is not None
        model = " ".join(p for p in (options.model_name, f"version {options.model_version}"
                                     if options.model_version else "") if p) or "a model file"
        query = f" (query {self.source.query_ids[0]})" if self.source and self.source.query_ids else ""
        return (f"Batch scoring of Snowflake table {options.source_sql}{query} with {model} into "
                f"{options.target_sql} ({outcome}): {rows:,} rows by {self._hosts} host(s).")


def _logged_model_id(source: str) -> str | None:
    """``m-...`` of a version registered from ``models:/m-...`` (``launch register`` registers a logged model so);
    None for a version registered from a run's artifacts (``runs:/...``)."""
    model_id = source.removeprefix(LOGGED_MODEL_SCHEME)
    return model_id if source.startswith(LOGGED_MODEL_SCHEME) and model_id and "/" not in model_id else None


def _model_tags(options: ScoreOptions) -> dict[str, str]:
    """The model's name, version and training run, as given (empty ones left out)."""
    given = {TAG_MODEL_NAME: options.model_name, TAG_MODEL_VERSION: options.model_version,
             TAG_TRAINING_RUN: options.run_id}
    return {k: v for k, v in given.items() if v}
