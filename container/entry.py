"""The one function that owns every outcome of a training host (and, with ``serve``, starts the endpoint's server).

Success: exit 0 (the leader has written ``model/xgboost-model``). A user or platform error: one
actionable line in ``output/failure`` (SageMaker's FailureReason) and in the log, exit 1. A bug:
its traceback in the log, a one-line pointer to it in ``output/failure``, exit 1.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from container.env import TrainingEnv, base_dir_from
from training.collective.cluster import Cluster
from training.contract import (
    MODEL_ARCHIVE,
    RESOURCE_CONFIG,
    SCORE_COMMAND,
    SCORING_MODEL_ENV,
    SERVE_COMMAND,
    TRAIN_COMMAND,
    config_dir,
    failure_file,
    model_channel_dir,
)
from training.errors import ConfigError, UserError
from training.hyperparameters import parse_hyperparameters
from training.job import JobSpec, run_job
from training.tracking.mlflow_recorder import MlflowRecorder
from training.tracking.recorder import NO_RECORDER, RunRecorder
from training.train.checkpoints import StopFlag

log = logging.getLogger("container")

FAILURE_LIMIT = 1024
"""SageMaker keeps the first 1,024 characters of ``output/failure`` as FailureReason."""
QUIET_LOGGERS = ("botocore", "boto3", "urllib3", "snowflake", "s3transfer", "filelock")
MLFLOW_PROGRESS_BAR_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
"""MLflow's switch for its artifact progress bars: off, they would fill the job log."""


def main(argv: list[str]) -> int:
    """Run the training host (``train``) or the endpoint (``serve``) described by the base directory;
    return the exit code."""
    if argv and argv[0] not in (TRAIN_COMMAND, SERVE_COMMAND, SCORE_COMMAND):
        print(f"error: unknown command {argv[0]!r}: SageMaker runs this image with '{TRAIN_COMMAND}' (a training "
              f"job), '{SERVE_COMMAND}' (an endpoint) or '{SCORE_COMMAND}' (a batch scoring job)", file=sys.stderr)
        return 2
    base_dir = base_dir_from(os.environ)
    if argv and argv[0] == SERVE_COMMAND:
        from container import serve

        _configure_logging("serve")
        return serve.main(base_dir, dict(os.environ))
    _configure_logging(_host_label(base_dir))
    if argv and argv[0] == SCORE_COMMAND:
        return _score(base_dir)
    recorder: RunRecorder = NO_RECORDER

    def train() -> None:
        nonlocal recorder
        env = TrainingEnv.from_dir(base_dir)
        spec = JobSpec(
            hyperparameters=parse_hyperparameters(env.hyperparameters),
            cluster=Cluster.from_hosts(env.hosts, env.current_host),
            model_dir=env.model_dir, spill_dir=env.spill_dir, checkpoint_dir=env.checkpoint_dir,
            sign_in=env.sign_in, job_name=env.job_name, snowflake_timeouts=env.snowflake_timeouts,
            ledger_dir=env.ledger_dir,
        )
        if spec.cluster.leader:  # only the leader talks to MLflow: one run per job
            recorder = MlflowRecorder.from_settings(env.tracking, env.job_info())
        stop = StopFlag()
        stop.install()
        run_job(spec, stop, recorder)

    return _host(base_dir, "training", train, lambda message: recorder.fail(message))


def _host(base_dir: Path, what: str, work: Callable[[], object], on_failure: Callable[[str], None]) -> int:
    """Run a host's ``work``: exit 0, or 1 with one line in ``output/failure`` (SageMaker's FailureReason) and the
    log, passed to ``on_failure`` too; a bug keeps its traceback in the log and points to it.

    Once the outcome is decided, SIGTERM is ignored: a stop that comes after the last round changes
    nothing, and Python restores the signal's default action while it exits, so without this a host
    that succeeded could still die of it (exit -15: the job fails with its model written)."""
    try:
        work()
    except UserError as err:
        message = redact(str(err))  # also what the failure file and MLflow get: a URL's query string grants access
        log.error("%s failed: %s", what, message)
        _write_failure(base_dir, message)
        on_failure(message)
        return 1
    except Exception as err:  # a bug: keep the traceback in the log, point to it in FailureReason
        log.exception("internal error")
        message = f"internal error ({type(err).__name__}): see the {what} job's log for the traceback"
        _write_failure(base_dir, message)
        on_failure(message)
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    log.info("%s finished", what)
    return 0


