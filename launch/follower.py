"""``--wait``: follow a job until it ends, showing what changes and nothing else.

A training job: its status when it changes (``InProgress / Downloading`` -> ``Training``), every
host's CloudWatch log lines as they arrive (prefixed by host), and after each batch that holds new
rounds one progress line::

    round 13/200, best validation-rmse 0.6234 at [12], 4m12s elapsed, ETA 56m05s

An endpoint: its status when it changes (``Creating`` -> ``InService``). A tuning job: its trial table whenever a trial starts or ends. A pipeline execution: its status
and each step's status when they change. The end (status, metrics, table, failure reason) is the
command's to show, once. Ctrl-C stops following, not the job:
:class:`StoppedFollowing` carries the command that stops it, and the CLI exits 130 (128 + SIGINT,
what a shell reports for Ctrl-C, so ``launch train --wait && next`` does not go on).

SDK v3's ``TrainingJob.wait(logs=True)`` streams the same log group, but builds its CloudWatch
client from a default session (not the settings' region or the caller's session), shows nothing
until every host has a stream, draws a ``rich`` live panel, sleeps with ``time.sleep`` and has no
per-round hook: hence this small follower. Output goes through ``echo`` (the command passes
``print``), so this module prints nothing itself and tests read what a user would.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from training.hyperparameters import SPECS
from training.objectives.metrics import maximized

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
"""Where SageMaker writes a training job's stdout/stderr, one stream per host:
``<job-name>/algo-N-<epoch>`` (https://docs.aws.amazon.com/sagemaker/latest/dg/logging-cloudwatch.html)."""
TRAINING_TERMINAL = ("Completed", "Failed", "Stopped")
TUNING_TERMINAL = ("Completed", "Failed", "Stopped")
PIPELINE_TERMINAL = ("Succeeded", "Failed", "Stopped")
ENDPOINT_TERMINAL = ("InService", "Failed", "OutOfService", "UpdateRollbackFailed")
"""Where an endpoint stays until someone acts: UpdateRollbackFailed is an update that failed and could not
roll back (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_DescribeEndpoint.html)."""
ROUND_LINE = re.compile(r"\[(\d+)\]\t(\S.*)$")
"""The leader's per-round line, ``[12]\\ttrain-rmse:0.51\\tvalidation-rmse:0.62`` (round index from
0), found anywhere in a log line: the container prefixes a timestamp and the host."""
HOST = re.compile(r"/(algo-\d+)")

Echo = Callable[[str], None]
Sleep = Callable[[float], None]


class StoppedFollowing(Exception):
    """Ctrl-C while following: the job keeps running; the message says how to stop it."""

    def __init__(self, stop_command: str) -> None:
        super().__init__(f"stopped following; the job keeps running. To stop it: {stop_command}")
        self.stop_command = stop_command


# ---------------------------------------------------------------------------------------------
# Training: logs and progress


LAST_READS = 3
LAST_READ_PAUSE_SECONDS = 3.0


class LogFollower:
    """New CloudWatch log events of every host of one training job, oldest first, on each call.

    Streams appear as hosts start writing; each is read from its head once, then from the token
    where the last read ended (CloudWatch returns the same token when nothing is new).
    """

    def __init__(self, logs: Any, job_name: str, echo: Echo = print) -> None:
        self._logs, self._prefix, self._echo = logs, f"{job_name}/", echo
        self._tokens: dict[str, str | None] = {}
        self.denied = False

    def new_events(self) -> list[tuple[str, dict[str, Any]]]:
        """``(host, event)`` pairs not returned before, across hosts in timestamp order (none once the
        logs turned out not readable with these credentials: the status is still followed)."""
        if self.denied:
            return []
        from botocore.exceptions import ClientError

        try:
            for name in self._stream_names():
                self._tokens.setdefault(name, None)
            events = [(host_of(name), event) for name in sorted(self._tokens) for event in self._read(name)]
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") not in ("AccessDeniedException", "AccessDenied"):
                raise
            self.denied = True
            self._echo("cannot read the job's logs (AccessDenied on CloudWatch Logs: grant logs:DescribeLogStreams "
                       "and logs:GetLogEvents, see iam/launcher-user-policy.json): following its status only")
            return []
        return sorted(events, key=lambda pair: pair[1]["timestamp"])  # stable: each host keeps its order

    def _stream_names(self) -> list[str]:
        try:
            pages = self._logs.get_paginator("describe_log_streams").paginate(
                logGroupName=LOG_GROUP, logStreamNamePrefix=self._prefix)
            return [s["logStreamName"] for page in pages for s in page["logStreams"]]
        except self._logs.exceptions.ResourceNotFoundException:  # no job has logged in this account yet
            return []

    def _read(self, stream: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        while True:
            token = self._tokens[stream]
            response = self._logs.get_log_events(logGroupName=LOG_GROUP, logStreamName=stream, startFromHead=True,
                                                 **({"nextToken": token} if token else {}))
            events.extend(response["events"])
            self._tokens[stream] = response["nextForwardToken"]
            if not response["events"] or response["nextForwardToken"] == token:
                return events


def host_of(stream: str) -> str:
    """``job/algo-2-1700000000`` -> ``algo-2`` (the stream name itself if it has no host)."""
    found = HOST.search(stream)
    return found.group(1) if found else stream


@dataclass
class RoundProgress:
    """Rounds done of ``total``, the best validation metric so far, elapsed time and an ETA.

    The metric is the first ``validation-*`` one on the round line: the first ``eval_metric``, the
    one early stopping watches. Times are CloudWatch event timestamps (milliseconds): elapsed since
    the job's first log line, the ETA from the pace between the round lines seen.
    """

    total: int
    metric: str | None = None
    best: float | None = None
    best_round: int = 0
    done: int = 0
    start_ms: int | None = None
    _first: tuple[int, int] | None = field(default=None, repr=False)  # (round, ms) of the first round line seen
    _last_ms: int = 0

    def observe(self, message: str, timestamp_ms: int) -> bool:
        """Take one log line; True if it was a round line."""
        if self.start_ms is None:
            self.start_ms = timestamp_ms
        found = ROUND_LINE.search(message)
        if not found:
            return False
        index = int(found.group(1))
        self.done, self._last_ms = index + 1, timestamp_ms
        self._first = self._first or (index, timestamp_ms)
        self._track(index, found.group(2))
        return True

    def _track(self, index: int, metrics: str) -> None:
        for part in metrics.split("\t"):
            name, _, text = part.rpartition(":")
            if name.startswith("validation-") and self.metric in (None, name):
                self.metric = name
                value = float(text)
                better = self.best is None or (value > self.best if maximized(name) else value < self.best)
                if better:
                    self.best, self.best_round = value, index
                return

    def line(self) -> str:
        """``round 13/200, best validation-rmse 0.6234 at [12], 4m12s elapsed, ETA 56m05s``."""
        parts = [f"round {self.done}/{self.total}"]
        if self.metric is not None:
            parts.append(f"best {self.metric} {self.best:.6g} at [{self.best_round}]")
        start = self._last_ms if self.start_ms is None else self.start_ms
        parts.append(f"{duration((self._last_ms - start) / 1000)} elapsed")
        if self._first and self.done - 1 > self._first[0]:
            pace = (self._last_ms - self._first[1]) / 1000 / (self.done - 1 - self._first[0])
            parts.append(f"ETA {duration(pace * max(self.total - self.done, 0))}")
        return ", ".join(parts)


def duration(seconds: float) -> str:
    """``42s``, ``4m12s``, ``3h05m``."""
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def total_rounds(desc: dict[str, Any]) -> int:
    """The job's ``num_round``, or the container's default when the job does not set it."""
    return int(desc.get("HyperParameters", {}).get("num_round", SPECS["num_round"].default))


def training_status(desc: dict[str, Any]) -> str:
    """``InProgress / Downloading - <the transition's message>`` (the message when SageMaker gave one)."""
    status, secondary = desc["TrainingJobStatus"], desc.get("SecondaryStatus")
    text = f"{status} / {secondary}" if secondary and secondary != status else status
    messages = [t.get("StatusMessage") for t in desc.get("SecondaryStatusTransitions", []) if t.get("Status") == secondary]
    return f"{text} - {messages[-1]}" if messages and messages[-1] else text


# ---------------------------------------------------------------------------------------------
# Following


def follow_training(sagemaker: Any, logs: Any, job_name: str, *, echo: Echo, poll_seconds: float = 10.0,
                    sleep: Sleep = time.sleep) -> dict[str, Any]:
    """Follow a training job to its end (status changes, every host's lines, progress); its description."""
    stop = (f"aws sagemaker stop-training-job --training-job-name {job_name} "
            f"--region {sagemaker.meta.region_name}")
    follower, progress, shown = LogFollower(logs, job_name, echo), None, None
    try:
        while True:
            desc = sagemaker.describe_training_job(TrainingJobName=job_name)
            ended = desc["TrainingJobStatus"] in TRAINING_TERMINAL
            if not ended:  # the command shows the end: status, final metrics, failure reason
                shown = _echo_change(echo, shown, f"status: {training_status(desc)}")
            progress = progress or RoundProgress(total_rounds(desc))
            _echo_events(echo, follower.new_events(), progress)
            if ended:
                # CloudWatch may deliver the last lines (final metrics, the error) seconds after the job
                # ends: read until a read brings nothing new, a few times at most.
                for _ in range(LAST_READS):
                    sleep(LAST_READ_PAUSE_SECONDS)
                    events = follower.new_events()
                    if not events:
                        break
                    _echo_events(echo, events, progress)
                return desc
            sleep(poll_seconds)
    except KeyboardInterrupt:
        raise StoppedFollowing(stop) from None


def _echo_change(echo: Echo, shown: str | None, line: str) -> str:
    if line != shown:
        echo(line)
    return line


def _echo_events(echo: Echo, events: list[tuple[str, dict[str, Any]]], progress: RoundProgress) -> None:
    rounds = False
    for host, event in events:
        for text in event["message"].rstrip("\n").split("\n"):
            echo(f"{host} | {text}")
        rounds = progress.observe(event["message"], event["timestamp"]) or rounds
    if rounds:
        echo(progress.line())


def follow_tuning(sagemaker: Any, job_name: str, *, echo: Echo, table: Callable[[], str],
                  poll_seconds: float = 60.0, sleep: Sleep = time.sleep) -> dict[str, Any]:
    """Follow a tuning job to its end; ``table()`` (the trials, best first) is shown when a trial
    starts or ends, and the status when it changes, while it runs. Returns the job's description."""
    stop = (f"aws sagemaker stop-hyper-parameter-tuning-job --hyper-parameter-tuning-job-name {job_name} "
            f"--region {sagemaker.meta.region_name}")
    shown: str | None = None
    counters: dict[str, int] | None = None
    try:
        while True:
            desc = sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=job_name)
            if desc["HyperParameterTuningJobStatus"] in TUNING_TERMINAL:
                return desc  # the command shows the last status and table
            shown = _echo_change(echo, shown, f"status: {desc['HyperParameterTuningJobStatus']}")
            if desc.get("TrainingJobStatusCounters", {}) != counters:
                counters = desc.get("TrainingJobStatusCounters", {})
                echo("trials: " + ", ".join(f"{k} {v}" for k, v in counters.items()))
                echo(table())
            sleep(poll_seconds)
    except KeyboardInterrupt:
        raise StoppedFollowing(stop) from None


def follow_pipeline(sagemaker: Any, execution_arn: str, *, echo: Echo, poll_seconds: float = 30.0,
                    sleep: Sleep = time.sleep) -> dict[str, Any]:
    """Follow a pipeline execution to its end: its status and each step's when they change
    (a tuning step with its tuning job, which ``tune``'s trials table can then show)."""
    stop = (f"aws sagemaker stop-pipeline-execution --pipeline-execution-arn {execution_arn} "
            f"--region {sagemaker.meta.region_name}")
    shown: str | None = None
    steps: dict[str, str] = {}
    try:
        while True:
            desc = sagemaker.describe_pipeline_execution(PipelineExecutionArn=execution_arn)
            ended = desc["PipelineExecutionStatus"] in PIPELINE_TERMINAL
            if not ended:  # the command shows the end
                shown = _echo_change(echo, shown, f"status: {desc['PipelineExecutionStatus']}")
            pages = sagemaker.get_paginator("list_pipeline_execution_steps").paginate(
                PipelineExecutionArn=execution_arn, SortOrder="Ascending")
            for step in (step for page in pages for step in page["PipelineExecutionSteps"]):
                steps[step["StepName"]] = _echo_change(echo, steps.get(step["StepName"]), step_status(step))
            if ended:
                return desc
            sleep(poll_seconds)
    except KeyboardInterrupt:
        raise StoppedFollowing(stop) from None


def step_status(step: dict[str, Any]) -> str:
    """``step TuneXGBoost: Executing (tuning job xgb-tune-1)``, with the failure reason when it failed."""
    line = f"step {step['StepName']}: {step['StepStatus']}"
    metadata = step.get("Metadata", {})
    for key, kind in (("TuningJob", "tuning job"), ("TrainingJob", "training job")):
        if metadata.get(key, {}).get("Arn"):
            line += f" ({kind} {metadata[key]['Arn'].rsplit('/', 1)[-1]})"
    if step.get("FailureReason"):
        line += f": {step['FailureReason']}"
    return line


def follow_endpoint(sagemaker: Any, endpoint_name: str, *, echo: Echo, poll_seconds: float = 30.0,
                    sleep: Sleep = time.sleep, stop_command: str = "") -> dict[str, Any]:
    """Follow an endpoint until it is in service or has failed (its status when it changes); its description.

    ``stop_command``: what Ctrl-C prints (default: delete the endpoint; an update passes the way back instead).
    """
    stop = stop_command or (f"aws sagemaker delete-endpoint --endpoint-name {endpoint_name} "
                            f"--region {sagemaker.meta.region_name}")
    shown: str | None = None
    try:
        while True:
            desc = sagemaker.describe_endpoint(EndpointName=endpoint_name)
            if desc["EndpointStatus"] in ENDPOINT_TERMINAL:
                return desc  # the command shows the end, with the failure reason
            shown = _echo_change(echo, shown, f"status: {desc['EndpointStatus']}")
            sleep(poll_seconds)
    except KeyboardInterrupt:
        raise StoppedFollowing(stop) from None