def _score(base_dir: Path) -> int:
    """A batch scoring host: the same outcomes as a training host (failure file, exit code), and, on the leader,
    the same MLflow tracking (one run per job)."""
    from training.model.scoring import model_file
    from training.scoring.job import ScoreSpec, run_scoring
    from training.scoring.options import ScoreOptions
    from training.tracking.scoring_run import NO_SCORING_RECORDER, ScoringRecorder, ScoringRun

    recorder: ScoringRecorder = NO_SCORING_RECORDER

    def score() -> None:
        nonlocal recorder
        env = TrainingEnv.from_dir(base_dir)
        model = _unpacked(Path(os.environ.get(SCORING_MODEL_ENV) or model_channel_dir(base_dir)), env.spill_dir)
        try:
            path = model_file(model)
        except ValueError as err:
            raise ConfigError(f"no model to score with: {err}") from None
        cluster = Cluster.from_hosts(env.hosts, env.current_host)
        if cluster.leader:  # only the leader talks to MLflow: one run per job
            recorder = ScoringRun.from_settings(env.tracking, env.job_info())
        stop = StopFlag()  # SageMaker's stop: the hosts agree to stop between two batches
        stop.install()
        run_scoring(ScoreSpec(ScoreOptions.parse(env.hyperparameters), cluster, path, env.sign_in, env.job_name,
                              env.snowflake_timeouts, env.ledger_dir, stop), recorder)

    return _host(base_dir, "scoring", score, lambda message: recorder.fail(message))


def _unpacked(folder: Path, scratch: Path) -> Path:
    """``folder``, or, when it holds a training job's ``model.tar.gz`` (a training job's channel is not unpacked),
    that archive unpacked under ``scratch``."""
    import tarfile

    archive = folder / MODEL_ARCHIVE
    if not archive.is_file():
        return folder
    target = scratch / "scoring-model"
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():  # the archive's files only, inside the folder (Python 3.10: no filter=)
            name = Path(member.name)
            if name.is_absolute() or ".." in name.parts or not (member.isfile() or member.isdir()):
                raise ConfigError(f"{archive} holds {member.name!r}, which is not a plain file of the model: give the "
                                  "model.tar.gz a training job of this project wrote")
        tar.extractall(target)  # noqa: S202  (members checked above)
    return target


def _write_failure(base_dir: Path, message: str) -> None:
    path = failure_file(base_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(message[:FAILURE_LIMIT] + "\n")


def _host_label(base_dir: Path) -> str:
    try:
        import json

        config = json.loads((config_dir(base_dir) / RESOURCE_CONFIG).read_text())
        return str(config.get("current_host", "?"))
    except (OSError, ValueError):
        return "?"


def _configure_logging(host: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(RedactingFormatter(f"%(asctime)s [{host}] %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_library_records_without_traceback)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault(MLFLOW_PROGRESS_BAR_ENV, "false")
    threading.excepthook = _library_threads_in_one_line


def _is_library(name: str) -> bool:
    return name.split(".")[0] in QUIET_LOGGERS


QUERY_STRING = re.compile(r"\?(?=[^\s'\"]*=)[^\s'\")]+")
"""A URL's query string (``?k=v...``), with or without its scheme and host: ``requests`` names a failed
URL by its path alone (``Max retries exceeded with url: /r/data_0_3?X-Amz-Signature=...``)."""


def redact(text: str) -> str:
    """``text`` without any URL query string: a result chunk's URL is a bearer credential (a presigned
    link, its signature in the query)."""
    return QUERY_STRING.sub("?<redacted>", text) if "?" in text else text


class RedactingFormatter(logging.Formatter):
    """Every line the job logs, a traceback's included, loses URL query strings."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def _library_records_without_traceback(record: logging.LogRecord) -> bool:
    """Keep a library's error record but drop its traceback (the Snowflake connector logs one per
    failed request while a connection is down): in our log, a traceback means a bug of ours."""
    if _is_library(record.name):
        record.exc_info, record.exc_text = None, None
    return True


_default_thread_hook = threading.excepthook


def _library_threads_in_one_line(args: threading.ExceptHookArgs) -> None:
    """A library's background thread that fails (the connector's request-abort thread when the
    server is gone) gets one log line; any other thread keeps Python's traceback."""
    if not _is_library(getattr(args.exc_type, "__module__", "") or ""):
        _default_thread_hook(args)
        return
    text = (str(args.exc_value).strip().splitlines() or [args.exc_type.__name__])[0][:200]
    log.warning("a background thread of %s failed: %s", args.exc_type.__module__.split(".")[0], text)
